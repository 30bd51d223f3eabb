"""What a project holds, as `list` and `check` report it: its flows, their schedules, its problems.

Both read each flow file in the child process that imports it (`summarize_directory`): no
flow file is imported in their own process, and each file is imported once.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from flows_tui.cache import cache_directory, cache_sizes
from .config import CONFIG_NAME, Config, FlowConfig, display_path, find_config, load_config
from flows_tui.errors import ConfigError, ParameterError, closest
from flows_tui.flows import Flow
from .flows_directory import FlowsDirectory, FlowsReloaded
from .flow_files import FlowFile, FlowSummary, definition_line, duplicate_flows, function_name, normalize_name
from .flow_summaries import config_keys, tables_of
from .import_probe import summarize_directory
from .schedules import Schedule, describe_schedule, due_when_served, next_start


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Importing a user's file may print; keep it off stdout, which carries JSON lines or the report."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def flow_config_for(config: Config, flow: Flow | FlowSummary) -> FlowConfig | None:
    """The `[flows.KEY]` table of `flow`: KEY is its name, its function's name, or its name with - → _.

    `run`, `list` and `check` all use this rule, so `list` shows what a run would use.
    """
    for key in _config_keys(flow):
        if key in config.flows:
            return config.flows[key]
    return None


def _config_keys(flow: Flow | FlowSummary) -> tuple[str, ...]:
    return config_keys(flow.name, function_name(flow))


def located_in_config(config: Config, flow: Flow | None, error: ParameterError) -> ParameterError | ConfigError:
    """A bad value from `[flows.KEY] parameters`, named by that key path and line as `check` names it."""
    flow_config = flow_config_for(config, flow) if flow is not None else None
    if flow_config is None or config.path is None:
        return error
    key, line = flow_config.parameter_location(error.parameter)
    return ConfigError(str(error), path=display_path(config.path), key=key, line=line)


def error_text(loaded: FlowFile) -> str | None:
    """The file's load error as `file:line: message`, with the path as the user would type it."""
    error = loaded.error
    if error is None:
        return None
    where = display_path(Path(error.path))
    if error.line:
        where = f"{where}:{error.line}"
    return f"{where}: {error.reason}"


# Listing ------------------------------------------------------------------------------------------

@dataclass
class FlowEntry:
    """One line of `flows-tui list`: a flow, or a file that failed to load (name None, error set)."""

    file: str
    line: int | None = None  # where the flow is defined, or where its file failed to load
    name: str | None = None
    function: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    schedule: str | None = None
    next_run: _dt.datetime | None = None
    error: str | None = None  # `file:line: message`
    reason: str | None = None  # the same error without its location, for a table with a file column
    cache_size: int = 0  # bytes of cached task results this flow stored under state_dir

    def document(self) -> dict[str, Any]:
        """SPEC's `list --json` line."""
        return {
            "name": self.name,
            "file": self.file,
            "function": self.function,
            "parameters": self.parameters,
            "schedule": self.schedule,
            "next_run": None if self.next_run is None else self.next_run.isoformat(),
            "error": self.error,
            "cache_size": self.cache_size,
        }


def parameter_defaults(flow: FlowSummary, flow_config: FlowConfig | None) -> tuple[dict[str, Any], tuple[str, ...]]:
    """What a run of `flow` starts from: signature defaults, overridden by `[flows.X].parameters`.

    Returns JSON-safe values (a parameter without a default is None) and the names still
    required, i.e. without a default and not given in flows.toml.
    """
    from flows_tui.parameters import json_default

    given = dict(flow_config.parameters) if flow_config is not None else {}
    values: dict[str, Any] = {}
    required = []
    for parameter in flow.parameters:  # read in the child that imported the file; defaults JSON already
        name = parameter["name"]
        if name in given:
            values[name] = given[name]
        else:
            values[name] = parameter["default"]
            if parameter["required"]:
                required.append(name)
    return json.loads(json.dumps(values, default=json_default)), tuple(required)


