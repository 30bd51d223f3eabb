"""`flows-tui cache`: cached task results per flow, and `cache clear`."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console

from flows_tui.errors import closest
from flows_tui.safe_text import plain, visible

from . import _load_config, _stderr, main


@main.group("cache", invoke_without_command=True, short_help="Cached task results per flow; `cache clear` removes them.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines: one per flow.")
@click.pass_context
def cache_command(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """Cached task results under state_dir: entries and bytes per flow. `cache clear [FLOW]` removes them."""
    if config_path:
        ctx.obj["config_path"] = config_path
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from flows_tui.cache import cache_directory, cache_entries
    from flows_tui.project.config import display_path
    from flows_tui.record.progress import format_size

    directory = cache_directory(_cache_config(ctx).project.state_dir)
    flows: dict[str, dict[str, Any]] = {}
    for entry in cache_entries(directory):
        summary = flows.setdefault(entry.flow or "?", {"flow": entry.flow, "entries": 0, "bytes": 0, "expired": 0})
        summary["entries"] += 1
        summary["bytes"] += entry.size
        summary["expired"] += entry.expired
    if as_json:
        for summary in flows.values():
            click.echo(json.dumps(summary))
        return
    console = Console(highlight=False)
    if not flows:
        console.print(visible(f"no cached results in {display_path(directory)}"), markup=False)
        return
    table = Table(box=None, header_style="bold", padding=(0, 1), title=plain(f"cached results in {display_path(directory)}"),
                  title_justify="left")
    for column in ("flow", "entries", "size", "expired"):
        table.add_column(column, justify="left" if column == "flow" else "right")
    for name, summary in sorted(flows.items()):
        table.add_row(plain(name, one_line=True), str(summary["entries"]), format_size(summary["bytes"]), str(summary["expired"]))
    console.print(table)


@cache_command.command("clear")
@click.argument("flow_name", metavar="[FLOW]", required=False)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.pass_context
def cache_clear(ctx: click.Context, flow_name: str | None, config_path: str | None) -> None:
    """Remove cached task results (all, or FLOW's only); print how many and how many bytes."""
    from flows_tui.cache import cache_directory, cache_entries, clear_cache
    from flows_tui.record.progress import format_size

    if config_path:
        ctx.obj["config_path"] = config_path
    directory = cache_directory(_cache_config(ctx).project.state_dir)
    count, size = clear_cache(directory, flow_name)
    of = f" of flow {flow_name!r}" if flow_name else ""
    click.echo(f"removed {count} cached result{'s' if count != 1 else ''}{of} ({format_size(size)})")
    if flow_name and not count:
        close = closest(flow_name, {entry.flow for entry in cache_entries(directory) if entry.flow})
        if close:
            _stderr().print(f"no cached results of a flow named {flow_name!r}; did you mean {close[0]!r}?",
                            markup=False)


def _cache_config(ctx: click.Context) -> Any:
    return _load_config(ctx.obj.get("config_path"), require_env=False)
