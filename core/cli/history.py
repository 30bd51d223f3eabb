"""The history commands: `runs` (and `runs --watch`), `logs`, and `cancel` across processes."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

import click
from rich.console import Console

from flows_tui.errors import UsageError, did_you_mean
from flows_tui.project.config import LOG_LEVELS
from flows_tui.safe_text import plain, visible

from . import EXIT_FAILED, _load_config, _open_store, main


@main.command(short_help="Recorded runs, newest first (of FLOW if given).")
@click.argument("flow_name", metavar="[FLOW]", required=False)
@click.option("--limit", "-n", default=50, show_default=True, help="How many runs to show (0: all).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, newest first.")
@click.option("--watch", is_flag=True, help="Then print a line as each run starts and ends, whoever runs it (Ctrl-C stops).")
@click.pass_context
def runs(ctx: click.Context, flow_name: str | None, limit: int, config_path: str | None, as_json: bool,
         watch: bool) -> None:
    """List recorded runs, newest first (of FLOW only, if given); with --watch, then follow them."""
    config = _load_config(config_path or ctx.obj.get("config_path"), require_env=False)
    if _no_runs_yet(config):
        # An empty history is not an error (--json prints no lines: an empty JSON-lines stream);
        # --watch waits for the first run, whichever process records it.
        if not watch or not _first_store(config, as_json):
            return
    store = _open_store(config)
    found = store.runs(flow_name, limit=limit or None)
    if flow_name is not None and not found and flow_name not in store.flows():
        raise UsageError(f"no runs of a flow named {flow_name!r}{did_you_mean(flow_name, store.flows())}")
    if as_json:
        for summary in found:
            click.echo(json.dumps(summary.document()))
    else:
        _runs_table(found)
    if watch:
        _watch_runs(store, flow_name, as_json, listed={summary.run_id for summary in found})


def _no_runs_yet(config: Any) -> bool:
    """True, having said so on stderr, when nothing was ever recorded in the state_dir (no store there)."""
    from flows_tui.project.config import display_path
    from flows_tui.record.store import store_path

    if store_path(config.project.state_dir).exists():
        return False
    click.echo(f"no runs recorded yet in {display_path(config.project.state_dir)} (`flows-tui run FLOW` records one)",
               err=True)
    return True


def _first_store(config: Any, as_json: bool) -> bool:
    """Wait, until Ctrl-C, for a store in the state_dir (the first run of any process creates it);
    whether one came."""
    from flows_tui.record.store import store_path

    if not as_json:
        Console(stderr=True).print("watching for the first run (Ctrl-C to stop)", style="dim", markup=False)
    path = store_path(config.project.state_dir)
    try:
        while not path.exists():  # opening it then waits for its creator's tables (SQLite's lock)
            time.sleep(0.2)
    except KeyboardInterrupt:
        return False
    return True


def _runs_table(found: list) -> None:
    from rich.table import Table

    from flows_tui.record.progress import format_duration, state_text

    # One space between columns, so that the cluster fits in 80 columns beside a flow name of 12 or so.
    table = Table(box=None, header_style="bold", padding=(0, 1), collapse_padding=True, pad_edge=False)
    for column in ("run", "flow", "state", "started", "duration"):
        table.add_column(column, no_wrap=column != "flow")
    table.add_column("cluster", overflow="fold", max_width=24)  # a long address folds, in its own column
    for summary in found:
        table.add_row(plain(summary.run_id, one_line=True), plain(summary.flow, one_line=True), state_text(summary.state),
                      summary.started.astimezone().strftime("%Y-%m-%d %H:%M:%S"), format_duration(summary.duration),
                      plain(_short_cluster(summary.cluster), one_line=True))
    Console(highlight=False).print(table)


def _short_cluster(cluster: str | None) -> str:
    """The cluster as the table shows it: an address without tcp://, the scheme everyone assumes
    (tls:// and others stay), so that host and port fit on one line; --json keeps it whole."""
    cluster = cluster or ""
    return cluster[len("tcp://"):] if cluster.startswith("tcp://") else cluster


@main.command(short_help="A run's log lines (RUN_ID, or a unique prefix).")
@click.argument("run_id", metavar="RUN_ID")
@click.option("--task", "task_name", metavar="NAME", help="Only this task's lines (a task run's or a task's name).")
@click.option("--level", type=click.Choice(list(LOG_LEVELS), case_sensitive=False),
              default="DEBUG", show_default=True, help="Only lines at this level or above.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the run ends.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.pass_context
def logs(ctx: click.Context, run_id: str, task_name: str | None, level: str, follow: bool, config_path: str | None,
         as_json: bool) -> None:
    """Print the log lines of RUN_ID (a unique prefix is enough), from the store."""
    from flows_tui.record.progress import log_plain, log_text, run_end_line
    from flows_tui.record.store import StoredLine

    config = _load_config(config_path or ctx.obj.get("config_path"), require_env=False)
    store = _open_store(config)
    run_id = store.find_run(run_id)
    if task_name is not None and task_name not in store.task_names(run_id):
        hint = did_you_mean(task_name, store.task_names(run_id))
        raise UsageError(f"run {run_id} has no task named {task_name!r}{hint}")
    console = Console(highlight=False, soft_wrap=True)
    threshold = LOG_LEVELS[level.upper()]

    def show(task: str | None, line: Any) -> None:
        if as_json:
            click.echo(json.dumps(StoredLine(line.id or 0, run_id, task, line).document()))
        else:
            console.print(log_text(task or "flow", line), highlight=False, soft_wrap=True)

    if as_json and not follow:  # a big run's lines, all at once
        for documents in store.logs_json(run_id, task=task_name, level=threshold):
            click.echo("\n".join(documents))
        return
    head = store.journal_head()  # read first: whatever is committed after the lines below comes from it
    final = store.is_final(run_id)
    stored_lines = store.logs(run_id, task=task_name, level=threshold)
    last = stored_lines[-1].id if stored_lines else 0
    if as_json:
        for stored in stored_lines:
            show(stored.task, stored.line)
    else:  # a thousand lines a print: one print a line took most of the command's time in a big run
        from rich.text import Text

        for start in range(0, len(stored_lines), 1000):
            batch = stored_lines[start:start + 1000]
            if console.is_terminal or any("\t" in stored.line.message for stored in batch):
                console.print(Text("\n").join(log_text(stored.task or "flow", stored.line) for stored in batch),
                              highlight=False, soft_wrap=True)
            else:  # piped: the same text without Rich laying it out (a fifth of the time)
                console.file.write("".join(f"{log_plain(stored.task or 'flow', stored.line)}\n" for stored in batch))
    if not follow:
        return
    if not final:
        _follow_logs(store, run_id, head, last, task_name, threshold, show)
    if not as_json:  # how it ended, as `run` ends its output
        console.print(run_end_line(store.open_run(run_id)), highlight=False, soft_wrap=True)


def _follow_logs(store: Any, run_id: str, head: int, last: int, task_name: str | None, threshold: int,
                 show: Callable[[str | None, Any], None]) -> None:
    """`logs --follow`: the run's new lines from the store's journal, until the run ends (or Ctrl-C)."""
    from flows_tui.record import events as ev
    from flows_tui.record.model import RunModel
    from flows_tui.record.tail import JournalTail
    from flows_tui.states import FINAL_STATES

    model, ended = RunModel(), threading.Event()

    def fold(events: list) -> None:
        for event in events:
            model.apply(event)
            if event.run_id != run_id:
                continue
            if type(event) is ev.LogLines:
                run = model.runs.get(run_id)
                for line in event.lines:
                    task_run = run.task_runs.get(line.task_run_id) if run and line.task_run_id else None
                    if (line.id or 0) <= last or line.level < threshold or (
                            task_name is not None and (task_run is None or task_name not in (task_run.name,
                                                                                              task_run.task))):
                        continue
                    show(task_run.name if task_run else None, line)
            elif type(event) is ev.FlowStateChanged and event.state in FINAL_STATES:
                ended.set()

    tail = JournalTail(store, fold, recover=store.read_only is None)  # the owner may be killed meanwhile
    tail.start(after=head)
    try:
        while not ended.wait(0.5):
            if store.is_final(run_id):  # the tail brings the lines before its end; a second at most
                ended.wait(2.0)  # (an end written without a journal row, on a full disk, comes alone)
                break
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130)
    finally:
        tail.stop()


def _watch_runs(store: Any, flow_name: str | None, as_json: bool, listed: set[str]) -> None:
    """A line as each run starts and as it ends, from the store's journal, until Ctrl-C."""
    from flows_tui.record import events as ev
    from flows_tui.record.model import RunModel
    from flows_tui.record.progress import state_text
    from flows_tui.record.store import RunSummary
    from flows_tui.record.tail import JournalTail
    from flows_tui.states import FINAL_STATES

    model = RunModel()
    console = Console(highlight=False, soft_wrap=True)

    def say(run: Any, event: Any) -> None:
        if as_json:
            click.echo(json.dumps(RunSummary(run.run_id, run.flow, run.state, run.started, run.ended,
                                             run.error, cluster=run.cluster).document()))
            return
        what = state_text(run.state) if type(event) is ev.FlowStateChanged else plain("started", "bold")
        line = plain(f"{run.started.astimezone():%Y-%m-%d %H:%M:%S} {run.run_id} {run.flow} ", one_line=True)
        line.append_text(what)
        if run.error:
            line.append(f"  {visible(run.error.splitlines()[0] if run.error.strip() else run.error)}", style="red")
        console.print(line)

    def fold(events: list) -> None:
        for event in events:
            model.apply(event)
            run = model.runs.get(event.run_id)
            if run is None or (flow_name is not None and run.flow != flow_name):
                continue
            if type(event) is ev.FlowRunStarted and event.run_id not in listed:
                listed.add(event.run_id)
                say(run, event)
            elif type(event) is ev.FlowStateChanged and event.state in FINAL_STATES:
                say(run, event)

    tail = JournalTail(store, fold, recover=store.read_only is None)
    tail.start()
    if not as_json:
        Console(stderr=True).print("watching for runs (Ctrl-C to stop)", style="dim", markup=False)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        tail.stop()


@main.command(short_help="Cancel a run in progress, whichever flows-tui process runs it.")
@click.argument("run_id", metavar="RUN_ID")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.pass_context
def cancel(ctx: click.Context, run_id: str, config_path: str | None) -> None:
    """Cancel RUN_ID (a unique prefix is enough): its owner (serve, a run, the UI) is asked through the
    store and cancels it within a second, recorded Cancelled with who asked. Exit 0 when it is
    Cancelled, 1 when it had ended, its process is gone, or no answer came."""
    from flows_tui.launch.requests import cancel_run

    config = _load_config(config_path or ctx.obj.get("config_path"), require_env=False)
    store = _open_store(config)
    if store.read_only is not None:
        raise UsageError(f"cannot ask for a cancel: {store.read_only}")
    outcome = cancel_run(store, store.find_run(run_id))
    click.echo(visible(outcome.message))
    if not outcome.cancelled:
        raise click.exceptions.Exit(EXIT_FAILED)
