"""The soak test's process (test_serve_soak.py runs it): many runs in one process, as `serve` fires them.

A process of its own, as serve is: what other tests leave in the test's own process (their
threads, handlers and caches, which grow as they please) is no part of a serve's memory.

    python serve_soak_child.py WARM_UP COUNTED STATE_DIR   → one JSON line: the counts, topics and spans left
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path

from flows_tui import flow, get_run_logger, task

WARM_UP_SECONDS = 6.0  # Dask's time-bounded histories below fill in ~5 s
EVERY = 5  # runs between counts
LINES = 50
# Dask's bounded histories, short enough to be full after the warm-up. Its profiler is off: it
# keeps every stack it has sampled (a line of source each), as many as the code has, which
# grow for as long as new ones are sampled, whatever the runs keep.
SHORT_HISTORIES = {"distributed.admin.low-level-log-length": 10,
                   "distributed.admin.system-monitor.log-length": 10,
                   "distributed.worker.profile.enabled": False}


@task
def chatty(x: int) -> int:
    logger = get_run_logger()
    for line in range(LINES):
        logger.info("line %d of task %d: %s", line, x, "x" * 40)
    return x


@flow
def small():
    return sum(f.result() for f in chatty.map(range(4)))


def _resident_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _blocks(dask_worker=None) -> int:
    # Memos bounded by count, which a few hundred runs fill: the engine's of task calls (256, in
    # the workers and the scheduler), Dask's of task keys (100,000; the scheduler's is emptied by
    # flows-tui past 10,000).
    from flows_tui.engine import worker

    worker._restored_calls.clear()
    if dask_worker is not None:
        from dask.utils import key_split

        key_split.cache_clear()
    gc.collect()
    return sys.getallocatedblocks()


def _span_groups(dask_scheduler) -> int:
    """The task groups Dask's spans hold (each span keeps its groups for as long as it lives)."""
    return sum(len(span.groups) for span in dask_scheduler.extensions["spans"].spans.values())


def _run_topics(client) -> list[str]:
    """The runs' own topics (`flows-tui-<run id>`) the scheduler still holds. The one topic all runs
    share (what dead workers without a nanny were running, `scheduler_deaths.TOPIC`) stays: one per
    scheduler, its events bounded by Dask, not one a run."""

    def run_topics(dask_scheduler) -> list[str]:
        import re

        return [name for name in dask_scheduler._broker._topics if re.fullmatch(r"flows-tui-[0-9a-f]{12}", name)]

    return client.run_on_scheduler(run_topics)



def main(warm_up: int, counted_runs: int, folder: Path) -> dict:
    import dask
    import distributed  # noqa: F401 - its settings loaded before ours are laid over them

    from flows_tui.engine import scheduler_cleanup
    from flows_tui.engine.cluster import ClusterChoice, connect
    from flows_tui.engine.flow_run import run_flow
    from flows_tui.launch.runner import recording
    from flows_tui.project.config import load_config
    from flows_tui.record import events as ev

    # Spans go once done for this long (30 s in use, for the workers' heartbeats): here at once.
    scheduler_cleanup.SPAN_KEPT_SECONDS = 0.0
    # The scheduler's memo of keys is emptied past 10,000 keys in use: here as often as counted.
    scheduler_cleanup.KEYS_KEPT = 40
    with dask.config.set(SHORT_HISTORIES):  # worker processes take the config they are started with
        cluster = connect(ClusterChoice(n_workers=2, threads_per_worker=1, processes=True))
    try:
        client = cluster.client
        (folder / "flows.toml").write_text('[project]\nstate_dir = ".flows-tui"\n')
        config = load_config(None, cwd=folder)
        bus = ev.EventBus()
        counted: list[tuple[int, int, int, int]] = []  # (runs, blocks here, blocks in the workers, resident kB)
        started = time.monotonic()
        with recording(bus, config) as store:
            number, warm = 0, None
            while warm is None or number < warm + counted_runs:
                engine = run_flow(small, {}, client=client, bus=bus)
                assert engine.final.name == "Completed", engine.final
                del engine
                number += 1
                if warm is None and number >= warm_up and time.monotonic() - started >= WARM_UP_SECONDS:
                    warm = number
                if warm is not None and (number - warm) % EVERY == 0:
                    assert bus.flush(10)
                    counted.append((number, _blocks(), sum(client.run(_blocks).values()), _resident_kb()))
            assert bus.flush(10)
            stored = len(store.runs())
        # Each run's topic went with it (dropped as the run ends, without the run waiting for it).
        deadline = time.monotonic() + 10
        while _run_topics(client) and time.monotonic() < deadline:
            time.sleep(0.05)
        spans, groups = client.run_on_scheduler(
            lambda dask_scheduler: (len(dask_scheduler.extensions["spans"].spans), _span_groups(dask_scheduler)))
        return {"runs": number, "stored": stored, "counted": counted, "topics": _run_topics(client),
                "spans": spans, "groups": groups}
    finally:
        cluster.close()


if __name__ == "__main__":
    result = main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
    print(json.dumps(result), flush=True)
    os._exit(0)
