"""Big results: a task's result read by the flow body, as a flow and as raw Dask, size by size.

    python bench/result_size.py [--sizes 1,10,100,1000] [--repeats 2]

One LocalCluster of 2 worker processes; for each size (MB) the raw `client.submit(...).result()`
and the flow run alternate, so machine noise hits them alike. Prints each median time, the
flow/raw ratio, and the peak resident memory of this process after each size. Target: within
1.5x of raw Dask's time.
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import time

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1,10,100,1000", help="result sizes in MB, comma separated")
    parser.add_argument("--repeats", type=int, default=2)
    options = parser.parse_args()
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        print(f"{'MB':>6} {'raw s':>8} {'flow s':>8} {'flow/raw':>9} {'peak RSS MB':>12}")
        for size in (int(s) for s in options.sizes.split(",")):
            n = size * 1_000_000
            raw, flowed = [], []
            for _ in range(options.repeats):
                started = time.perf_counter()
                assert len(client.submit(make_raw, n, pure=False).result()) == n
                raw.append(time.perf_counter() - started)
                started = time.perf_counter()
                engine = run_flow(read_big, {"n": n}, client=client)
                flowed.append(time.perf_counter() - started)
                assert engine.final.name == "Completed" and engine.return_value == n, engine.final
                del engine
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            r, f = statistics.median(raw), statistics.median(flowed)
            print(f"{size:>6} {r:>8.2f} {f:>8.2f} {f / r:>9.2f} {peak:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
