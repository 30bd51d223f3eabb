"""flows.toml → a typed Config, with errors that name the file, the key path and the line."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from flows_tui.errors import ConfigError

from .cluster_config import ClusterConfig, ClusterProfile, TLSConfig, read_cluster, read_profiles
from .schedules import ScheduleSettings, cron_problem
from .toml_reader import KeyLines, Reader, display_path, parse_interval

__all__ = ["CONFIG_NAME", "LOG_LEVELS", "ClusterConfig", "Config", "FlowConfig", "NotifyConfig", "ProjectConfig",
           "SlackConfig", "TLSConfig", "WebhookConfig", "display_path", "find_config", "load_config",
           "parse_config", "parse_interval", "reload_config"]

CONFIG_NAME = "flows.toml"
LOG_LEVELS = {name: getattr(logging, name) for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}


@dataclass(frozen=True)
class ProjectConfig:
    flows_dir: Path
    state_dir: Path
    log_level: int = logging.INFO  # what runs capture from logging, print and warnings
    import_timeout: float = 10.0  # seconds one flow file's import may take before it is an error
    keep: _dt.timedelta | None = None  # history older than this is pruned (None: kept)
    keep_runs: int | None = None  # only the newest this many runs are kept (None: all)


@dataclass(frozen=True)
class SlackConfig:
    # The URL is the credential (and often comes from ${VAR}): kept out of repr, so out of logs and tracebacks.
    webhook_url: str = field(repr=False)
    on: tuple[str, ...] = ("Failed", "Crashed")


@dataclass(frozen=True)
class WebhookConfig:
    # URL and headers may carry tokens: kept out of repr, so out of logs and tracebacks.
    url: str = field(repr=False)
    on: tuple[str, ...] = ("Failed", "Crashed")
    headers: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class NotifyConfig:
    slack: SlackConfig | None = None
    webhook: WebhookConfig | None = None
    # Notifiers configured but off, with the unset environment variables they need.
    off: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowConfig(ScheduleSettings):
    """A `[flows.NAME]` table: its schedule settings (cron or interval, timezone, overlap, catchup),
    the parameters its runs get, and the cluster profile they use."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    # The line of each value in `parameters`, so a bad one is named where it is written.
    parameter_lines: dict[str, int] = field(default_factory=dict, compare=False)
    cluster: str | None = None  # a [clusters.NAME] profile its runs use

    def parameter_location(self, parameter: str | None) -> tuple[str, int | None]:
        """(key path, line) of `parameter`'s value, else of the parameters table."""
        line = self.parameter_lines.get(parameter or "")
        if line is not None:
            return f"flows.{self.name}.parameters.{parameter}", line
        return f"flows.{self.name}.parameters", self.line


@dataclass(frozen=True)
class Config:
    path: Path | None
    root: Path
    project: ProjectConfig
    cluster: ClusterConfig
    notify: NotifyConfig
    flows: dict[str, FlowConfig]
    clusters: dict[str, ClusterProfile] = field(default_factory=dict)
    # What is read but not used, said once at start (a notifier off for an unset ${VAR}).
    warnings: tuple[str, ...] = ()


# The import deadline of the flows.toml read last: flow files are imported by code that has no
# config at hand (the reload thread, `run FLOW`'s lookup).
_import_timeout = 10.0


def import_timeout() -> float:
    """Seconds one flow file's import may take: `[project] import_timeout` of the flows.toml read last."""
    return _import_timeout


def _project(reader: Reader, data: dict, root: Path) -> ProjectConfig:
    keys = ("project",)
    reader.table(data, keys, {"flows_dir", "state_dir", "log_level", "import_timeout", "keep", "keep_runs"})
    flows_dir = reader.get(data, keys, "flows_dir", str)
    if flows_dir is None:
        flows_dir = "flows" if (root / "flows").is_dir() else "."
    state_dir = reader.get(data, keys, "state_dir", str, ".flows-tui")
    level = reader.get(data, keys, "log_level", str, "INFO")
    if level.upper() not in LOG_LEVELS:
        reader.report(reader.error(keys + ("log_level",),
                                   f"log_level must be one of {', '.join(LOG_LEVELS)} (any case), got {level!r}"))
        level = "INFO"
    import_timeout = reader.get(data, keys, "import_timeout", (int, float), 10.0)
    if isinstance(import_timeout, bool) or not import_timeout > 0:
        reader.report(reader.error(keys + ("import_timeout",),
                                   f"import_timeout must be a number of seconds above 0, got {import_timeout!r}"))
        import_timeout = 10.0
    keep = None
    raw_keep = reader.get(data, keys, "keep", str)
    if raw_keep is not None:
        try:
            keep = parse_interval(raw_keep)
        except ValueError:
            reader.report(reader.error(keys + ("keep",), f"keep must be a duration such as \"30d\", \"12h\" or "
                                                         f"\"1d12h\", got {raw_keep!r}"))
    keep_runs = reader.positive(data, keys, "keep_runs")
    global _import_timeout
    _import_timeout = float(import_timeout)  # every flow file imported from now on
    return ProjectConfig(flows_dir=(root / flows_dir).resolve(), state_dir=(root / state_dir).resolve(),
                         log_level=LOG_LEVELS[level.upper()], import_timeout=float(import_timeout),
                         keep=keep, keep_runs=keep_runs)