def flow_entries(config: Config, files: list[FlowFile], now: _dt.datetime,
                 schedule_states: dict[str, tuple] | None = None) -> list[FlowEntry]:
    """Every flow in `files` (from `summarize_directory`), in file order and, within a file, definition
    order; broken files in place.

    `schedule_states` (from the store: per flow, the due time last fired for and whether it is
    paused) makes `next_run` what `serve` will do: resume after the last run, None while paused.
    """
    entries = []
    # A flow named like an earlier one is listed with the problem as its error, as `check` reports it.
    duplicates = {(duplicate.path, duplicate.function): duplicate for duplicate in duplicate_flows(files)}
    for loaded in files:
        file = display_path(loaded.path)
        if loaded.error is not None:
            entries.append(FlowEntry(file, loaded.error.line, error=error_text(loaded), reason=loaded.error.reason))
            continue
        for flow in loaded.flows.values():
            flow_config = flow_config_for(config, flow)
            parameters, required = parameter_defaults(flow, flow_config)
            entry = FlowEntry(file, definition_line(flow), flow.name, flow.function, parameters, required,
                              describe_schedule(flow_config),
                              _next_run(flow.name, flow_config, now, schedule_states or {}))
            duplicate = duplicates.get((loaded.path, flow.function))
            if duplicate is not None:
                entry.reason = duplicate.message(display_path)
                entry.error = f"{file}:{entry.line}: {entry.reason}" if entry.line else f"{file}: {entry.reason}"
            entries.append(entry)
    sizes = cache_sizes(cache_directory(config.project.state_dir))
    for entry in entries:
        if entry.name is not None:
            entry.cache_size = sizes.get(entry.name, 0)
    return entries


def _next_run(flow: str, flow_config: Any, now: _dt.datetime,
              states: dict[str, tuple]) -> _dt.datetime | None:
    schedule = Schedule.from_config(flow, flow_config)
    if schedule is None:
        return None
    last_due, paused, timing = states.get(flow, (None, False, None))
    if paused:
        return None
    # What serve would do: an interval schedule that never fired runs as soon as it is served; due times
    # that passed while nothing served start at once or, missed with catchup = "skip", not at all.
    due = next_start(schedule, due_when_served(schedule, last_due, timing, now), now)
    if due.microsecond:  # whole seconds, as next_run gives them: sub-second precision is noise here
        due = due.replace(microsecond=0) + _dt.timedelta(seconds=1)
    return due.astimezone(schedule.zone)


def reload_lines(event: FlowsReloaded, flows_directory: FlowsDirectory, *, with_time: bool = True) -> list[str]:
    """`list --watch`: what one reload changed, then its load errors and duplicate names, one per line.

    Called by the reloading thread before any later reload, so `flows_directory` is as `event` left it.
    """
    def show(path: Path | str) -> str:
        try:
            return str(Path(path).relative_to(flows_directory.directory))
        except ValueError:
            return display_path(Path(path))

    def files(paths: tuple[Path, ...]) -> str:
        return ", ".join(show(path) for path in paths)

    what = []
    if event.helpers_changed:
        what.append(f"{files(event.helpers_changed)} changed")
    for verb, paths in (("added", event.files_added), ("reloaded", event.files_changed),
                        ("removed", event.files_removed)):
        if paths:
            what.append(f"{verb} {files(paths)}")
    flows = ([f"+ {name}" for name in event.flows_added] + [f"~ {name}" for name in event.flows_changed]
             + [f"- {name}" for name in event.flows_removed])
    stamp = f"{_dt.datetime.now():%H:%M:%S} " if with_time else ""
    lines = [f"{stamp}{'; '.join(what)}: {', '.join(flows) or 'no flows changed'} ({event.seconds * 1000:.0f} ms)"]
    lines.extend(f"  ✓ {show(path)} loads again" for path in event.fixed)
    kept = {str(loaded.path): list(loaded.flows) for loaded in flows_directory.files}
    for error in event.failed:
        where = f"{show(error.path)}:{error.line}" if error.line else show(error.path)
        still = kept.get(error.path)
        note = f" (its last good flows stay loaded: {', '.join(still)})" if still else ""
        lines.append(f"  ✗ {where}: {error.reason}{note}")
    touched = {*event.files_added, *event.files_changed}
    for duplicate in event.duplicates:
        if duplicate.path in touched or duplicate.first_path in touched:
            where = f"{show(duplicate.path)}:{duplicate.line}" if duplicate.line else show(duplicate.path)
            lines.append(f"  ✗ {where}: {duplicate.message(show)}")
    return lines


