"""Watching another process's run: how soon what it commits is on the UI's screen here, and a cancel.

    python bench/live_tail.py [--tasks 1000] [--rate 10000] [--seconds 10]

`flows-tui run watched` runs in a process of its own (a LocalCluster of 2 worker processes x
2 threads): `--tasks` task runs that log `--rate` lines a second in total for about
`--seconds`. This process runs the UI (Textual's Pilot, headless) on the same state_dir, opens
that run from the runs pane as a user would and, while it runs, presses j/k in the runs pane.
Printed:
- event committed → on screen: for every log line the UI shows after the run was opened, the
  time from its journal row's commit (in the owner) to the logs pane writing it (here), p50/p95
  (target p95 ≤ 250 ms); lines the store holds that the UI never showed ("lost", target 0);
- keys: key press → the runs pane's cursor moved, p50/p95 (target p95 ≤ 100 ms);
- cancel: a second run (`flows-tui run sleeper`) cancelled from here through the store, the time
  from the request to the run recorded Cancelled by its owner (target ≤ 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

FLOWS = """
    import time
    from flows_tui import flow, task, get_run_logger

    @task
    def chatter(index: int, lines: int, seconds: float) -> int:
        log = get_run_logger()
        started = time.perf_counter()
        for n in range(lines):
            delay = started + n * seconds / lines - time.perf_counter()
            if delay > 0.01:
                time.sleep(delay)
            log.info("task %d line %d", index, n)
        return lines

    @flow
    def watched(tasks: int = 1000, lines: int = 100, seconds: float = 0.04):
        chatter.map(range(tasks), lines, seconds)

    @task
    def nap() -> None:
        for _ in range(600):
            time.sleep(0.1)

    @flow
    def sleeper():
        nap()
