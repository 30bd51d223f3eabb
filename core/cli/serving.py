"""`flows-tui serve`: the schedules of flows.toml, headless, until stopped."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from flows_tui.errors import FlowsTuiError, UsageError
from flows_tui.safe_text import visible

from . import _load_config, main


def _schedule_states(config: Any) -> dict:
    """What `serve` recorded of each schedule (last due time, paused); empty without a store."""
    from flows_tui.record.store import Store, store_path

    if not store_path(config.project.state_dir).exists():
        return {}
    try:
        return Store.open(config.project.state_dir, read_only_ok=True).schedule_states()
    except FlowsTuiError:
        return {}


@main.command(short_help="Run the scheduled flows headless, until stopped.")
@click.option("--grace", type=float, default=30.0, show_default=True, metavar="SECONDS",
              help="On SIGTERM/Ctrl-C, how long running runs may finish before they are cancelled.")
@click.option("--address", help="Dask scheduler to attach to (tcp://host:8786).")
@click.option("--cluster", "cluster_profile", metavar="NAME", help="The [clusters.NAME] profile of flows.toml to run on.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.pass_context
def serve(ctx: click.Context, grace: float, address: str | None, cluster_profile: str | None,
          config_path: str | None) -> None:
    """Run the flows scheduled in flows.toml ([flows.NAME] cron or interval), headless, until stopped."""
    import threading

    from flows_tui.project.catalog import located_in_config
    from flows_tui.engine.cluster import choose_cluster
    from flows_tui.errors import ParameterError
    from flows_tui.project.flows_directory import FlowsDirectory
    from flows_tui.schedule.serve import Service, scheduled_flows, stop_on_signals

    config = _load_config(config_path or ctx.obj.get("config_path"))
    if not config.project.flows_dir.exists():
        raise UsageError(f"flows directory {config.project.flows_dir} does not exist "
                         "(set [project] flows_dir in flows.toml)")
    directory = FlowsDirectory(config.project.flows_dir)
    directory.load()
    try:
        served = scheduled_flows(config, directory.files)
    except ParameterError as error:  # a scheduled run's values all come from flows.toml: name the key
        raise located_in_config(config, directory.flows.get(error.flow or ""), error) from None
    choice = choose_cluster(address or ctx.obj.get("address"), config,
                            profile=cluster_profile or ctx.obj.get("cluster_profile"))
    console = Console(highlight=False, soft_wrap=True)
    for error in directory.errors:
        console.print(visible(f"warning: {error}"), markup=False)
    service = Service(served, config, choice, console=console)

    def reloaded(event: Any) -> None:
        """A save: new code for the next runs (runs in progress keep theirs), new schedules."""
        from flows_tui.project.catalog import reload_lines

        for line in reload_lines(event, directory, with_time=False):
            service.say(line)
        try:
            service.update(scheduled_flows(config, directory.files))
        except FlowsTuiError as error:
            service.say(f"warning: {error}; the schedules stay as they were")

    directory.subscribe(reloaded)
    stop = threading.Event()
    restore = stop_on_signals(stop)
    try:
        directory.watch()
        service.run(stop, grace)
    finally:
        directory.stop()
        restore()
