"""serve's cluster, shared: on a small box `flows-tui run` and the UI use a running serve's
embedded cluster instead of starting their own; they fall back to their own when it stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli, wait_until
from flows_tui.engine.cluster import choose_cluster
from flows_tui.launch import shared_cluster
from flows_tui.launch.shared_cluster import published, read
from flows_tui.project.config import load_config
from flows_tui.record.store import Store
from flows_tui.tui.flow_list import FlowList
from flows_tui.tui.status_bar import StatusBar
from flows_tui.tui.task_tree import TaskTree
from test_tui import app_for, make_project, select, toasts, wait_for


# serve's cluster is one of worker processes (one of threads is reachable from serve's process
# only); the commands' and the UI's own cluster, when they start one, is of threads (cheaper).
PROCESSES = "[cluster]\nn_workers = 1\nthreads_per_worker = 2\nprocesses = true\n"
SCHEDULE = '\n[flows.numbers]\ninterval = "1h"\n'


def _project(tmp_path: Path) -> Path:
    project = make_project(tmp_path)
    toml = project / "flows.toml"
    text = toml.read_text() + SCHEDULE
    toml.write_text(text)
    (project / "serve.toml").write_text(text.split("[cluster]")[0] + PROCESSES + SCHEDULE)
    return project


@pytest.fixture(autouse=True)
def resource_tracker_started():
    """As run_app does: a cluster started under the UI needs multiprocessing's resource tracker,
    started on our real stderr before Textual's test driver replaces sys.stderr."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def _environment() -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    environment.update(NO_COLOR="1", CI="1", PYTHONUNBUFFERED="1")
    return environment