# Checking -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    flows: int = 0
    files: int = 0
    flows_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)  # read but off: a notifier without its ${VAR}


def check_project(config_path: Path | None, *, cwd: Path) -> CheckReport:
    """Load flows.toml and every flow file; report every problem found, not just the first."""
    report = CheckReport()
    config: Config | None = None
    path = config_path or find_config(cwd) or cwd / CONFIG_NAME
    found: list[ConfigError] = []  # every problem of flows.toml, not only the first
    try:
        # The good rest of the file (an unset ${VAR} left as written) is still checked against the flows.
        config = load_config(config_path, cwd=cwd, problems=found)
    except ConfigError as error:  # not TOML at all, or unreadable
        found.append(error)
        report.flows_dir = _fallback_flows_dir(path)
    report.problems.extend(_config_problem(error, path) for error in found)
    if config is None and report.flows_dir is None:
        return report
    if config is not None:
        report.flows_dir = config.project.flows_dir
        report.warnings.extend(config.warnings)
    if not report.flows_dir.exists():
        report.problems.append(_missing_flows_dir(config, report.flows_dir))
        return report

    with stdout_to_stderr():
        files = summarize_directory(report.flows_dir, tables_of(config))
    report.files = len(files)
    report.flows = sum(len(loaded.flows) for loaded in files)
    for loaded in files:
        if loaded.error is not None:
            report.problems.append(Problem(display_path(Path(loaded.error.path)), loaded.error.line,
                                           loaded.error.reason))
    report.problems.extend(_duplicate_names(files))
    if config is not None:
        report.problems.extend(_unknown_flow_tables(config, files))
        report.problems.extend(_bad_profiles(config))
        report.problems.extend(_bad_parameters(config, files))
    # Like a compiler: grouped by file, in line order, whatever check found them.
    report.problems.sort(key=lambda p: (p.path, p.line or 0))
    return report


def _bad_profiles(config: Config) -> list[Problem]:
    """Each [clusters.NAME] profile's class imported and its kwargs checked; none is started."""
    from .cluster_config import check_profile

    problems = []
    for profile in config.clusters.values():
        try:
            check_profile(profile)
        except ConfigError as error:
            problems.append(_config_problem(error, config.path or Path(CONFIG_NAME)))
    return problems


def _config_problem(error: ConfigError, path: Path) -> Problem:
    message = f"[{error.key}] {error.reason}" if error.key else error.reason
    return Problem(error.path or display_path(path), error.line, message)


def _missing_flows_dir(config: Config | None, directory: Path) -> Problem:
    if config is not None and config.path is not None:
        return Problem(display_path(config.path), _key_line(config.path, "flows_dir"),
                       f"[project.flows_dir] flows directory {display_path(directory)} does not exist")
    return Problem(display_path(directory), None, "flows directory does not exist")


def _key_line(path: Path, key: str) -> int | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    return next((number for number, line in enumerate(text.splitlines(), 1) if pattern.match(line)), None)


