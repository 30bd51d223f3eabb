"""Engine overhead: the same work as raw Dask and as a flow, on one LocalCluster.

    python bench/engine_overhead.py [--n 2000] [--repeats 3] [--shape reduce collect collect-list]

Both versions run alternately in one process on one cluster (2 workers x 1 thread, with
`distributed.scheduler.worker-saturation: inf` as flows-tui's embedded cluster has), so
machine noise hits them alike. Shapes:

- reduce: map → map → reduce on the cluster (`sum_all(double.map(inc.map(range(n))))`),
  against `client.map` → `client.map` → `client.submit`; 2n+1 tasks.
- collect: a map whose results the flow body collects one by one
  (`sum(f.result() for f in inc.map(range(n)))`), against `client.gather`; n tasks.
- collect-list: the same through `inc.map(range(n)).result()`; n tasks.
- as-completed: `sum(f.result() for f in as_completed(inc.map(range(n))))`, against
  Dask's `as_completed(..., with_results=True)`; n tasks.

Prints each time, tasks/s and the flow/raw ratio of the medians per shape. Target: ≤ 1.3.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import dask

from flows_tui import as_completed, flow, task
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


@flow
def collect_one_by_one(n: int):
    return sum(f.result() for f in inc.map(range(n)))


@flow
def collect_list(n: int):
    return sum(inc.map(range(n)).result())


@flow
def collect_as_completed(n: int):
    return sum(f.result() for f in as_completed(inc.map(range(n))))


def raw_reduce(client, n: int) -> int:
    incremented = client.map(inc_raw, range(n), pure=False)
    doubled = client.map(double_raw, incremented, pure=False)
    return client.submit(sum_raw, doubled, pure=False).result()


def raw_collect(client, n: int) -> int:
    return sum(client.gather(client.map(inc_raw, range(n), pure=False)))


def raw_as_completed(client, n: int) -> int:
    from distributed import as_completed as dask_as_completed

    futures = client.map(inc_raw, range(n), pure=False)
    return sum(value for _, value in dask_as_completed(futures, with_results=True))


def as_flow(body):
    def run(client, n: int) -> int:
        engine = run_flow(body, {"n": n}, client=client)
        assert engine.final.name == "Completed", engine.final
        return engine.return_value
    return run


SHAPES = {
    # name: (raw, flow, tasks for n, expected result for n)
    "reduce": (raw_reduce, as_flow(map_map_reduce), lambda n: 2 * n + 1, lambda n: sum(2 * (i + 1) for i in range(n))),
    "collect": (raw_collect, as_flow(collect_one_by_one), lambda n: n, lambda n: sum(i + 1 for i in range(n))),
    "collect-list": (raw_collect, as_flow(collect_list), lambda n: n, lambda n: sum(i + 1 for i in range(n))),
    "as-completed": (raw_as_completed, as_flow(collect_as_completed), lambda n: n,
                     lambda n: sum(i + 1 for i in range(n))),
}


def measure(client, shape: str, n: int, repeats: int) -> float:
    raw_runner, flow_runner, count, expected_for = SHAPES[shape]
    tasks, expected = count(n), expected_for(n)
    times: dict[str, list[float]] = {"raw": [], "flow": []}
    for repeat in range(repeats):
        for name, runner in (("raw", raw_runner), ("flow", flow_runner)):
            started = time.perf_counter()
            result = runner(client, n)
            elapsed = time.perf_counter() - started
            assert result == expected, (shape, name, result)
            times[name].append(elapsed)
            print(f"{shape:>12} n={n:<6} {name:>4} #{repeat + 1}: {elapsed:6.2f}s  {tasks / elapsed:7.0f} tasks/s",
                  flush=True)
    raw, flowed = statistics.median(times["raw"]), statistics.median(times["flow"])
    print(f"{shape:>12} n={n:<6} median raw {raw:.2f}s ({tasks / raw:.0f} tasks/s), flow {flowed:.2f}s "
          f"({tasks / flowed:.0f} tasks/s): flow/raw {flowed / raw:.2f} for {tasks} tasks", flush=True)
    return flowed / raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shape", nargs="+", choices=sorted(SHAPES), default=["reduce"])
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.worker-saturation": float("inf")}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.CRITICAL)
    client = Client(cluster)
    for raw_runner, flow_runner, _, _ in SHAPES.values():  # warm every path up: imports, connections
        raw_runner(client, 50)
        flow_runner(client, 50)
    ratios = {(shape, n): measure(client, shape, n, args.repeats) for shape in args.shape for n in args.n}
    print("flow/raw ratios (target <= 1.3):")
    for (shape, n), ratio in ratios.items():
        print(f"  {shape:>12} n={n:<6} {ratio:.2f}")
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
