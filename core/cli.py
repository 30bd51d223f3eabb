"""The `flows-tui` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from .errors import FlowsTuiError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(error: BaseException) -> "click.exceptions.Exit":
    console = _stderr()
    console.print("[bold red]error:[/] ", end="")
    console.print(str(error), markup=False)
    return click.exceptions.Exit(EXIT_USAGE)


class _Main(click.Group):
    """`flows-tui [PATH]` starts the UI; a first argument naming a command runs that command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            ctx.meta["flows_tui.path"] = args[0]
            args = args[1:]
        return super().parse_args(ctx, args)


def _load_config(config_path: str | None):
    from .config import load_config

    return load_config(Path(config_path) if config_path else None, cwd=Path.cwd())


@click.group(cls=_Main, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.option("--address", help="Dask scheduler to attach to (tcp://host:8786).")
@click.version_option(package_name="flows-tui")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, address: str | None) -> None:
    """Develop Prefect-style flows locally on Dask: a terminal UI, and headless commands.

    Run without a command to open the UI on PATH (a flows directory or one flow file).
    """
    ctx.ensure_object(dict)
    ctx.obj.update(config_path=config_path, address=address)
    if ctx.invoked_subcommand is not None:
        return
    path = ctx.meta.get("flows_tui.path")
    try:
        config = _load_config(config_path)
    except FlowsTuiError as error:
        raise _fail(error)
    try:
        from .tui.app import run_app
    except ImportError as error:
        raise _fail(FlowsTuiError(f"the terminal UI could not start: {error}"))
    raise click.exceptions.Exit(run_app(config, path=path, address=address))


@main.command()
@click.argument("flow_spec", metavar="FLOW")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A flow parameter; repeat for several. Converted to the parameter's type hint.")
@click.option("--address", help="Dask scheduler to attach to (tcp://host:8786).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document when the run ends.")
@click.pass_context
def run(ctx: click.Context, flow_spec: str, params: tuple[str, ...], address: str | None,
        config_path: str | None, as_json: bool) -> None:
    """Run FLOW (a flow's name or file.py:function) headless; exit 0 Completed, 1 failed, 2 bad input."""
    from . import events as ev
    from .cluster import choose_cluster
    from .parameters import parse_assignments
    from .progress import Progress, print_summary, run_document
    from .reload import find_flow
    from .runner import execute

    address = address or ctx.obj.get("address")
    config_path = config_path or ctx.obj.get("config_path")
    try:
        config = _load_config(config_path)
        flow, loaded = find_flow(flow_spec, config.project.flows_dir)
        flow_config = _flow_config(config, flow)
        values: dict[str, Any] = dict(flow_config.parameters) if flow_config else {}
        typed = parse_assignments(params)
        values.update(typed)
        parameters = flow.validate(values, from_text=set(typed))
        choice = choose_cluster(address, config)
    except FlowsTuiError as error:
        raise _fail(error)

    console = Console(stderr=as_json, highlight=False, soft_wrap=True)
    live = console.is_terminal and not os.environ.get("CI")
    bus = ev.EventBus()
    progress = Progress(console, live=live)
    unsubscribe = bus.subscribe(progress.handle, name="progress")
    try:
        with progress:
            engine = execute(flow, parameters, choice, bus=bus, file=str(loaded.path))
            bus.flush()
    except FlowsTuiError as error:
        unsubscribe()
        raise _fail(error)
    except KeyboardInterrupt:
        unsubscribe()
        _stderr().print("interrupted")
        raise click.exceptions.Exit(130)
    unsubscribe()
    flow_run = engine.flow_run
    print_summary(console, flow_run)
    if as_json:
        click.echo(json.dumps(run_document(flow_run)))
    raise click.exceptions.Exit(EXIT_OK if flow_run.state in ("Completed", "Cached") else EXIT_FAILED)


def _flow_config(config: Any, flow: Any) -> Any:
    flows = getattr(config, "flows", {}) or {}
    for key in (flow.name, flow.fn.__name__, flow.name.replace("-", "_")):
        if key in flows:
            return flows[key]
    return None


if __name__ == "__main__":  # `python -m flows_tui.cli`; spawned Dask workers need this guard
    sys.exit(main())
