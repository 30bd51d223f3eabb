"""Big results: a task's result read by the flow body, as a flow and as raw Dask, size by size.

    python bench/result_size.py [--sizes 1,10,100,1000] [--repeats 2]

One cluster of 2 worker processes, started as flows-tui starts its own (its Dask settings,
e.g. worker-saturation), used by both; for each size (MB) the raw `client.submit(...).result()`
and the flow run alternate, so machine noise hits them alike (sizes up to 10 MB are repeated
10x as often: they take milliseconds). For each it prints the median time, and the peak
memory above what the processes held before (this process and the cluster's worker processes
together, sampled every 10 ms, the largest of `--repeats` more runs of each: the sampler
would slow the runs it times), and the flow/raw ratios of both, with the machine's load
before and after (the figures are only as good as the machine is quiet).
Target (issue 16): within 1.5x of raw Dask's time and memory.
"""

from __future__ import annotations

import argparse
import os
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


def idle() -> None:
    """Let the client's batch of messages to the scheduler go out before the next call starts.

    The client sends at most one batch every 10 ms: a call started right after the last one
    (whose futures' releases just went out) waits for the rest of those 10 ms before its task
    leaves. A flow or a `client.submit` a user starts has nothing sent in the 10 ms before it;
    back to back, each side would pay for the other's last messages.
    """
    time.sleep(0.02)


def timed(call: Callable[[], None]) -> float:
    """Seconds `call` took (nothing else running in this process: the memory sampler takes the GIL)."""
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


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
    from flows_tui.engine.cluster import ClusterChoice, connect

    print(f"load average {_load()}", flush=True)
    cluster = connect(ClusterChoice(n_workers=2, threads_per_worker=1, processes=True))
    client = cluster.client
    try:
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

            for _ in range(options.repeats * (10 if size <= 10 else 1)):
                raw.append(timed(raw_call))
                idle()
                flowed.append(timed(flow_call))
                idle()
            # Memory in runs of their own: sampling every 10 ms takes the GIL from the run it measures.
            raw_peaks, flow_peaks = [], []
            for _ in range(options.repeats):
                raw_peaks.append(measured(raw_call)[1])
                idle()
                flow_peaks.append(measured(flow_call)[1])
                idle()
            rm, fm = max(raw_peaks) / 1e6, max(flow_peaks) / 1e6
            r = statistics.median(raw)
            f = statistics.median(flowed)
            print(f"{size:>6} {r:>8.3f} {f:>8.3f} {f / r:>7.2f} {rm:>12.0f} {fm:>13.0f} "
                  f"{fm / rm if rm > 0 else float('nan'):>9.2f}", flush=True)
    finally:
        cluster.close()
    print(f"load average {_load()}", flush=True)


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
