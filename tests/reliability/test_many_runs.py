"""Run after run on one cluster, as `serve` and the UI do: each run lets go of its results.

A flow run's results live on the workers for as long as something holds its Dask futures.
Dask's client kept every run's report handler (`unsubscribe_topic` leaves it in place), and
with it the engine and every future of the run: each run added its results to the workers'
memory for the life of the process, and each run got slower than the one before.
"""

from __future__ import annotations

import gc
import statistics
import time

from flows_tui import flow, task
from flows_tui.engine.flow_run import run_flow

from .conftest import sized

RUNS = sized(20, 4)
TASKS = sized(1_000, 200)


@task
def padded(x: int) -> bytes:
    return bytes(10_000) + x.to_bytes(4, "little")  # 10 kB a result: 10 MB a run of 1,000 on the workers


@task
def count(values: list) -> int:
    return len(values)


@flow
def batch(n: int = TASKS):
    return count(padded.map(range(n)))


def _held_on_workers(client) -> int:
    """Results the workers keep in memory, over all workers."""
    return sum(client.run(lambda dask_worker: len(dask_worker.data)).values())


def test_run_after_run_on_one_cluster_the_workers_hold_at_most_one_runs_results(process_client, figures):
    held, seconds = [], []
    for number in range(RUNS):
        started = time.perf_counter()
        engine = run_flow(batch, {"n": TASKS}, client=process_client)
        seconds.append(time.perf_counter() - started)
        assert engine.final.name == "Completed" and engine.return_value == TASKS
        del engine
        gc.collect()
        # The results of the run before go when this one starts; Dask frees them on the workers
        # a moment later. This run's own stay until the next run starts.
        deadline = time.monotonic() + 10
        while _held_on_workers(process_client) > TASKS + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        held.append(_held_on_workers(process_client))
    assert max(held) <= TASKS + 1, held  # +1: count's own result
    figures.add("runs", f"{RUNS} runs of a {TASKS:,}-task flow (10 kB results) on one LocalCluster of 2 worker "
                        "processes, one after another as serve and the UI run them")
    figures.add("held", f"results held on the workers after each run: at most {max(held):,} "
                        "(before the fix, one run's more after every run)")
    first, last = statistics.median(seconds[:3]), statistics.median(seconds[-3:])
    figures.add("speed", f"a run took {first:.2f} s at first and {last:.2f} s at the end (median of 3)")
