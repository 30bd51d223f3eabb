"""Past runs at scale: how long the readers take on a store holding a big run and many runs.

    python bench/past_runs.py [--tasks 100000] [--runs 10000] [--keep DIR]

Builds a project whose store holds `--runs` small runs (two task runs, a log line each) and
one run of a `--tasks`-task map (each task run Pending, Running, Completed, one attempt, one
log line), written directly through the store's write API (`Store.record`, in the engine's
batches) rather than by running the tasks. Then times, each a reader a user has:

- `flows-tui runs` and `flows-tui logs BIG --json` (counting its lines), as processes,
  beside `flows-tui --help` (the CLI's own start), each the median of 3;
- in-process: `Store.runs(limit=200)` (the UI's history), `Store.open_run(BIG)` (what the UI
  opens: its big groups counted), `Store.load_run(BIG)` (every task run built, as `rerun` and
  `logs --follow` read it) and `Store.logs(BIG)`;
- the UI (Textual's headless Pilot): from start to the history pane filled (first paint, after
  a first UI has started in this process, so that neither pays its one-time costs), opening the
  big run from the history (its tree and log pane shown), and expanding its group (the first
  children shown).

Targets (issue 22): each of the three user-facing readers and the UI's open ≤ 1 s; the
UI's first paint with 10,000 runs as with none. The machine's load is printed: figures on a
shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIG = "big000000000"
START = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)


def build(state_dir: Path, tasks: int, runs: int) -> None:
    from flows_tui.record import events as ev
    from flows_tui.record.store import Store

    store = Store.open(state_dir)
    batch: list = []
    for number in range(runs):
        run_id, at = f"small{number:07d}", START + _dt.timedelta(minutes=number)
        batch += [ev.FlowRunStarted(run_id, f"flow{number % 20}", {"n": number}, at),
                  ev.FlowStateChanged(run_id, "Running", at)]
        for index in range(2):
            task_run_id = f"{number:012x}{index:04x}"
            batch += [ev.TaskRunCreated(run_id, task_run_id, "step", f"step-{index}", at, index),
                      ev.AttemptStarted(run_id, task_run_id, 1, at, "tcp://127.0.0.1:40000"),
                      ev.TaskStateChanged(run_id, task_run_id, "Running", at),
                      ev.LogLines(run_id, (ev.LogLine(at, logging.INFO, f"step {index} of {number}", task_run_id, 1,
                                                      "prefect.task_runs"),)),
                      ev.AttemptEnded(run_id, task_run_id, 1, "Completed", at),
                      ev.TaskStateChanged(run_id, task_run_id, "Completed", at)]
        batch.append(ev.FlowStateChanged(run_id, "Completed", at + _dt.timedelta(seconds=3)))
        if len(batch) > 2000:
            store.record(batch)
            batch = []
    store.record(batch)
    at = START + _dt.timedelta(days=30)
    store.record([ev.FlowRunStarted(BIG, "maps", {"n": tasks}, at), ev.FlowStateChanged(BIG, "Running", at)])
    for first in range(0, tasks, 2000):
        store.record([ev.TaskRunCreated(BIG, f"{index:016x}", "inc", f"inc-{index}", at, index)
                      for index in range(first, min(tasks, first + 2000))])
    batch = []
    for index in range(tasks):
        task_run_id, when = f"{index:016x}", at + _dt.timedelta(microseconds=index * 997)
        batch += [ev.AttemptStarted(BIG, task_run_id, 1, when, f"tcp://127.0.0.1:{40000 + index % 2}"),
                  ev.TaskStateChanged(BIG, task_run_id, "Running", when),
                  ev.LogLines(BIG, (ev.LogLine(when, logging.INFO, f"inc({index})", task_run_id, 1,
                                               "prefect.task_runs"),)),
                  ev.AttemptEnded(BIG, task_run_id, 1, "Completed", when),
                  ev.TaskStateChanged(BIG, task_run_id, "Completed", when)]
        if len(batch) >= 2000:
            store.record(batch)
            batch = []
    store.record(batch + [ev.FlowStateChanged(BIG, "Completed", at + _dt.timedelta(seconds=tasks / 1000))])
    store.close()


def timed(work) -> tuple[float, object]:
    begun = time.perf_counter()
    result = work()
    return time.perf_counter() - begun, result


def cli(project: Path, *args: str, rounds: int = 3) -> tuple[float, int]:
    """Seconds a `flows-tui` command takes (the median of `rounds`), and how many lines it printed."""
    command = [sys.executable, "-c", "import sys; from flows_tui.cli import main; sys.exit(main())", *args]
    times = []
    for _ in range(rounds):
        begun = time.perf_counter()
        done = subprocess.run(command, cwd=project, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - begun)
    return statistics.median(times), done.stdout.count("\n")


async def ui(project: Path, open_big: bool) -> tuple[float, float | None, float | None]:
    """(seconds to the history pane filled, to open the big run from it, to expand its group)."""
    from flows_tui.project.config import load_config
    from flows_tui.record import events as ev
    from flows_tui.record.store import Store
    from flows_tui.tui.app import FlowsApp
    from flows_tui.tui.log_view import LogView
    from flows_tui.tui.run_history import RunHistory
    from flows_tui.tui.task_tree import TaskTree

    begun = time.perf_counter()
    config = load_config(None, cwd=project)
    store = Store.open(config.project.state_dir)
    bus = ev.EventBus()
    bus.set_journal(store.record)
    app = FlowsApp(config, bus=bus, store=store, connect_cluster=False)
    opened = expanded = None
    async with app.run_test(size=(160, 50)) as pilot:
        history = app.query_one(RunHistory)
        while history.row_count == 0 and time.perf_counter() - begun < 60:
            await pilot.pause(0.005)
        painted = time.perf_counter() - begun
        if open_big:
            # Opened once the flows pane has its rows: their first highlight, arriving after the run
            # was opened, would put the flow's plan in its place.
            while not app.loaded.is_set() and time.perf_counter() - begun < 60:
                await pilot.pause(0.005)
            await pilot.pause(0.2)
            begun = time.perf_counter()
            app.open_stored_run(BIG)
            tree, log = app.query_one(TaskTree), app.query_one(LogView)
            while not (tree.flow_run is not None and tree.flow_run.run_id == BIG and log.run_id == BIG) \
                    and time.perf_counter() - begun < 120:
                await pilot.pause(0.005)
            await pilot.pause()
            opened = time.perf_counter() - begun
            group = tree.root.children[0]
            begun = time.perf_counter()
            group.expand()
            while len(group.children) < 2 and time.perf_counter() - begun < 60:
                await pilot.pause(0.005)
            await pilot.pause()
            expanded = time.perf_counter() - begun
    return painted, opened, expanded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="build the project here (reused if its store exists)")
    options = parser.parse_args()
    project = options.keep or Path(tempfile.mkdtemp(prefix="past-runs-"))
    (project / "flows").mkdir(parents=True, exist_ok=True)
    (project / "flows" / "maps.py").write_text("from flows_tui import flow\n\n\n@flow\ndef maps(n: int = 1):\n    pass\n")
    (project / "flows.toml").write_text('[project]\nflows_dir = "flows"\n')
    state_dir = project / ".flows-tui"
    if not (state_dir / "flows-tui.db").exists():
        seconds, _ = timed(lambda: build(state_dir, options.tasks, options.runs))
        print(f"built {options.runs:,} runs and a {options.tasks:,}-task run in {seconds:.1f} s")
    size = sum(path.stat().st_size for path in state_dir.glob("flows-tui.db*"))
    print(f"store: {size / 1e6:.1f} MB · load: {os.getloadavg()[0]:.2f} (1 min)")

    from flows_tui.record.store import Store

    store = Store.open(state_dir)
    rows = [("flows-tui --help (the CLI's start)", *cli(project, "--help")),
            ("flows-tui runs", *cli(project, "runs")),
            (f"flows-tui logs {BIG} --json", *cli(project, "logs", BIG, "--json")),
            ("Store.runs(limit=200)", *(lambda t, r: (t, len(r)))(*timed(lambda: store.runs(limit=200)))),
            ("Store.open_run(big)", *(lambda t, r: (t, r.groups()[0].total))(*timed(lambda: store.open_run(BIG)))),
            ("Store.load_run(big)", *(lambda t, r: (t, len(r.task_runs)))(*timed(lambda: store.load_run(BIG)))),
            ("Store.logs(big)", *(lambda t, r: (t, len(r)))(*timed(lambda: store.logs(BIG))))]
    few = Path(tempfile.mkdtemp(prefix="past-runs-few-"))
    (few / "flows").mkdir()
    (few / "flows" / "maps.py").write_text((project / "flows" / "maps.py").read_text())
    (few / "flows.toml").write_text('[project]\nflows_dir = "flows"\n')
    build(few / ".flows-tui", 0, 200)  # as many runs as the history shows
    asyncio.run(ui(few, open_big=False))  # the UI's one-time costs in this process, paid here
    painted, opened, expanded = asyncio.run(ui(project, open_big=True))
    painted_few, _, _ = asyncio.run(ui(few, open_big=False))
    rows += [("UI first paint (history shown), this store", painted, None),
             ("UI first paint, a store of 200 runs", painted_few, None),
             ("UI: open the big run from the history", opened, None),
             ("UI: expand its group (the first children)", expanded, None)]
    width = max(len(name) for name, *_ in rows)
    for name, seconds, count in rows:
        print(f"{name:<{width}}  {seconds:7.3f} s" + (f"  ({count:,} lines/items)" if count is not None else ""))


if __name__ == "__main__":
    main()
