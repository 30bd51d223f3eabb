"""Log throughput: tasks writing 10,000 lines/s in total must reach the store with none lost.

    python bench/logs.py [--rate 10000] [--seconds 10] [--tasks 4]

A flow maps `--tasks` tasks over one LocalCluster (2 worker processes x 2 threads); each
task logs its share of `--rate` lines per second for `--seconds`, paced every 10 ms.
Every event goes through the bus with the SQLite store as its journal, as in `flows-tui
run`. Prints the rate the tasks achieved, the lines found in the store (lost = expected -
stored, and whether each task's lines are in order), the delay from a line being logged
on the worker to a subscriber seeing it (already committed), and, for scale, the same
paced loop as a raw Dask task without logging, in the same run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import statistics
import tempfile
import time
from pathlib import Path

from flows_tui.record import events as ev
from flows_tui import flow, get_run_logger, task
from flows_tui.engine.flow_run import run_flow
from flows_tui.record.store import Store

TICK = 0.01


def paced(index: int, rate: float, seconds: float, emit) -> int:
    """Call `emit(index, n)` `rate` times a second for `seconds`, in bursts every 10 ms."""
    total = int(rate * seconds)
    started = time.perf_counter()
    for n in range(total):
        due = started + n / rate
        delay = due - time.perf_counter()
        if delay > TICK:
            time.sleep(delay)
        emit(index, n)
    return total


def _nothing(index: int, n: int) -> None:
    pass


def raw_task(index: int, rate: float, seconds: float) -> int:
    return paced(index, rate, seconds, _nothing)


@task
def chatter(index: int, rate: float, seconds: float) -> int:
    log = get_run_logger()
    return paced(index, rate, seconds, lambda i, n: log.info("task %d line %d", i, n))


@flow
def chatty(tasks: int, rate: float, seconds: float) -> int:
    return sum(chatter.map(range(tasks), rate=rate / tasks, seconds=seconds).result())


class Delays:
    """A subscriber: how long after being logged a line reached an observer (store already committed)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, batch: list) -> None:
        now = _dt.datetime.now(_dt.timezone.utc)
        for event in batch:
            if isinstance(event, ev.LogLines):
                self.delays.extend((now - line.time).total_seconds() for line in event.lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000, help="lines per second, all tasks together")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--tasks", type=int, default=4)
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0",
                           silence_logs=logging.CRITICAL)
    client = Client(cluster)
    state_dir = Path(tempfile.mkdtemp(prefix="flows-tui-bench-logs-"))
    store = Store.open(state_dir)
    bus = ev.EventBus()
    bus.set_journal(store.record)
    delays = Delays()
    bus.subscribe(delays, name="delays")

    share = args.rate / args.tasks
    started = time.perf_counter()
    raw = client.gather(client.map(raw_task, range(args.tasks), rate=share, seconds=args.seconds, pure=False))
    raw_elapsed = time.perf_counter() - started

    started = time.perf_counter()
    engine = run_flow(chatty, {"tasks": args.tasks, "rate": args.rate, "seconds": args.seconds}, client=client,
                      bus=bus)
    flow_elapsed = time.perf_counter() - started
    bus.flush(60)
    stored_elapsed = time.perf_counter() - started
    expected = engine.return_value
    assert expected == sum(raw), (expected, raw)

    lines = store.logs(engine.run_id)
    in_order = True
    last: dict[str, int] = {}
    for stored in lines:
        number = int(stored.line.message.rsplit(" ", 1)[1])
        key = stored.line.task_run_id or ""
        if number != last.get(key, -1) + 1:
            in_order = False
        last[key] = number
    lost = expected - len(lines)
    print(f"tasks: {args.tasks}, target {args.rate:.0f} lines/s for {args.seconds:g}s = {expected} lines")
    print(f"raw Dask, same paced loop without logging: {raw_elapsed:.2f}s")
    print(f"flow with logging: {flow_elapsed:.2f}s (flow/raw {flow_elapsed / raw_elapsed:.2f}), "
          f"achieved {expected / flow_elapsed:.0f} lines/s; all stored after {stored_elapsed:.2f}s")
    if delays.delays:
        ordered = sorted(delays.delays)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        print(f"logged → seen (committed) delay: median {statistics.median(ordered) * 1000:.0f} ms, "
              f"p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")
    print(f"stored {len(lines)} of {expected} lines: lost {lost}, in order per task: {in_order}")
    bus.remove_journal()
    store.close()
    client.close()
    cluster.close()
    raise SystemExit(0 if lost == 0 and in_order else 1)


if __name__ == "__main__":
    main()
