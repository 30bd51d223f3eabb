"""The project's commands: `list` (and `list --watch`), `check` and `init`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from flows_tui.errors import UsageError
from flows_tui.safe_text import plain, visible

from . import EXIT_USAGE, _load_config, _say_warnings, _stderr, main
from .serving import _schedule_states


@main.command("list", short_help="The flows: file, parameters, schedule, next run.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON lines: one per flow, one per file that fails to load.")
@click.option("--watch", is_flag=True,
              help="Then keep running: print what each save, new, deleted or broken file changed (Ctrl-C stops).")
@click.pass_context
def list_flows(ctx: click.Context, config_path: str | None, as_json: bool, watch: bool) -> None:
    """List the discovered flows with their file, parameters, schedule and next run.

    A file that fails to load is listed with its error; the others are still listed (exit 0).
    """
    import datetime as _dt

    from flows_tui.project.catalog import flow_entries, stdout_to_stderr
    from flows_tui.project.flows_directory import FlowsDirectory

    config = _load_config(config_path or ctx.obj.get("config_path"), require_env=False)
    directory = config.project.flows_dir
    if not directory.exists():
        raise UsageError(f"flows directory {directory} does not exist (set [project] flows_dir in flows.toml)")
    # Each file is read in the child process that imports it, at every save too; none is
    # imported here. No [flows.X] parameters are checked (that is `check`'s work).
    flows_directory = FlowsDirectory(directory, import_here=False)
    with stdout_to_stderr():
        flows_directory.load()
    entries = flow_entries(config, flows_directory.files, _dt.datetime.now(_dt.timezone.utc),
                           _schedule_states(config))
    if as_json:
        for entry in entries:
            click.echo(json.dumps(entry.document()))
    elif entries:
        console = Console(highlight=False)
        console.print(_flows_table(entries, directory, narrow=console.width < NARROW))
    else:
        Console(highlight=False).print(visible(f"no flow files in {directory}: write flows/NAME.py with a @flow "
                                               "function, or run flows-tui init"), markup=False)
    if watch:
        _watch(flows_directory, as_json)


def _watch(flows_directory: Any, as_json: bool) -> None:
    """`list --watch`: a line for each reload, as it happens, until Ctrl-C."""
    import threading

    from flows_tui.project.catalog import reload_lines, stdout_to_stderr
    from flows_tui.project.config import display_path

    out = sys.stdout

    def show(event: Any) -> None:
        lines = [json.dumps(event.document())] if as_json else [visible(line) for line in reload_lines(event, flows_directory)]
        for line in lines:
            click.echo(line, file=out)

    flows_directory.subscribe(show)
    # A flow file that prints while it is imported writes to stderr, never between these lines.
    with stdout_to_stderr():
        flows_directory.watch()
        _stderr().print(visible(f"watching {display_path(flows_directory.directory)} for changes (Ctrl-C to stop)"),
                        markup=False)
        forever = threading.Event()
        try:
            while not forever.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            flows_directory.stop()


# Below this many columns the file goes under the flow's name: the parameters get the room (at 80
# columns they had 12, and folded mid-name).
NARROW = 110


def _flows_table(entries: list, directory: Path, *, narrow: bool = False) -> Any:
    """`list` for people: one row per flow; a symbol and a word for the state, so NO_COLOR loses nothing."""
    from rich.table import Table
    from rich.text import Text

    from flows_tui.project.config import display_path

    table = Table(box=None, header_style="bold", padding=(0, 1), title=plain(f"flows in {display_path(directory)}"),
                  title_justify="left", expand=narrow)
    # Names stay whole; the rest folds rather than being cut with "…", of no use in 80 columns.
    columns = ("", "flow", "parameters", "schedule", "next run") if narrow else \
        ("", "flow", "file", "parameters", "schedule", "next run")
    for column in columns:
        # In narrow terminals the parameters take twice the room of the schedule and the next run, which
        # fold at their spaces ("2026-12-07 / 01:00 UTC").
        ratio = None if not narrow or column in ("", "flow") else 2 if column == "parameters" else 1
        table.add_column(column, overflow="fold", no_wrap=column in ("", "flow", "file"), ratio=ratio)

    def add(state: Text, name: Text, file: Text, *rest: Any) -> None:
        if narrow:  # the file under the name
            table.add_row(state, Text.assemble(name, "\n", Text(file.plain, style="dim")), *rest)
        else:
            table.add_row(state, name, file, *rest)

    for entry in entries:
        file = _relative_to(entry.file, directory)
        if entry.error is not None:
            where = f"{file}:{entry.line}" if entry.line else file
            add(Text("✗ error", style="red"), plain(entry.name or "-", "bold", one_line=True),
                plain(where, one_line=True), plain(entry.reason or entry.error, "red"), "", "")
            continue
        shown = [f"{name} (required)" if name in entry.required else f"{name}={json.dumps(value)}"
                 for name, value in entry.parameters.items()]
        when = ""
        if entry.next_run is not None:
            when = entry.next_run.strftime("%Y-%m-%d %H:%M:%S %Z" if entry.next_run.second else "%Y-%m-%d %H:%M %Z")
        add(Text("✓ ok", style="green"), plain(entry.name, "bold", one_line=True), plain(file, one_line=True),
            plain(", ".join(shown)), plain(entry.schedule or ""), when)
    return table


def _relative_to(file: str, directory: Path) -> str:
    try:
        return str(Path(file).resolve().relative_to(directory))
    except (ValueError, OSError, RuntimeError):  # elsewhere, or a symlink loop
        return file


@main.command(short_help="Check flows.toml and every flow file (exit 2 on problems).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.pass_context
def check(ctx: click.Context, config_path: str | None) -> None:
    """Load flows.toml and every flow file; print each problem as file:line: message (exit 2 if any)."""
    from flows_tui.project.catalog import check_project

    config_path = config_path or ctx.obj.get("config_path")
    report = check_project(Path(config_path) if config_path else None, cwd=Path.cwd())
    _say_warnings(report.warnings)
    for problem in report.problems:
        click.echo(visible(problem))
    if report.problems:
        count = len(report.problems)
        _stderr().print(f"✗ {count} problem{'s' if count != 1 else ''}", style="red")
        raise click.exceptions.Exit(EXIT_USAGE)
    flows, files = report.flows, report.files
    click.echo(f"ok: {flows} flow{'s' if flows != 1 else ''} in {files} file{'s' if files != 1 else ''}")


@main.command(short_help="Start a project: flows/riders.py and a commented flows.toml.")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Start a project in DIRECTORY (default: here): flows/riders.py and a commented flows.toml."""
    from flows_tui.project.scaffold import create_project

    folder = Path(directory)
    written = create_project(folder)
    console = Console(highlight=False, soft_wrap=True)
    for path in written:
        console.print(f"wrote {visible(path)}", markup=False)
    go = "" if folder.resolve() == Path.cwd().resolve() else f"cd {visible(folder)}, then "
    console.print(f"next: {go}`flows-tui run riders` (headless) or `flows-tui` (the UI)", markup=False)
