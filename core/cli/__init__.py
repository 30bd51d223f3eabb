"""The `flows-tui` command line.

Here: the `main` group (the UI when no command is given) and what every command shares:
loading flows.toml, the one `error:` line and its exit code, opening the store. Each group
of commands is a module of its own, registered on `main` when imported, which is when one of
its commands is asked for (COMMAND_MODULES): running (run, debug), serving (serve), history
(runs, logs, cancel), project (list, check, init), cache, prune.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flows_tui.errors import FlowsTuiError
from flows_tui.safe_text import visible
from flows_tui.terminal import exit_now

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _stderr() -> Console:
    from rich.console import Console  # when something is said: the UI's first frame comes before Rich's import

    return Console(stderr=True, highlight=False, soft_wrap=True)


class CommandError(click.ClickException):
    """A user's error, as every command reports it: one `error:` line on stderr (the text made
    safe for a terminal), exit 2. Commands raise FlowsTuiError; the group turns it into this."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        console = _stderr()
        console.print("[bold red]error:[/] ", end="")
        console.print(visible(self.message), markup=False)


def _store_problem(message: str) -> None:
    """The run store stopped taking a run's history (a full disk): one line when it happens; the run goes on."""
    console = _stderr()
    console.print("[bold red]error:[/] ", end="")
    console.print(visible(message), markup=False)


# Each group of commands is a module, imported when one of its commands is asked for (or for
# `--help`), so the UI and `flows-tui runs` do not pay for importing `run`'s or `serve`'s code.
# Importing the module registers its commands on `main`.
COMMAND_MODULES = {
    "run": "running", "debug": "running", "serve": "serving", "runs": "history", "logs": "history",
    "cancel": "history", "list": "project", "check": "project", "init": "project", "cache": "cache",
    "prune": "prune",
}


class _Main(click.Group):
    """`flows-tui [PATH]` starts the UI; a first argument naming a command runs that command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"{__name__}.{COMMAND_MODULES[cmd_name]}")
        return self.commands.get(cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.list_commands(ctx):
            ctx.meta["flows_tui.path"] = args[0]
            args = args[1:]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlowsTuiError as error:
            raise CommandError(str(error)) from None
        except KeyboardInterrupt:  # before the command took Ctrl-C in hand (reading flows.toml, importing flows)
            _stderr().print("interrupted")
            raise click.exceptions.Exit(130) from None


def _load_config(config_path: str | None, *, require_env: bool = True, say_warnings: bool = True):
    """flows.toml; a command that runs flows says once what in it is off (a notifier without its ${VAR})."""
    from flows_tui.project.config import load_config

    config = load_config(Path(config_path) if config_path else None, cwd=Path.cwd(), require_env=require_env)
    if config.path is not None:  # where `cluster("NAME")` in a task, on a worker we start, finds the profiles
        os.environ.setdefault("FLOWS_TUI_CONFIG", str(config.path.resolve()))
    if require_env and say_warnings:
        _say_warnings(config.warnings)
    return config


def _say_warnings(warnings: Any) -> None:
    console = _stderr()
    for warning in warnings:
        console.print("[yellow]warning:[/] ", end="")
        console.print(visible(warning), markup=False)


@click.group(cls=_Main, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.option("--address", help="Dask scheduler to attach to (tcp://host:8786).")
@click.option("--cluster", "cluster_profile", metavar="NAME", help="The [clusters.NAME] profile of flows.toml to run on.")
@click.option("--debug", is_flag=True,
              help="Tracebacks keep flows-tui's and Dask's own frames (as FLOWS_TUI_DEBUG=1 does).")
@click.version_option(package_name="flows-tui")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, address: str | None, cluster_profile: str | None,
         debug: bool) -> None:
    """Develop Prefect-style flows locally on Dask: a terminal UI, and headless commands.

    Run without a command to open the UI on PATH (a flows directory or one flow file).
    """
    if debug:  # the environment, so the embedded cluster's worker processes see it too
        from flows_tui.tracebacks import DEBUG_ENV

        os.environ[DEBUG_ENV] = "1"
    ctx.ensure_object(dict)
    ctx.obj.update(config_path=config_path, address=address, cluster_profile=cluster_profile)
    if ctx.invoked_subcommand is not None:
        return  # each command that reads or records runs opens the store, which recovers crashed runs
    path = ctx.meta.get("flows_tui.path")
    config = _load_config(config_path, say_warnings=False)  # the UI shows them
    frame = _first_frame(config, path)
    try:
        try:
            from flows_tui.tui.app import run_app
        except ImportError as error:
            raise FlowsTuiError(f"the terminal UI could not start: {error}")
        status = run_app(config, path=path, address=address, cluster=cluster_profile, first_frame=frame)
    except BaseException:
        if frame is not None:  # the UI never took the screen (or gave it back): the terminal as it was
            frame.undo()
        raise
    if status > 128:  # SIGTERM or SIGHUP: runs cancelled and recorded, the terminal given back
        exit_now(status)
    raise click.exceptions.Exit(status)


def _first_frame(config: Any, path: str | None) -> Any:
    """The UI's panes with the flows' names, on the terminal before Textual loads (half a second on a
    small machine): see tui/first_frame.py. None where there is no terminal to draw on."""
    try:
        from flows_tui.tui import first_frame
    except ImportError:
        return None
    return first_frame.draw(Path(path).resolve() if path else config.project.flows_dir)


def _open_store(config: Any):
    """The state_dir's store (marking runs of dead flows-tui processes Crashed on the way, if it can write)."""
    from flows_tui.record.store import Store, store_path

    if not store_path(config.project.state_dir).exists():
        from flows_tui.project.config import display_path

        raise FlowsTuiError(f"no runs recorded yet in {display_path(config.project.state_dir)} "
                                  "(`flows-tui run FLOW` records one)")
    return Store.open(config.project.state_dir, read_only_ok=True)