def _notify(reader: Reader, data: dict, warnings: list[str]) -> NotifyConfig:
    """[notify.*]. A notifier whose URL or headers use an unset `${VAR}` is off, with a warning:
    the secret is often set only where the schedules are served, and the flows must run without it."""
    keys = ("notify",)
    reader.table(data, keys, {"slack", "webhook"})
    slack = webhook = None
    off: dict[str, tuple[str, ...]] = {}

    def off_if_unset(name: str, unset: list[tuple[tuple[str, ...], str]]) -> bool:
        """`unset`: (the key whose value uses it, the variable) for each unset variable."""
        if not unset:
            return False
        off[name] = tuple(dict.fromkeys(variable for _, variable in unset))
        where = unset[0][0]
        names = ", ".join(off[name])
        verb = "is" if len(off[name]) == 1 else "are"
        warnings.append(str(reader.error(where, f"environment variable {names} {verb} not set: "
                                                f"the {name} notifier is off")))
        return True

    def expand(value: str, where: tuple[str, ...], unset: list) -> str:
        names: list[str] = []
        value = reader.expand(value, where, names)
        unset.extend((where, name) for name in names)
        return value

    if "slack" in data:
        slack_keys = keys + ("slack",)
        table = reader.table(data["slack"], slack_keys, {"webhook_url", "on"})
        raw = reader.get(table, slack_keys, "webhook_url", str, expand=False)
        if not raw:
            raise reader.error(slack_keys, "missing key 'webhook_url'")
        unset: list = []
        url = expand(raw, slack_keys + ("webhook_url",), unset)
        on = reader.states(table, slack_keys)
        if not off_if_unset("slack", unset):
            slack = SlackConfig(url, on)
    if "webhook" in data:
        hook_keys = keys + ("webhook",)
        table = reader.table(data["webhook"], hook_keys, {"url", "on", "headers"})
        raw = reader.get(table, hook_keys, "url", str, expand=False)
        if not raw:
            raise reader.error(hook_keys, "missing key 'url'")
        unset = []
        url = expand(raw, hook_keys + ("url",), unset)
        headers = reader.get(table, hook_keys, "headers", dict, {})
        headers = {str(k): expand(str(v), hook_keys + ("headers", str(k)), unset) for k, v in headers.items()}
        on = reader.states(table, hook_keys)
        if not off_if_unset("webhook", unset):
            webhook = WebhookConfig(url, on, headers)
    return NotifyConfig(slack, webhook, off)


def _flow(reader: Reader, name: str, data: Any) -> FlowConfig:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    keys = ("flows", name)
    reader.table(data, keys, {"cron", "interval", "timezone", "parameters", "overlap", "catchup", "cluster"})
    cron = reader.get(data, keys, "cron", str)
    problem = cron_problem(cron) if cron is not None else None
    if problem is not None:
        reader.report(reader.error(keys + ("cron",), f"flow {name!r}: invalid cron expression {cron!r}: {problem}"))
        cron = None
    interval = None
    if "interval" in data:
        raw = reader.get(data, keys, "interval", (str, int, float))
        try:
            interval = parse_interval(raw) if raw is not None else None  # None: a wrong type, reported
        except ValueError:
            reader.report(reader.error(keys + ("interval",), f"flow {name!r}: invalid interval {raw!r} "
                                                             "(expected e.g. \"90s\", \"5m\", \"1h\", \"1d\")"))
    if cron is not None and interval is not None:
        raise reader.error(keys + ("interval",), f"flow {name!r}: give either cron or interval, not both")
    timezone = reader.get(data, keys, "timezone", str)
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            reader.report(reader.error(keys + ("timezone",), f"flow {name!r}: unknown timezone {timezone!r} "
                                                             "(expected an IANA name like \"Europe/Berlin\")"))
            timezone = None
    parameters = reader.get(data, keys, "parameters", dict, {})
    parameters = {k: reader.expand(v, keys + ("parameters", k)) if isinstance(v, str) else v
                  for k, v in parameters.items()}
    choices = {"overlap": ("skip", "queue", "allow"), "catchup": ("skip", "once", "all")}
    policies = {}
    for key, allowed in choices.items():
        value = reader.get(data, keys, key, str, allowed[0])
        if value not in allowed:
            reader.report(reader.error(keys + (key,),
                                       f"flow {name!r}: {key} must be one of {', '.join(allowed)}, got {value!r}"))
            value = allowed[0]
        policies[key] = value
    lines = {k: line for k in parameters if (line := reader.lines.find(keys + ("parameters", k))) is not None}
    return FlowConfig(name, parameters, line=reader.lines.find(keys), parameter_lines=lines,
                      cluster=reader.get(data, keys, "cluster", str), cron=cron, interval=interval, timezone=timezone,
                      **policies)


