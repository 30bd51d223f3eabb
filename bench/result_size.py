"""Big results: a task's result read by the flow body, as a flow and as raw Dask, size by size.

    python bench/result_size.py [--sizes 1,10,100,1000] [--repeats 2]

One LocalCluster of 2 worker processes; for each size (MB) the raw `client.submit(...).result()`
and the flow run alternate, so machine noise hits them alike. For each it prints the median
time and the peak memory above what the processes held before (this process and the
cluster's worker processes together, sampled every 10 ms), and the flow/raw ratios of both.
Target (issue 16): within 1.5x of raw Dask's time and memory.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time
from typing import Callable

import psutil

from flows_tui import flow, task
from flows_tui.engine.flow_run import run_flow


def make_raw(n: int) -> bytes:
    return bytes(n)


@task
def make(n: int) -> bytes:
    return bytes(n)


@flow
def read_big(n: int) -> int:
    return len(make(n))


def resident() -> int:
    """Bytes resident in this process and its children (the worker processes)."""
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def measured(call: Callable[[], None]) -> tuple[float, int]:
    """Seconds `call` took, and the peak bytes resident above what was before it."""
    before = resident()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], resident())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    call()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    peak[0] = max(peak[0], resident())
    return seconds, peak[0] - before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,100,1000", help="result sizes in MB, comma separated")
    parser.add_argument("--repeats", type=int, default=2)
    options = parser.parse_args()
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        print(f"{'MB':>6} {'raw s':>8} {'flow s':>8} {'time x':>7} {'raw peak MB':>12} {'flow peak MB':>13} "
              f"{'memory x':>9}", flush=True)
        for size in (int(s) for s in options.sizes.split(",")):
            n = size * 1_000_000
            raw, flowed = [], []

            def raw_call() -> None:
                assert len(client.submit(make_raw, n, pure=False).result()) == n

            def flow_call() -> None:
                engine = run_flow(read_big, {"n": n}, client=client)
                assert engine.final.name == "Completed" and engine.return_value == n, engine.final

            for _ in range(options.repeats):
                raw.append(measured(raw_call))
                flowed.append(measured(flow_call))
            r = statistics.median(seconds for seconds, _ in raw)
            f = statistics.median(seconds for seconds, _ in flowed)
            rm = max(peak for _, peak in raw) / 1e6
            fm = max(peak for _, peak in flowed) / 1e6
            print(f"{size:>6} {r:>8.2f} {f:>8.2f} {f / r:>7.2f} {rm:>12.0f} {fm:>13.0f} "
                  f"{fm / rm if rm > 0 else float('nan'):>9.2f}", flush=True)


if __name__ == "__main__":
    main()
