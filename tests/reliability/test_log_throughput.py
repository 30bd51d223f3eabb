"""10,000 log lines a second from tasks on worker processes: none lost, in order per task.

Four tasks on two worker processes each log their share of 10,000 lines/s, paced every
10 ms, through get_run_logger(). Every batch goes through the bus with the SQLite store as
its journal, exactly as in `flows-tui run`; the test then reads the lines back from the
store file.
"""

from __future__ import annotations

import datetime as _dt
import statistics
from pathlib import Path

import pytest

from flows_tui.record import events as ev
from flows_tui.engine.flow_run import run_flow
from flows_tui.record.store import Store

from conftest import load_flows, local_client

from .conftest import sized

RATE = 10_000
SECONDS = sized(10, 3)
TASKS = 4

CHATTY = """
    import time
    from flows_tui import flow, task, get_run_logger

    @task
    def chatter(index: int, rate: float, seconds: float) -> int:
        log = get_run_logger()
        total = int(rate * seconds)
        started = time.perf_counter()
        for n in range(total):
            delay = started + n / rate - time.perf_counter()
            if delay > 0.01:
                time.sleep(delay)
            log.info("task %d line %d", index, n)
        return total

    @flow
    def chatty(tasks: int, rate: float, seconds: float) -> int:
        return sum(chatter.map(range(tasks), rate=rate / tasks, seconds=seconds).result())
"""


@pytest.fixture(scope="module")
def worker_processes():
    """2 worker processes x 2 threads: the 4 tasks log at once."""
    with local_client(processes=True, threads_per_worker=2) as client:
        yield client


class Delays:
    """A subscriber: how long after being logged on the worker a line reached an observer."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, batch: list) -> None:
        now = _dt.datetime.now(_dt.timezone.utc)
        for event in batch:
            if isinstance(event, ev.LogLines):
                self.delays.extend((now - line.time).total_seconds() for line in event.lines)


@pytest.mark.timeout(180)
def test_ten_thousand_lines_a_second_reach_the_store_none_lost_in_order_per_task(tmp_path: Path, worker_processes,
                                                                              figures):
    loaded = load_flows(tmp_path, CHATTY, "chatty.py")
    store = Store.open(tmp_path / "state")
    bus = ev.EventBus()
    bus.set_journal(store.record)
    delays = Delays()
    bus.subscribe(delays, name="delays")
    try:
        engine = run_flow(loaded.flows["chatty"], {"tasks": TASKS, "rate": RATE, "seconds": SECONDS},
                          client=worker_processes, bus=bus)
        assert bus.flush(60)
    finally:
        bus.remove_journal()
    expected = RATE * SECONDS
    assert engine.final.name == "Completed" and engine.return_value == expected

    # Read back what is on disk, from a fresh connection to the file.
    store.close()
    reopened = Store.open(tmp_path / "state")
    stored = reopened.logs(engine.run_id)
    reopened.close()
    per_task: dict[str, list[int]] = {}
    for entry in stored:
        if entry.line.task_run_id is None:
            continue
        per_task.setdefault(entry.line.task_run_id, []).append(int(entry.line.message.rsplit(" ", 1)[1]))
    share = expected // TASKS
    assert len(per_task) == TASKS
    for task_run_id, numbers in per_task.items():
        assert numbers == list(range(share)), f"{task_run_id}: lines missing or out of order"

    elapsed = engine.flow_run.duration
    ordered = sorted(delays.delays)
    figures.add("lines", f"{expected:,} logged at {RATE:,}/s for {SECONDS} s by {TASKS} tasks on 2 worker "
                         f"processes; {sum(map(len, per_task.values())):,} stored, 0 lost, in order per task")
    figures.add("achieved rate", f"{expected / elapsed:,.0f} lines/s over the run's {elapsed:.1f} s")
    figures.add("logged → committed and seen", f"median {statistics.median(ordered) * 1000:.0f} ms, "
                                               f"p95 {ordered[int(0.95 * (len(ordered) - 1))] * 1000:.0f} ms")