def parse_config(text: str, *, path: Path, environ: Mapping[str, str] | None = None,
                 require_env: bool = True, problems: list[ConfigError] | None = None) -> Config:
    """flows.toml's text as a Config; the first problem raises ConfigError.

    With `problems` (a list), every problem found is appended to it instead and the Config
    returned leaves the bad values out: `flows-tui check` reports them all at once. Text that
    is not TOML at all still raises.
    """
    environ = os.environ if environ is None else environ
    root = path.parent.resolve()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"\(at line (\d+), column \d+\)", str(error))
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        raise ConfigError(f"invalid TOML: {reason}", path=display_path(path), line=int(match.group(1)) if match else None) from None
    reader = Reader(path, KeyLines(text), environ, require_env=require_env, problems=problems)
    warnings: list[str] = []
    reader.table(data, (), {"project", "cluster", "clusters", "notify", "flows"})
    flows_table = reader.section(lambda: reader.table(data.get("flows", {}), ("flows",), set(data.get("flows", {}))),
                                 dict)
    flows = {}
    for name, value in flows_table.items():
        flow = reader.section(lambda: _flow(reader, name, value), lambda: None)
        if flow is not None:
            flows[name] = flow
    clusters = reader.section(lambda: read_profiles(reader, data.get("clusters", {}), root), dict)
    for name, flow in list(flows.items()):
        if flow.cluster is not None and flow.cluster not in clusters:
            reader.report(reader.error(("flows", name, "cluster"), f"flow {name!r}: no cluster profile named "
                                       f"{flow.cluster!r} (profiles: {', '.join(clusters) or 'none; add [clusters.NAME]'})"))
            flows[name] = dataclasses.replace(flow, cluster=None)
    return Config(
        path=path,
        root=root,
        project=reader.section(lambda: _project(reader, data.get("project", {}), root),
                               lambda: _project(Reader(path, KeyLines(""), environ), {}, root)),
        cluster=reader.section(lambda: read_cluster(reader, data.get("cluster", {}), root), ClusterConfig),
        notify=reader.section(lambda: _notify(reader, data.get("notify", {}), warnings), NotifyConfig),
        flows=flows,
        clusters=clusters,
        warnings=tuple(warnings),
    )


def find_config(start: Path) -> Path | None:
    candidate = start / CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_config(path: Path | None = None, *, cwd: Path | None = None,
                environ: Mapping[str, str] | None = None, require_env: bool = True,
                problems: list[ConfigError] | None = None) -> Config:
    """Read `path`, else flows.toml in `cwd`, else defaults for `cwd`.

    `require_env=False` leaves an unset `${VAR}` as written instead of failing: for commands
    that only read history, which must not need the Slack secret of the runs they show.
    """
    cwd = (cwd or Path.cwd()).resolve()
    if path is None:
        path = find_config(cwd)
        if path is None:
            reader = Reader(cwd / CONFIG_NAME, KeyLines(""), os.environ if environ is None else environ)
            return Config(None, cwd, _project(reader, {}, cwd), ClusterConfig(), NotifyConfig(), {})
    elif not path.is_file():
        raise ConfigError("no such config file", path=display_path(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read: {error}", path=display_path(path)) from None
    return parse_config(text, path=path, environ=environ, require_env=require_env, problems=problems)


def reload_config(current: Config) -> tuple[Config, list[str]]:
    """flows.toml saved while a process runs: `current` with the new [flows] tables, and the
    tables that changed but apply only on restart ([project], [cluster], [notify]).

    ConfigError (or another FlowsTuiError) when the saved file does not load; the caller
    keeps `current`.
    """
    fresh = load_config(current.path, cwd=current.root)
    restart = [name for name in ("project", "cluster", "clusters", "notify") if getattr(fresh, name) != getattr(current, name)]
    return dataclasses.replace(current, flows=fresh.flows), restart