def _fallback_flows_dir(path: Path) -> Path | None:
    """The flows directory an invalid flows.toml names, if that much can still be read, else None.

    The file's own error is already reported; this only lets `check` go on to the flow
    files instead of hiding their problems behind a typo elsewhere in flows.toml.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    root = path.parent.resolve()
    try:
        project = tomllib.loads(text).get("project", {})
        value = project.get("flows_dir") if isinstance(project, dict) else None
    except tomllib.TOMLDecodeError:
        value = _scan_flows_dir(text)
        if value is None and "flows_dir" in text:
            return None  # named on a line TOML could not read: guessing could load the wrong files
    if value is None:
        return root / "flows" if (root / "flows").is_dir() else root
    if not isinstance(value, str) or "${" in value:
        return None
    return (root / value).resolve()


def _scan_flows_dir(text: str) -> str | None:
    """`flows_dir = "..."` under `[project]`, read line by line from TOML that does not parse as a whole."""
    table = None
    for line in text.splitlines():
        header = re.match(r"^\s*\[\s*([^\[\]]+?)\s*\]", line)
        if header:
            table = header.group(1)
            continue
        value = re.match(r"""^\s*flows_dir\s*=\s*(?:"([^"]*)"|'([^']*)')\s*(#.*)?$""", line)
        if value and table == "project":
            return value.group(1) if value.group(1) is not None else value.group(2)
    return None


def _duplicate_names(files: list[FlowFile]) -> list[Problem]:
    return [Problem(display_path(duplicate.path), duplicate.line, duplicate.message(display_path))
            for duplicate in duplicate_flows(files)]


def _unknown_flow_tables(config: Config, files: list[FlowFile]) -> list[Problem]:
    flows = [flow for loaded in files for flow in loaded.flows.values()]
    keys = {key for flow in flows for key in _config_keys(flow)}
    names = sorted({flow.name for flow in flows})
    broken = sum(1 for loaded in files if loaded.error is not None)
    config_file = display_path(config.path) if config.path is not None else CONFIG_NAME
    problems = []
    for key, flow_config in config.flows.items():
        if key in keys:
            continue
        close = closest(key, keys)
        if close:
            # Suggest the flow's own name, whichever of its names came close.
            match = next(flow.name for flow in flows if close[0] in _config_keys(flow))
            hint = f" (did you mean [flows.{match}]?)"
        elif names:
            hint = f" (flows: {', '.join(names)})"
        else:
            hint = f" (no flows found in {display_path(config.project.flows_dir)})"
        if broken:
            hint += f"; {broken} flow file{'s' if broken > 1 else ''} failed to load and may define it"
        problems.append(Problem(config_file, flow_config.line,
                                f"[flows.{key}] names no discovered flow{hint}"))
    return problems


def _bad_parameters(config: Config, files: list[FlowFile]) -> list[Problem]:
    """`[flows.X] parameters` against the flow's signature: checked in the child that imported its file."""
    config_file = display_path(config.path) if config.path is not None else CONFIG_NAME
    matched: dict[str, list[FlowSummary]] = {}
    for loaded in files:
        for flow in loaded.flows.values():
            flow_config = flow_config_for(config, flow)
            if flow_config is not None:
                matched.setdefault(flow_config.name, []).append(flow)
    problems = []
    for key, flows in matched.items():
        flow_config = config.flows[key]
        if len(flows) > 1:
            # Two flows of one name: the duplicate is reported on its own, and checking the
            # parameters against either would only add noise. Different flows (one's name,
            # another's function name) are this table's own problem.
            if len({normalize_name(flow.name) for flow in flows}) > 1:
                which = ", ".join(f"{flow.name!r} ({_where(flow)})" for flow in flows)
                problems.append(Problem(config_file, flow_config.line,
                                        f"[flows.{key}] matches more than one flow: {which}"))
            continue
        flow = flows[0]
        if flow.table == key and flow.problem is not None:
            message, parameter = flow.problem
            where, line = flow_config.parameter_location(parameter)
            problems.append(Problem(config_file, line, f"[{where}] {message}"))
    return problems


def _where(flow: FlowSummary) -> str:
    if flow.file is None:
        return "?"
    path = display_path(Path(flow.file))
    line = definition_line(flow)
    return f"{path}:{line}" if line else path
