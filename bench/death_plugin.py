"""What the scheduler plugin that tells of dead workers' tasks (`scheduler_deaths`) costs a run
where nothing dies: raw Dask's own tasks, with and without it on the scheduler.

    python bench/death_plugin.py [--n 3000] [--repeats 4]

The plugin has no transition hook of its own; what it adds per task is Dask's call of the base
class's no-op `transition` at each of the task's transitions (the scheduler calls every
plugin's), and one `log_event` call per event (a worker's batch of reports). Measured here:

- the CPU time per task of raw Dask (`client.map` + `gather`, an in-process cluster of 2 workers
  x 1 thread, so the scheduler's work is in this process's CPU time), alternately without and
  with the plugin registered, so machine noise hits both alike; the with/without ratio of the
  medians;
- the cost of one such no-op call and the transitions per task, whose product is the plugin's
  share of the per-task figure, printed as a ratio too.

Target: within noise (≤ 1.02).
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit

from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import SchedulerPlugin

from flows_tui.engine.scheduler_deaths import PLUGIN_NAME, TellWhatDeadWorkersRan


def inc(x):
    return x + 1


class CountTransitions(SchedulerPlugin):
    def __init__(self) -> None:
        self.count = 0

    def transition(self, *args, **kwargs) -> None:
        self.count += 1


def cpu_per_task(client: Client, n: int, tag: str) -> float:
    started = time.process_time()
    futures = client.map(inc, range(n), key=[f"inc-{tag}-{i}" for i in range(n)])
    client.gather(futures)
    del futures
    time.sleep(0.3)  # the tasks' release, on the scheduler
    return (time.process_time() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    per_task: dict[str, list[float]] = {"without": [], "with": []}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        scheduler = cluster.scheduler
        cpu_per_task(client, 200, "warm")
        for repeat in range(args.repeats):
            for mode in ("without", "with"):
                if mode == "with":
                    scheduler.add_plugin(TellWhatDeadWorkersRan(), name=PLUGIN_NAME)
                else:
                    scheduler.plugins.pop(PLUGIN_NAME, None)
                per_task[mode].append(cpu_per_task(client, args.n, f"{repeat}-{mode}"))
                print(f"{mode:8} {per_task[mode][-1] * 1e6:6.0f} µs CPU per task", flush=True)
        counter = CountTransitions()
        scheduler.add_plugin(counter, name="count-transitions")
        cpu_per_task(client, args.n, "count")
        transitions = counter.count / args.n
    plugin = TellWhatDeadWorkersRan()
    kwargs = {"worker": "tcp://127.0.0.1:1", "nbytes": 28, "typename": "int"}
    call = min(timeit.repeat(lambda: plugin.transition("inc-1", "processing", "memory", stimulus_id="s", **kwargs),
                             number=100_000, repeat=5)) / 100_000
    without, with_ = statistics.median(per_task["without"]), statistics.median(per_task["with"])
    print(f"median without {without * 1e6:.0f} µs, with {with_ * 1e6:.0f} µs: ratio {with_ / without:.3f}")
    print(f"{transitions:.1f} transitions per task x {call * 1e9:.0f} ns per no-op call = "
          f"{transitions * call * 1e6:.1f} µs per task: ratio {(without + transitions * call) / without:.4f}")


if __name__ == "__main__":
    main()
