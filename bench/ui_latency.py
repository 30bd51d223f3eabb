"""UI latency while a big run reports: keypress-to-handled time during a 10,000-task run.

    python bench/ui_latency.py [--tasks 10000] [--processes]

Starts the app headless (Textual's Pilot) on a temporary project with one flow that maps
`--tasks` tiny tasks, on the embedded LocalCluster (2 workers; threads unless
--processes). Posts j/k key events (as the terminal driver does) every 50 ms: first with the UI idle,
then while the run reports, and times each until the flows pane's cursor has moved: the
wait behind whatever the app was doing (batches of run events) plus the key's handler.
The screen refresh that follows is Textual's, at most one frame (~17 ms) later. Prints
median, p95 and max for both, and the run's own time. Target: p95 <= 100 ms while the run is in progress.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

FLOW = """
    from flows_tui import flow, task

    @task
    def tiny(x):
        return x + 1

    @task
    def total(values):
        return sum(values)

    @flow
    def wide(n: int = 10000):
        return total(tiny.map(range(n)))
"""


def summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (f"{name}: {len(samples)} presses, median {statistics.median(ordered) * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")


async def presses(app, seconds: float | None, until=None) -> list[float]:
    """Post j/k as the terminal driver does and time each until the flows pane's cursor moved."""
    from textual.events import Key

    from flows_tui.tui.flow_list import FlowList

    flows = app.query_one(FlowList)
    flows.focus()
    await asyncio.sleep(0.1)
    samples: list[float] = []
    started = time.monotonic()
    while (seconds is not None and time.monotonic() - started < seconds) or (until is not None and not until()):
        before = flows.cursor_row
        key = "k" if before == flows.row_count - 1 else "j"
        began = time.perf_counter()
        app.post_message(Key(key, key))
        while flows.cursor_row == before:
            if time.perf_counter() - began > 30:
                raise SystemExit(f"a key press was not handled within 30 s (focus: {app.focused})")
            await asyncio.sleep(0.001)
        samples.append(time.perf_counter() - began)
        await asyncio.sleep(0.05)
    return samples


async def main_async(args) -> None:
    from flows_tui.project.config import load_config
    from flows_tui.states import RUNNING
    from flows_tui.tui.app import FlowsApp
    from flows_tui.tui.flow_list import FlowList

    project = Path(tempfile.mkdtemp(prefix="flows-tui-bench-ui-"))
    (project / "flows").mkdir()
    (project / "flows" / "wide.py").write_text(textwrap.dedent(FLOW).replace("10000", str(args.tasks)))
    for index in range(20):  # a few more rows to move through
        (project / "flows" / f"other_{index}.py").write_text(
            f"from flows_tui import flow\n\n@flow\ndef other_{index}():\n    return {index}\n")
    processes = "true" if args.processes else "false"
    (project / "flows.toml").write_text(f'[project]\nflows_dir = "flows"\n[cluster]\nn_workers = 2\n'
                                        f'threads_per_worker = 1\nprocesses = {processes}\n')
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # as run_app does, before Textual takes stderr
    app = FlowsApp(load_config(None, cwd=project))
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 60
        while "wide" not in app.query_one(FlowList).rows_by_key:
            assert time.monotonic() < deadline, f"the flows were not listed: {app.query_one('#status').cluster}"
            await pilot.pause(0.05)
        # Worker processes of the UI's own start with its first run: start them now, as a thread
        # cluster starts at once, so that the idle presses and the run's time leave the start out.
        app._ensure_cluster()
        while app.cluster is None:
            assert time.monotonic() < deadline, f"the app did not start: {app.query_one('#status').cluster}"
            await pilot.pause(0.05)
        idle = await presses(app, seconds=3)
        flows = app.query_one(FlowList)
        flows.move_cursor(row=flows.get_row_index("wide"))
        started = time.monotonic()
        await pilot.press("r")
        while not app.engines:
            await pilot.pause(0.01)
        # The flows pane says Running while the run is in progress, then its final state.
        busy = await presses(app, seconds=None, until=lambda: flows.last_states.get("wide") not in (None, RUNNING))
        took = time.monotonic() - started
        state = flows.last_states.get("wide")
    print(f"{args.tasks + 1} tasks ({'processes' if args.processes else 'threads'}), run {state} in {took:.1f}s")
    print(summary("idle UI    ", idle))
    print(summary("during run ", busy))
    p95 = sorted(busy)[int(0.95 * (len(busy) - 1))]
    print(f"target p95 <= 100 ms during the run: {'met' if p95 <= 0.1 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--processes", action="store_true", help="worker processes instead of threads")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