def _start(project: Path, *args: str, log: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flows_tui.cli", *args], cwd=project, env=_environment(),
                            stdout=(project / log).open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _serve(project: Path) -> tuple[subprocess.Popen, shared_cluster.Published]:
    server = _start(project, "serve", "--config", "serve.toml", log="serve.log")
    state_dir = project / ".flows-tui"
    wait_until(lambda: published(state_dir) is not None or server.poll() is not None, timeout=90,
               message="serve publishing its cluster")
    assert server.poll() is None, (project / "serve.log").read_text()
    return server, published(state_dir)


def test_serve_publishes_its_cluster_and_flows_tui_run_uses_it_until_serve_stops(tmp_path):
    project = _project(tmp_path)
    state_dir = project / ".flows-tui"
    server, shared = _serve(project)
    sleepy = None
    try:
        assert (shared.pid, shared.address.startswith("tcp://127.0.0.1:")) == (server.pid, True)
        done = cli("run", "numbers", cwd=project)
        assert done.returncode == 0, done.stdout + done.stderr
        first = done.stdout.splitlines()[0]
        assert f"on serve's cluster (pid {server.pid}) at {shared.address}" in first, done.stdout

        # A run in flight on serve's cluster when serve stops: Crashed, saying why.
        sleepy = _start(project, "run", "sleepy", log="sleepy.log")
        store = Store.open(state_dir)
        wait_until(lambda: any(run.flow == "sleepy" and run.state == "Running" for run in store.runs()),
                   timeout=60, message="the run of sleepy in progress")
        _stop(server)
        assert sleepy.wait(60) == 1
    finally:
        _stop(server)
        if sleepy is not None and sleepy.poll() is None:
            os.killpg(sleepy.pid, signal.SIGKILL)
    assert read(state_dir) is None, "serve removes its file when it stops"
    [crashed] = [run for run in store.runs() if run.flow == "sleepy"]
    assert crashed.state == "Crashed"
    assert f"lost serve's cluster (pid {server.pid})" in (project / "sleepy.log").read_text()
    assert "that serve stopped" in store.load_run(crashed.run_id).message

    # The file of a serve that is gone (killed -9: never removed) is ignored.
    (state_dir / "cluster.json").write_text(json.dumps({"address": shared.address, "pid": server.pid,
                                                         "host": shared.host, "started": shared.started}))
    config = load_config(None, cwd=project)
    assert read(state_dir) is not None and published(state_dir) is None
    assert shared_cluster.shared_choice(choose_cluster(None, config, environ={}), config) is None


def test_only_the_default_cluster_gives_way_to_serves_and_shared_false_opts_out(tmp_path, monkeypatch):
    project = _project(tmp_path)
    config = load_config(None, cwd=project)
    state_dir = config.project.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    assert shared_cluster.publish(state_dir, "tcp://127.0.0.1:1") is not None  # this process stands for serve
    try:
        assert shared_cluster.publish(state_dir, "tcp://127.0.0.1:2") is None  # a second serve leaves it be
        default = choose_cluster(None, config, environ={})
        served = shared_cluster.shared_choice(default, config)
        assert (served.address, served.source) == ("tcp://127.0.0.1:1", f"serve's cluster (pid {os.getpid()})")
        # Anything that chooses a cluster comes first: --address, DASK_SCHEDULER_ADDRESS, [cluster] address.
        for chosen in (choose_cluster("tcp://127.0.0.1:9", config, environ={}),
                       choose_cluster(None, config, environ={"DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9"})):
            assert shared_cluster.shared_choice(chosen, config) is None
        toml = project / "flows.toml"
        toml.write_text(toml.read_text().replace("[cluster]\n", "[cluster]\nshared = false\n"))
        opted_out = load_config(None, cwd=project)
        assert opted_out.cluster.shared is False
        assert shared_cluster.shared_choice(choose_cluster(None, opted_out, environ={}), opted_out) is None
    finally:
        shared_cluster.withdraw(state_dir)
    assert read(state_dir) is None


def _status(app) -> str:
    return str(app.query_one(StatusBar).cluster)


def _served_runs(store: Store, pid: int) -> int:
    return sum(1 for run in store.runs() if store.run_owner(run.run_id)[2].pid == pid)


def _mine(app, store: Store, count: int):
    """The last of the `count` runs this UI started, once it has ended; else None."""
    if len(app._started_here) < count:
        return None
    ended = {run.run_id: run for run in store.runs() if run.run_id in app._started_here and run.ended is not None}
    return max(ended.values(), key=lambda run: run.started) if len(ended) == count else None


async def test_the_ui_runs_on_serves_cluster_t_and_s_act_through_serve_and_it_starts_its_own_once_serve_stops(
        tmp_path):
    project = _project(tmp_path)
    server, shared = _serve(project)
    store = Store.open(project / ".flows-tui")
    try:
        app = app_for(project)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await wait_for(pilot, lambda: f"serve's cluster (pid {server.pid})" in _status(app), timeout=60,
                           message="the status bar naming serve's cluster")
            await wait_for(pilot, lambda: "numbers" in app.directory.flows, message="the flows")
            select(app, "numbers")
            await pilot.press("r")
            await wait_for(pilot, lambda: _mine(app, store, 1), timeout=60, message="the run")
            mine = _mine(app, store, 1)
            assert mine.state == "Completed"
            assert store.load_run(mine.run_id).address == f"serve's cluster (pid {server.pid}) at {shared.address}"

            # t and s on the schedule serve fires: serve runs it, and reads the pause.
            await wait_for(pilot, lambda: app.scheduler is not None and app.scheduler.standing_by, timeout=10,
                           message="the UI standing by for serve's schedules")
            served_before = _served_runs(store, server.pid)
            await pilot.press("t")
            await wait_for(pilot, lambda: "started by flows-tui serve" in toasts(app), timeout=20,
                           message="serve's answer")
            await wait_for(pilot, lambda: _served_runs(store, server.pid) > served_before, timeout=20,
                           message="the run serve started")
            await pilot.press("s")
            assert store.schedule_states()["numbers"].paused
            await wait_for(pilot, lambda: f"pid {server.pid}" in toasts(app) and "paused" in toasts(app),
                           message="the pause, saying who fires the schedule")

            _stop(server)
            await wait_for(pilot, lambda: "stopped" in _status(app), timeout=30, message="the status bar")
            assert f"serve (pid {server.pid}) stopped" in _status(app)
            await pilot.press("r")
            await wait_for(pilot, lambda: "LocalCluster" in _status(app), timeout=60, message="a cluster of its own")
            await wait_for(pilot, lambda: _mine(app, store, 2), timeout=60, message="the run")
            again = _mine(app, store, 2)
            assert again.state == "Completed" and store.load_run(again.run_id).address == "LocalCluster"
    finally:
        _stop(server)


async def test_the_ui_opened_to_watch_starts_no_worker_processes_until_r_which_waits_for_them(tmp_path):
    project = _project(tmp_path)
    (project / "flows.toml").write_text((project / "serve.toml").read_text().replace(SCHEDULE, ""))
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "numbers" in app.directory.flows, message="the flows")
        await pilot.pause(0.5)
        assert app.cluster is None and "starts with the first run" in _status(app)
        select(app, "numbers")
        await pilot.press("r")
        tree, flows = app.query_one(TaskTree), app.query_one(FlowList)
        # Taken: said to wait for the cluster, or (the cluster up already) running or done.
        await wait_for(pilot, lambda: "waiting for the cluster" in str(tree.root.label) or app.engines
                       or flows.last_states.get("numbers") in ("Running", "Completed"), timeout=30,
                       message="the run waiting for the cluster")
        await wait_for(pilot, lambda: flows.last_states.get("numbers") == "Completed", timeout=90,
                       message="the run, once the cluster is up")
        assert app.cluster is not None and app.cluster.local is not None


def test_run_now_asked_of_a_process_that_is_gone_says_so(tmp_path):
    from flows_tui.launch.requests import run_now_through

    store = Store.open(tmp_path / ".flows-tui")
    outcome = run_now_through(store, "numbers", "flows-tui serve (pid 1 on elsewhere)", lambda: False)
    assert outcome.gone and not outcome.started
    assert outcome.message == "numbers not run by flows-tui serve (pid 1 on elsewhere): its process is gone"
