"""A job-queue cluster as a profile: dask_jobqueue's local cluster submits "jobs" as local
processes through the same machinery as SLURMCluster, so adapt scales it from 0 up and back."""

from __future__ import annotations

import pytest

from conftest import wait_until, write_project
from flows_tui.engine.cluster import ClusterChoice
from flows_tui.launch.launcher import RunLauncher
from flows_tui.project.config import load_config
from flows_tui.project.flow_files import load_flow_file
from flows_tui.record.events import EventBus

pytest.importorskip("dask_jobqueue")

TOML = """
[project]
flows_dir = "flows"
[clusters.queue]
class = "dask_jobqueue.local.LocalCluster"
kwargs = { cores = 1, memory = "1GB", processes = 1, walltime = "00:10:00", scheduler_options = { dashboard_address = ":0" } }
adapt = { minimum = 0, maximum = 2, interval = "200ms", wait_count = 2, target_duration = "1s" }
reuse = true
[flows.queued]
cluster = "queue"
"""

FLOWS = {"queued.py": """
    from flows_tui import flow, task

    @task
    def square(x):
        return x * x

    @flow
    def queued(n: int = 4):
        return sum(square.map(range(n)).result())
"""}


def test_adapt_starts_jobs_for_a_run_and_ends_them_after_and_close_ends_the_cluster(tmp_path):
    project = write_project(tmp_path, FLOWS, TOML)
    config = load_config(project / "flows.toml", cwd=project)
    flow = next(iter(load_flow_file(project / "flows" / "queued.py").flows.values()))
    launcher = RunLauncher(ClusterChoice(processes=False, n_workers=1), config, EventBus())
    try:
        engine = launcher.launch(flow, {"n": 4})  # no worker at first: the run waits for a job to start one
        assert engine.final.is_completed() and engine.final.result() == 14
        assert engine.address == "LocalCluster (profile queue)"
        [cluster] = launcher.flow_clusters.in_use()  # reuse = true: kept after the run
        assert type(cluster.local).__module__.startswith("dask_jobqueue")
        wait_until(lambda: cluster.info().workers == 0, timeout=60, message="adapt to end the idle jobs")
    finally:
        launcher.close()
    assert cluster.local.status.name == "closed" and not launcher.flow_clusters.in_use()