"""

CONCURRENCY = 4  # 2 worker processes x 2 threads


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * (len(ordered) - 1)))]


def figures(name: str, samples: list[float], target: float) -> str:
    if not samples:
        return f"{name}: no samples"
    p95 = percentile(samples, 0.95)
    return (f"{name}: {len(samples)} samples, p50 {statistics.median(samples) * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {max(samples) * 1000:.0f} ms "
            f"(target p95 <= {target * 1000:.0f} ms: {'met' if p95 <= target else 'MISSED'})")


def owner(project: Path, *args: str) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    return subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "run", *args], cwd=project, env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def commit_times(db: Path, run_id: str) -> dict[int, float]:
    """Log line id → when the owner committed the journal row that carried it."""
    times: dict[int, float] = {}
    with sqlite3.connect(db) as c:
        for committed, events in c.execute("SELECT time, events FROM journal"):
            for name, fields in json.loads(events):
                if name == "LogLines" and fields["run_id"] == run_id:
                    for line_id in range(fields["first"], fields["last"] + 1):
                        times[line_id] = committed
    return times


async def watch(args: argparse.Namespace, project: Path) -> None:
    from textual.events import Key

    from flows_tui.launch.requests import cancel_run
    from flows_tui.project.config import load_config
    from flows_tui.record import events as ev
    from flows_tui.record.store import Store
    from flows_tui.tui.app import FlowsApp
    from flows_tui.tui.log_view import LogView
    from flows_tui.tui.run_history import RunHistory

    config = load_config(None, cwd=project)
    store = Store.open(config.project.state_dir)
    # Twenty past runs, so the runs pane has rows to move through.
    filler = Store.open(config.project.state_dir)
    filler._writer_name = "filler:1"
    past = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(hours=1)
    for index in range(20):
        at = past + _dt.timedelta(seconds=index)
        filler.record([ev.FlowRunStarted(f"past{index:04d}", "watched", {}, at),
                       ev.FlowStateChanged(f"past{index:04d}", "Completed", at)])
    bus = ev.EventBus()
    bus.set_journal(store.record)
    app = FlowsApp(config, bus=bus, store=store, connect_cluster=False, watch=False)

    shown: dict[int, float] = {}  # log line id → when the logs pane wrote it
    add = LogView.add

    def timed_add(view: LogView, lines: list) -> None:
        now = time.time()
        for line in lines:
            if line.run_id == view.run_id and line.line.id is not None:
                shown.setdefault(line.line.id, now)
        add(view, lines)

    LogView.add = timed_add
    loaded: set[int] = set()  # lines the logs pane was given from the store when the run was opened
    show_run = LogView.show_run

    def recorded_show_run(view: LogView, run_id, lines=(), **options) -> None:
        lines = list(lines)
        loaded.update(line.line.id for line in lines if line.line.id is not None)
        show_run(view, run_id, lines, **options)

    LogView.show_run = recorded_show_run
    from flows_tui.tui.app import Bridge

    bridged: dict[int, float] = {}  # log line id → when the tail handed it to the UI's bridge
    fold = Bridge.__call__

    def timed_fold(bridge: Bridge, batch: list) -> None:
        now = time.time()
        for event in batch:
            if type(event) is ev.LogLines:
                for line in event.lines:
                    if line.id is not None:
                        bridged.setdefault(line.id, now)
        fold(bridge, batch)

    Bridge.__call__ = timed_fold
    per_task = max(1, int(args.rate * args.seconds / args.tasks))
    seconds = per_task / (args.rate / CONCURRENCY)
    async with app.run_test(size=(120, 40)) as pilot:
        runs = app.query_one(RunHistory)
        process = owner(project, "watched", "-p", f"tasks={args.tasks}", "-p", f"lines={per_task}",
                        "-p", f"seconds={seconds}")
        try:
            deadline = time.monotonic() + 120
            while runs.row_count < 21:
                assert time.monotonic() < deadline, "the run never appeared in the runs pane"
                await pilot.pause(0.01)
            appeared = time.monotonic()
            run_id = runs.summaries[0].run_id
            runs.focus()
            runs.move_cursor(row=0)
            await pilot.press("enter")
            while app.shown_run != run_id:
                await pilot.pause(0.01)
            opened = time.time()
            keys: list[float] = []
            while process.poll() is None or app.bridge.model.runs[run_id].ended is None:
                assert time.monotonic() < deadline + 300, "the run did not end"
                before = runs.cursor_row
                key = "k" if before == runs.row_count - 1 else "j"
                began = time.perf_counter()
                app.post_message(Key(key, key))
                while runs.cursor_row == before and time.perf_counter() - began < 30:
                    await asyncio.sleep(0.001)
                keys.append(time.perf_counter() - began)
                await asyncio.sleep(0.05)
            await pilot.pause(0.5)
            state = app.bridge.model.runs[run_id].state
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        committed = commit_times(store.path, run_id)
        stored = {stored.id for stored in store.logs(run_id)}
        latencies = [shown[line_id] - committed[line_id] for line_id in shown
                     if line_id in committed and committed[line_id] >= opened]
        lost = len(stored - loaded - set(shown))
        print(f"watched run: {args.tasks} task runs, {len(stored)} log lines, {state}; listed "
              f"{appeared - (deadline - 120):.1f}s after it was started")
        print(figures("event committed -> on screen", latencies, 0.25))
        tail_part = [bridged[i] - committed[i] for i in shown if i in bridged and committed.get(i, 0) >= opened]
        print(figures("  of which committed -> read from the journal", tail_part, 0.25))
        print(f"lines stored that the UI never showed: {lost} (of {len(stored)}: {len(loaded)} read from the "
              f"store when the run was opened, {len(shown)} as they came)")
        print(figures("keys in the watching UI", keys, 0.1))

        # Cancel through the store: the request row → the owner records the run Cancelled.
        sleeper = owner(project, "sleeper")
        try:
            deadline = time.monotonic() + 120
            while True:
                found = [s for s in store.runs("sleeper") if s.ended is None]
                if found and any(t.state == "Running" for t in store.load_run(found[0].run_id).task_runs.values()):
                    break
                assert time.monotonic() < deadline, "the sleeper never ran"
                await asyncio.sleep(0.05)
            outcome = await asyncio.to_thread(cancel_run, store, found[0].run_id)
            with sqlite3.connect(store.path) as c:
                asked = c.execute("SELECT asked FROM requests WHERE run_id = ?", (found[0].run_id,)).fetchone()[0]
            ended = store.load_run(found[0].run_id).ended.timestamp()
            took = ended - asked
            print(f"cancel: {outcome.message}; request -> Cancelled recorded by the owner {took * 1000:.0f} ms "
                  f"(target <= 1000 ms: {'met' if outcome.cancelled and took <= 1.0 else 'MISSED'})")
        finally:
            os.killpg(sleeper.pid, signal.SIGKILL)
            sleeper.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    project = Path(tempfile.mkdtemp(prefix="flows-tui-bench-tail-"))
    (project / "flows").mkdir()
    (project / "flows" / "watched.py").write_text(textwrap.dedent(FLOWS))
    (project / "flows.toml").write_text('[project]\nflows_dir = "flows"\n[cluster]\nn_workers = 2\n'
                                        'threads_per_worker = 2\nprocesses = true\n')
    asyncio.run(watch(args, project))


if __name__ == "__main__":
    main()
