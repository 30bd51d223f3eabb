"""Many runs in one process, as `serve` fires them: nothing piles up run after run.

The scheduler kept every run's event topic (its last 1,000 log messages) for as long as it
lived: a `serve` firing a small flow every second grew ~29 kB a run, and never levelled off.
Then Dask's debugging logs (the last 1,000 batches each stream sent, with every task's
arguments and every batch of log lines) filled for hundreds of runs; serve's cluster keeps 50.
Then Dask's spans (one a run, kept for as long as the scheduler lives, with their task groups)
and its last hour of system figures; a default span done for a while now goes with the runs.
Memory is also counted in Python's allocated blocks (this process, with the scheduler, and
each worker), which the allocator's page reuse does not blur as the resident size does.
"""

from __future__ import annotations

import gc
import os
import sys
import time

import pytest

from flows_tui import flow, get_run_logger, task
from flows_tui.engine.flow_run import run_flow
from flows_tui.launch.runner import recording
from flows_tui.project.config import load_config
from flows_tui.record import events as ev

from .conftest import sized

RUNS = sized(1_000, 60)
LINES = 50


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
    gc.collect()
    return sys.getallocatedblocks()


def _span_groups(dask_scheduler) -> int:
    """The task groups Dask's spans hold (each span keeps its groups for as long as it lives)."""
    return sum(len(span.groups) for span in dask_scheduler.extensions["spans"].spans.values())


def _run_topics(client) -> list[str]:
    return client.run_on_scheduler(
        lambda dask_scheduler: [name for name in dask_scheduler._broker._topics if name.startswith("flows-tui-")])


@pytest.fixture(scope="module")
def served_cluster():
    """The embedded cluster as serve starts it (with its settings: Dask's short debugging logs)."""
    from flows_tui.engine.cluster import ClusterChoice, connect

    cluster = connect(ClusterChoice(n_workers=2, threads_per_worker=1, processes=True))
    try:
        yield cluster.client
    finally:
        cluster.close()


@pytest.mark.timeout(sized(900, 180))
def test_run_after_run_the_scheduler_keeps_no_topic_and_memory_levels_off(tmp_path, served_cluster, figures,
                                                                          monkeypatch):
    from flows_tui.engine import scheduler_cleanup

    # Spans go once done for this long (30 s in use, for the workers' heartbeats): here at once.
    monkeypatch.setattr(scheduler_cleanup, "SPAN_KEPT_SECONDS", 0.0)
    process_client = served_cluster
    (tmp_path / "flows.toml").write_text('[project]\nstate_dir = ".flows-tui"\n')
    config = load_config(None, cwd=tmp_path)
    bus = ev.EventBus()
    resident, blocks, workers = [], [], []
    with recording(bus, config) as store:
        for number in range(RUNS):
            engine = run_flow(small, {}, client=process_client, bus=bus)
            assert engine.final.name == "Completed"
            del engine
            if number % 10 == 9:
                assert bus.flush(10)
                blocks.append(_blocks())
                workers.append(sum(process_client.run(_blocks).values()))
                resident.append(_resident_kb())
        assert bus.flush(10)
        assert len(store.runs()) == RUNS
    # Each run's topic went with it (dropped as the run ends, without the run waiting for it).
    deadline = time.monotonic() + 10
    while _run_topics(process_client) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _run_topics(process_client) == []
    # Dask's spans: the last run's, not one every few runs (one a run when runs do not overlap)
    spans, groups = process_client.run_on_scheduler(
        lambda dask_scheduler: (len(dask_scheduler.extensions["spans"].spans), _span_groups(dask_scheduler)))
    assert spans <= 2 and groups <= 4, (spans, groups)
    half = len(blocks) // 2
    runs = max(1, (len(blocks) - 1 - half) * 10)
    here = (blocks[-1] - blocks[half]) / runs
    there = (workers[-1] - workers[half]) / runs
    per_run = (resident[-1] - resident[half]) / runs
    # What a run left behind on the scheduler, run after run, is gone: its topic (above) and its
    # span. Dask's bounded logs (system figures, the workers' profiles) still fill over the
    # first minutes, which is why the blocks below are figures, not assertions.
    figures.add("runs", f"{RUNS} runs of a 4-task flow logging {4 * LINES} lines each, recorded, on one "
                        "LocalCluster of 2 worker processes, in one process as serve runs them")
    figures.add("scheduler topics left", 0)
    figures.add("memory", f"Python blocks {here:+.1f} a run in this process (with the scheduler), {there:+.1f} in the "
                          f"workers over the second half; resident {resident[0] / 1024:.0f} MB after 10 runs, "
                          f"{resident[half] / 1024:.0f} MB halfway, {resident[-1] / 1024:.0f} MB at the end: "
                          f"{per_run:+.1f} kB a run")
