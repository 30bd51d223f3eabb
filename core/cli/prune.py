"""`flows-tui prune`: remove old runs from the store, and say what went."""

from __future__ import annotations

import click

from flows_tui.errors import UsageError
from flows_tui.project.config import display_path, parse_interval
from flows_tui.record.progress import format_size

from . import _load_config, _open_store, main


@main.command(short_help="Remove old runs from the store: --older-than 30d, --keep N.")
@click.option("--older-than", "older_than", metavar="DURATION",
              help='Remove runs started longer ago than this ("30d", "12h"). Default: [project] keep.')
@click.option("--keep", "keep", type=int, metavar="N",
              help="Keep only the newest N runs. Default: [project] keep_runs.")
@click.option("--vacuum", is_flag=True, help="Then give the freed space back to the disk (rewrites the file).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.pass_context
def prune(ctx: click.Context, older_than: str | None, keep: int | None, vacuum: bool, config_path: str | None) -> None:
    """Remove ended runs older than --older-than or beyond the newest --keep, with their task runs,
    attempts and log lines. Runs in progress are never removed; cached results keep their own
    expiry (`flows-tui cache clear`)."""
    config = _load_config(config_path or ctx.obj.get("config_path"), require_env=False)
    age = config.project.keep
    if older_than is not None:
        try:
            age = parse_interval(older_than)
        except ValueError:
            raise UsageError(f'--older-than: expected a duration such as "30d", "12h" or "1d12h", '
                             f"got {older_than!r}") from None
    if keep is not None and keep < 0:
        raise UsageError(f"--keep: expected a number of runs, 0 or more, got {keep}")
    keep = keep if keep is not None else config.project.keep_runs
    if age is None and keep is None and not vacuum:
        raise UsageError("say what to remove: --older-than 30d, --keep 1000, or [project] keep / keep_runs "
                         "in flows.toml")
    store = _open_store(config)
    if store.read_only is not None:
        raise UsageError(f"cannot prune: {store.read_only}")
    if age is not None or keep is not None:
        click.echo(store.prune(age, keep).describe())
    if vacuum:
        before, after = store.vacuum()
        click.echo(f"vacuumed {display_path(store.path)}: {format_size(before)} → {format_size(after)}")
