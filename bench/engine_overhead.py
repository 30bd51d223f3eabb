"""Engine overhead: the same map → map → reduce as raw Dask and as a flow, on one LocalCluster.

    python bench/engine_overhead.py [--n 2000] [--repeats 3]

Both versions run alternately in one process on one cluster (2 workers x 1 thread),
so machine noise hits them alike. Prints each time, tasks/s and the flow/raw ratio
of the medians. Target: flow/raw <= 1.3.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import dask

from flows_tui import flow, task
from flows_tui.engine.flow_run import run_flow


def inc_raw(x):
    return x + 1


def double_raw(x):
    return 2 * x


def sum_raw(values):
    return sum(values)


@task
def inc(x):
    return x + 1


@task
def double(x):
    return 2 * x


@task
def sum_all(values):
    return sum(values)


@flow
def map_map_reduce(n: int):
    return sum_all(double.map(inc.map(range(n))))


def run_raw(client, n: int) -> int:
    incremented = client.map(inc_raw, range(n), pure=False)
    doubled = client.map(double_raw, incremented, pure=False)
    return client.submit(sum_raw, doubled, pure=False).result()


def run_as_flow(client, n: int) -> int:
    engine = run_flow(map_map_reduce, {"n": n}, client=client)
    assert engine.final.name == "Completed", engine.final
    return engine.return_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.worker-saturation": float("inf")}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.CRITICAL)
    client = Client(cluster)
    tasks = 2 * args.n + 1
    expected = sum(2 * (i + 1) for i in range(args.n))
    run_raw(client, 50)  # warm both paths up: imports, worker connections
    run_as_flow(client, 50)
    times: dict[str, list[float]] = {"raw": [], "flow": []}
    for repeat in range(args.repeats):
        for name, runner in (("raw", run_raw), ("flow", run_as_flow)):
            started = time.perf_counter()
            result = runner(client, args.n)
            elapsed = time.perf_counter() - started
            assert result == expected, (name, result)
            times[name].append(elapsed)
            print(f"{name:>4} #{repeat + 1}: {elapsed:6.2f}s  {tasks / elapsed:7.0f} tasks/s", flush=True)
    raw, flowed = statistics.median(times["raw"]), statistics.median(times["flow"])
    print(f"median raw {raw:.2f}s ({tasks / raw:.0f} tasks/s), flow {flowed:.2f}s ({tasks / flowed:.0f} tasks/s)")
    print(f"flow/raw ratio: {flowed / raw:.2f} (target <= 1.3) for {tasks} tasks")
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
