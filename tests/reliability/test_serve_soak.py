"""Many runs in one process, as `serve` fires them: nothing piles up run after run.

The scheduler kept every run's event topic (its last 1,000 log messages) for as long as it
lived: a `serve` firing a small flow every second grew ~29 kB a run, and never levelled off.
Then Dask's debugging logs (the last 1,000 batches each stream sent, with every task's
arguments and every batch of log lines) filled for hundreds of runs; serve's cluster keeps 50.
"""

from __future__ import annotations

import gc
import os

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
def test_run_after_run_the_scheduler_keeps_no_topic_and_memory_levels_off(tmp_path, served_cluster, figures):
    process_client = served_cluster
    (tmp_path / "flows.toml").write_text('[project]\nstate_dir = ".flows-tui"\n')
    config = load_config(None, cwd=tmp_path)
    bus = ev.EventBus()
    resident = []
    with recording(bus, config) as store:
        for number in range(RUNS):
            engine = run_flow(small, {}, client=process_client, bus=bus)
            assert engine.final.name == "Completed"
            del engine
            if number % 10 == 9:
                gc.collect()
                resident.append(_resident_kb())
        assert bus.flush(10)
        assert len(store.runs()) == RUNS
    assert _run_topics(process_client) == []  # each run's topic went with it
    half = len(resident) // 2
    per_run = (resident[-1] - resident[half]) / max(1, (len(resident) - 1 - half) * 10)
    figures.add("runs", f"{RUNS} runs of a 4-task flow logging {4 * LINES} lines each, recorded, on one "
                        "LocalCluster of 2 worker processes, in one process as serve runs them")
    figures.add("scheduler topics left", 0)
    figures.add("memory", f"resident {resident[0] / 1024:.0f} MB after 10 runs, {resident[half] / 1024:.0f} MB "
                          f"halfway, {resident[-1] / 1024:.0f} MB at the end: {per_run:+.1f} kB a run over the "
                          "second half")
