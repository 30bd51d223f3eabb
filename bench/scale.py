"""Scale: a map, then a map over it (2N task runs), as `flows-tui run` and as raw Dask, side by side.

    python bench/scale.py [--n 5000] [--rounds 1] [--collect]

Each round runs raw Dask and then `flows-tui run` (recorded in a fresh store), each in a
process of its own with the same embedded cluster (a LocalCluster of 2 worker processes x
1 thread, `distributed.scheduler.worker-saturation: inf` as flows-tui sets it), and prints:

- wall time (process start to end, the cluster's start included in both),
- CPU seconds (the driving process and its worker processes),
- the driving process's peak memory (its maximum resident set), and what the flow's adds to raw
  Dask's per task run (flows-tui's own imports, ~18 MiB, included),
- SQLite bytes per task run (the store's files after the run, over the task runs), and at
  rest (a minute later: the journal's rows trimmed, pages in use),
- worker reports the engine had to take from the cluster instead ("no report from the worker").

With --collect the flow body (and raw Dask's driver) also collects the second map's results.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

FLOW_FILE = """
from flows_tui import flow, task


@task
def inc(x):
    return x + 1


@task
def double(x):
    return 2 * x


@flow
def maps(n: int = 1000, collect: bool = False):
    doubled = double.map(inc.map(range(n)))
    if collect:
        return sum(doubled.result())
"""

FLOWS_TOML = """
[project]
flows_dir = "flows"
[cluster]
n_workers = 2
threads_per_worker = 1
processes = true
"""


def inc(x):
    return x + 1


def double(x):
    return 2 * x


def measure_raw(n: int, collect: bool) -> dict:
    import dask
    from distributed import Client, LocalCluster, wait

    with dask.config.set({"distributed.scheduler.worker-saturation": float("inf")}):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                          silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
            doubled = client.map(double, client.map(inc, range(n), pure=False), pure=False)
            if collect:
                sum(client.gather(doubled))
            else:
                wait(doubled)
    return {}


class _CountLost(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "no report from the worker" in record.getMessage():
            self.lost += 1


def measure_flow(n: int, collect: bool) -> dict:
    from flows_tui.cli import main
    from flows_tui.record.store import STORE_NAME

    counter = _CountLost()
    logging.getLogger("flows_tui.engine").addHandler(counter)
    project = Path(os.environ["SCALE_PROJECT"])
    os.chdir(project)
    try:
        main(["run", "maps", "-p", f"n={n}", "-p", f"collect={str(collect).lower()}"], standalone_mode=False)
    except SystemExit as stop:
        if stop.code:
            raise
    state = project / ".flows-tui"
    size = sum(path.stat().st_size for path in state.glob(STORE_NAME + "*"))
    return {"store_bytes": size, "rest_bytes": _at_rest(state / STORE_NAME), "lost_reports": counter.lost}


def _at_rest(path: Path) -> int:
    """The bytes of the store's pages in use a minute after the run: the journal (which only serves
    live tails) trimmed, the WAL checkpointed; freed pages go to the next runs."""
    import sqlite3

    from flows_tui.record.store import journal

    connection = sqlite3.connect(path)
    try:
        journal.trim(connection, now=time.time() + journal.GRACE_SECONDS)
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, page = (connection.execute(f"PRAGMA {name}").fetchone()[0]
                             for name in ("page_count", "freelist_count", "page_size"))
    finally:
        connection.close()
    return (pages - free) * page


def child(variant: str, n: int, collect: bool, out: str) -> None:
    started = time.perf_counter()
    extra = (measure_raw if variant == "raw" else measure_flow)(n, collect)
    wall = time.perf_counter() - started
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {"wall": wall, "cpu": me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime,
              "cpu_driver": me.ru_utime + me.ru_stime, "peak_mib": me.ru_maxrss / 1024, **extra}
    Path(out).write_text(json.dumps(result))


def run_child(variant: str, n: int, collect: bool, project: Path | None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    env = dict(os.environ)
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    if project is not None:
        env["SCALE_PROJECT"] = str(project)
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--child", variant, "--n", str(n), "--out", out]
                   + (["--collect"] if collect else []), env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = json.loads(Path(out).read_text())
    result["process_wall"] = time.perf_counter() - started
    os.unlink(out)
    return result


def new_project(root: Path) -> Path:
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "maps.py").write_text(textwrap.dedent(FLOW_FILE))
    (root / "flows.toml").write_text(FLOWS_TOML)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="elements per map (2N task runs)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--collect", action="store_true", help="the body collects the results too")
    parser.add_argument("--child", choices=["raw", "flow"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.collect, args.out)
        return
    tasks = 2 * args.n
    results: dict[str, list[dict]] = {"raw": [], "flow": []}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for variant in ("raw", "flow"):
                project = new_project(Path(scratch) / f"{variant}{round_}") if variant == "flow" else None
                result = run_child(variant, args.n, args.collect, project)
                results[variant].append(result)
                print(f"round {round_ + 1} {variant:>4}: wall {result['process_wall']:.1f}s, CPU "
                      f"{result['cpu']:.1f}s (driver {result['cpu_driver']:.1f}s), peak {result['peak_mib']:.0f} MiB",
                      flush=True)

    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    print(f"\n{tasks:,} task runs (a map of {args.n:,}, then a map over it"
          f"{', collected by the body' if args.collect else ''}), median of {args.rounds}:")
    print(f"| | raw Dask (same config) | flows-tui `run` | flow/raw |\n|---|---|---|---|")
    for label, key, unit in (("wall time", "process_wall", "s"), ("CPU seconds", "cpu", "s"),
                             ("driver CPU seconds", "cpu_driver", "s"), ("driver peak memory", "peak_mib", " MiB")):
        raw, flowed = median("raw", key), median("flow", key)
        print(f"| {label} | {raw:,.1f}{unit} | {flowed:,.1f}{unit} | {flowed / raw:.2f}x |")
    over = (median("flow", "peak_mib") - median("raw", "peak_mib")) * 2**20
    print(f"| driver memory over raw Dask's | — | {over / 2**20:,.1f} MiB ({over / tasks:,.0f} bytes per task run, "
          f"imports included) | |")
    store = median("flow", "store_bytes")
    print(f"| SQLite after the run | — | {store / 1e6:,.1f} MB ({store / tasks:,.0f} bytes per task run) | |")
    rest = median("flow", "rest_bytes")
    print(f"| SQLite at rest (a minute later) | — | {rest / 1e6:,.1f} MB ({rest / tasks:,.0f} bytes per task run) | |")
    print(f"| reports taken from the cluster | — | {sum(r['lost_reports'] for r in results['flow'])} | |")


if __name__ == "__main__":
    main()
