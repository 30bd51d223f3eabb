"""Live progress and the closing summary of a headless run (rich, no Textual)."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import threading
from collections import Counter
from typing import Any

from rich import filesize
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from . import events as ev
from .failure_lines import LOGGER as FAILURE_LOGGER
from flows_tui.safe_text import plain, visible
from .model import FlowRun, RunModel
from flows_tui.states import (CACHED, CANCELLED, COMPLETED, CRASHED, FAILED, NOT_RUN, PENDING, RETRYING, RUNNING,
                              TIMED_OUT)

# A symbol and a word for every state, so nothing depends on colour (NO_COLOR, logs in CI).
SYMBOLS = {
    PENDING: "·", "Scheduled": "◷", RUNNING: "▶", RETRYING: "⟳", COMPLETED: "✓", CACHED: "≡",
    FAILED: "✗", TIMED_OUT: "⌛", CRASHED: "☠", CANCELLED: "⊘", NOT_RUN: "-",
}
STYLES = {
    RUNNING: "cyan", RETRYING: "yellow", COMPLETED: "green", CACHED: "green", FAILED: "red",
    TIMED_OUT: "red", CRASHED: "magenta", CANCELLED: "yellow", NOT_RUN: "dim",
}
ORDER = [COMPLETED, CACHED, RUNNING, RETRYING, PENDING, FAILED, TIMED_OUT, CRASHED, CANCELLED, NOT_RUN]


def state_text(state: str) -> Text:
    return Text(f"{SYMBOLS.get(state, '?')} {state}", style=STYLES.get(state, ""))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def format_size(size: float) -> str:
    """Bytes as people read them: 512 bytes, 12.3 kB, 4.5 MB (powers of 1000, as disk tools do)."""
    return filesize.decimal(int(size))


class Progress:
    """Folds the bus into a model; draws a live table on a terminal, plain lines elsewhere."""

    def __init__(self, console: Console, *, live: bool) -> None:
        self.console = console
        self.model = RunModel()
        self.said_failed: set[str] = set()  # task runs whose failure was printed as it happened
        self.origin: str | None = None  # why the run goes where it goes ("from --cluster"), on its first line
        # Runs read from their engine's own model (`follow`), by run id: not folded again here.
        self._followed: dict[str, RunModel] = {}
        self._lock = threading.Lock()
        self._live = Live(console=console, auto_refresh=True, refresh_per_second=8, transient=True,
                          get_renderable=self._render) if live else None

    def __enter__(self) -> "Progress":
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()

    def follow(self, engine: Any) -> None:
        """Read `engine`'s run from the model the engine keeps rather than folding a copy of it: a
        copy of every task run's record is most of what a headless run's bookkeeping costs in
        memory (~700 bytes a task run). Call before the run starts."""
        with self._lock:
            self._followed[engine.run_id] = engine.model

    def handle(self, batch: list) -> None:
        with self._lock:
            followed = self._followed
            for event in batch:
                if event.run_id not in followed:
                    self.model.apply(event)
        for event in batch:
            self._print(event)

    def _print(self, event: Any) -> None:
        if isinstance(event, ev.LogLines):
            for line in event.lines:
                if line.logger == FAILURE_LOGGER:
                    continue  # said below as the state changes, and in the summary with its traceback
                self.console.print(self._log_text(event.run_id, line), highlight=False, soft_wrap=True)
        elif isinstance(event, ev.TaskStateChanged) and event.state in (RETRYING, FAILED, TIMED_OUT, CRASHED):
            if event.state != RETRYING:
                self.said_failed.add(event.task_run_id)
            name = self._task_name(event.run_id, event.task_run_id)
            text = Text.assemble(state_text(event.state), f" {visible(name, one_line=True)}")
            if event.message:
                text.append(f": {visible(event.message)}")
            if event.retry_at is not None:
                wait = (event.retry_at - event.time).total_seconds()
                text.append(f" (retry in {wait:.1f}s)")
            self.console.print(text, highlight=False, soft_wrap=True)
        elif isinstance(event, ev.FlowRunStarted):
            where = f" on {event.address}" if event.address else ""
            if where and self.origin:
                where += f", {self.origin}"
            self.console.print(plain(f"▶ flow run {event.flow!r} ({event.run_id}){where}", "bold"), highlight=False,
                               soft_wrap=True)

    def _run(self, run_id: str) -> FlowRun | None:
        model = self._followed.get(run_id, self.model)
        return model.runs.get(run_id)

    def _task_name(self, run_id: str, task_run_id: str) -> str:
        run = self._run(run_id)
        task_run = run.task_runs.get(task_run_id) if run else None
        return task_run.name if task_run else task_run_id

    def _log_text(self, run_id: str, line: ev.LogLine) -> Text:
        return log_text(self._task_name(run_id, line.task_run_id) if line.task_run_id else "flow", line)

    def _render(self) -> Any:
        with self._lock:
            runs = list(self.model.runs.values())
            runs += [run for run_id, model in self._followed.items() if (run := model.runs.get(run_id))]
        if not runs:
            return Text("")
        return Group(*(task_table(run, live=True) for run in runs))


def log_text(source: str, line: ev.LogLine) -> Text:
    """One log line as the headless commands print it: time, level, where it came from, message."""
    return Text.assemble(*_log_parts(source, line))


def log_plain(source: str, line: ev.LogLine) -> str:
    """`log_text` without its styles: what a console that is not a terminal prints of it, but for a
    tab (which Rich expands to the next multiple of 8 columns)."""
    return "".join(part for part, _ in _log_parts(source, line))


def _log_parts(source: str, line: ev.LogLine) -> tuple[tuple[str, str], ...]:
    when = line.time.astimezone().strftime("%H:%M:%S")
    level = logging.getLevelName(line.level)
    style = "red" if line.level >= logging.ERROR else "yellow" if line.level >= logging.WARNING else "dim"
    return (f"{when} {level:<7} ", style), (f"{visible(source, one_line=True)} │ ", "bold"), (visible(line.message), "")


def task_table(run: FlowRun, *, live: bool = False) -> Table:
    """One row per task (mapped children grouped): counts per state, retries, and elapsed time.

    "elapsed" is wall time from the task's first start to its last end, as the UI's tree shows
    it (mapped children run side by side: their times do not add up).
    """
    title = plain(f"{run.flow} · {SYMBOLS.get(run.state, '')} {run.state}", one_line=True)
    table = Table(title=title if live else None, show_header=True, header_style="bold", box=None, padding=(0, 1))
    table.add_column("task")
    table.add_column("runs", justify="right")
    table.add_column("states")
    table.add_column("retries", justify="right")
    table.add_column("elapsed", justify="right")
    for group in run.groups():
        counts = Counter(task_run.state for task_run in group.runs)
        states = Text(" ").join(Text(f"{SYMBOLS[s]} {counts[s]} {s}", style=STYLES.get(s, ""))
                                for s in ORDER if counts.get(s))
        table.add_row(plain(group.task, one_line=True), f"{group.done}/{len(group.runs)}", states,
                      str(group.retries) if group.retries else "", format_duration(group.duration))
    return table


def print_summary(console: Console, run: FlowRun, *, said: set[str] = frozenset()) -> None:
    """The task table, the failures (those not in `said`, already printed as they happened), the first
    failure's traceback, and the run's final line."""
    console.print(task_table(run))
    failed = [t for t in run.current_task_runs() if t.state in (FAILED, TIMED_OUT, CRASHED)]
    for task_run in [t for t in failed if t.id not in said][:10]:
        console.print(Text.assemble(state_text(task_run.state),
                                    f" {visible(task_run.name, one_line=True)}: {visible(task_run.error or '')}"),
                      highlight=False, soft_wrap=True)
    shown = None
    if failed:
        first = next((a for a in reversed(failed[0].attempts) if a.traceback), None)
        if first is not None and first.error == failed[0].error:  # not an earlier attempt's, for another reason
            shown = first.traceback
            console.print(plain(shown, "dim"), highlight=False, soft_wrap=True)
    if len(failed) > 10:
        console.print(f"... and {len(failed) - 10} more failed task runs")
    # The flow body raising the failed task's own error (a direct call) would show that traceback again.
    if run.traceback and run.state != COMPLETED and not (shown and _last_line(run.traceback) == _last_line(shown)):
        console.print(plain(run.traceback, "dim"), highlight=False, soft_wrap=True)
    console.print(run_end_line(run), highlight=False, soft_wrap=True)


def run_end_line(run: FlowRun) -> Text:
    """`✓ Completed flow run 'etl' (ab12cd34ef56) in 2.61s`, with the reason when it did not complete."""
    message = f": {run.message}" if run.message and run.state != COMPLETED else ""
    return Text.assemble(state_text(run.state), (visible(f" flow run {run.flow!r} ({run.run_id}) in "
                                                        f"{format_duration(run.duration)}{message}"), "bold"))


def _last_line(text: str) -> str:
    return text.rstrip().rsplit("\n", 1)[-1]


def _iso(moment: _dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def run_document(run: FlowRun) -> dict[str, Any]:
    """SPEC's `run --json` document."""
    from flows_tui.parameters import json_default

    return {
        "run_id": run.run_id,
        "flow": run.flow,
        "state": run.state,
        "parameters": json.loads(json.dumps(run.parameters, default=json_default)),
        "started": _iso(run.started),
        "ended": _iso(run.ended),
        "tasks": [
            {
                "id": t.id,
                "name": t.name,
                "task": t.task,
                "map_index": t.map_index,
                "state": t.state,
                "attempts": len(t.attempts),
                "error": t.error,
                "upstream": list(t.upstream),
            }
            for t in run.task_runs.values()
        ],
    }
