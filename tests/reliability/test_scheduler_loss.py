"""The attached Dask scheduler SIGKILLed mid-run: the run ends Crashed at once, and the next run reconnects.

A real `dask scheduler` and `dask worker` run as subprocesses on 127.0.0.1. The flow's
tasks mark that they started, then wait for a release file (or a deadline), so the kill
always lands while they run. Dask's own client would retry the scheduler for its connect
timeout and then report the tasks "cancelled"; users must see instead: the run Crashed,
naming the scheduler it lost, within about a second, in the terminal, the store and the UI;
and, once the scheduler is back on the same address, the next run (UI `r`, `serve`'s next
scheduled run) connecting again and completing.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import cli, free_port, wait_until, write_project
from flows_tui.record.store import Store
from flows_tui.tui.flow_list import FlowList
from flows_tui.tui.log_view import LogView
from flows_tui.tui.screens import HelpScreen
from flows_tui.tui.status_bar import StatusBar
from test_serve import _runs, _serve
from test_tui import app_for, flow_keys, select, tree_labels, wait_for

pytestmark = pytest.mark.attach

FLOW = """
    import os
    import time
    from flows_tui import flow, task

    @task
    def nap(i: int, started: str, release: str) -> int:
        open(f"{started}.{i}", "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.05)
        return i

    @flow
    def napping(started: str, release: str, n: int = 2):
        return sum(nap.map(range(n), started=started, release=release).result())
"""


class DaskPair:
    """`dask scheduler` + `dask worker` on one 127.0.0.1 port; the scheduler can be killed and started again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.scheduler: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.starts = 0

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DASK_SCHEDULER_ADDRESS")}
        with log.open("w") as handle:
            process = subprocess.Popen([sys.executable, "-m", *args], cwd=self.directory, stdout=handle,
                                       stderr=subprocess.STDOUT, env=env)
        self.processes.append(process)
        return process

    def start(self) -> None:
        """Both processes, on the same port every time; returns once the worker is registered."""
        self.starts += 1
        log = self.directory / f"worker-{self.starts}.log"
        self.scheduler = self._spawn(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                                      str(self.port), "--no-dashboard"],
                                     self.directory / f"scheduler-{self.starts}.log")
        self.worker = self._spawn(["distributed.cli.dask_worker", self.address, "--nthreads", "2", "--no-nanny",
                                   "--no-dashboard", "--host", "127.0.0.1"], log)
        wait_until(lambda: "Registered to" in log.read_text() or self.scheduler.poll() is not None,
                   timeout=60, interval=0.05, message=f"a worker registered at {self.address}")
        assert self.scheduler.poll() is None, (self.directory / f"scheduler-{self.starts}.log").read_text()

    def kill_scheduler(self) -> tuple[float, _dt.datetime]:
        """SIGKILL the scheduler (no goodbye to anyone); when, monotonic and wall clock."""
        self.scheduler.send_signal(signal.SIGKILL)
        killed = time.monotonic(), _dt.datetime.now(_dt.timezone.utc)
        self.scheduler.wait(10)
        return killed

    def kill_worker(self) -> None:
        self.worker.kill()
        self.worker.wait(10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait(10)


@pytest.fixture
def dask_pair(tmp_path_factory):
    pair = DaskPair(tmp_path_factory.mktemp("dask"))
    try:
        pair.start()
        yield pair
    finally:
        pair.stop()


def _project(root: Path, schedule: str = "") -> Path:
    project = write_project(root, {"napping.py": FLOW})
    with (project / "flows.toml").open("a") as toml:
        toml.write(f"\n[flows.napping]\n{schedule}parameters = {{ started = {str(root / 'started')!r}, "
                   f"release = {str(root / 'release')!r} }}\n")
    return project


def _started(root: Path, n: int = 2) -> bool:
    return len(list(root.glob("started.*"))) >= n


def _lost(address: str) -> str:
    return f"lost the Dask scheduler at {address}"


def test_run_attached_to_a_killed_scheduler_ends_crashed_within_seconds_and_exits_1(tmp_path, dask_pair, figures):
    project = _project(tmp_path)
    environment = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    environment.update(NO_COLOR="1", CI="1")
    run = subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "run", "napping", "--address", dask_pair.address],
                           cwd=project, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _started(tmp_path) or run.poll() is not None, timeout=60, message="both tasks running")
        assert run.poll() is None, run.communicate()
        killed, killed_at = dask_pair.kill_scheduler()
        stdout, stderr = run.communicate(timeout=20)  # Dask alone would retry the scheduler for 10 s and more
        exited = time.monotonic() - killed
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 1, (stdout, stderr)
    lost = _lost(dask_pair.address)
    assert "☠ Crashed flow run 'napping'" in stdout and lost in stdout
    assert stdout.count("☠ Crashed nap-") >= 2
    assert "Traceback" not in stdout + stderr and "distributed" not in stdout + stderr
    assert stderr.strip() == ""

    runs = cli("runs", "--json", cwd=project)
    [stored] = [json.loads(line) for line in runs.stdout.splitlines()]
    assert stored["state"] == "Crashed"
    logs = cli("logs", stored["run_id"], cwd=project)
    assert logs.returncode == 0 and lost in logs.stdout
    run_record = Store.open(project / ".flows-tui").load_run(stored["run_id"])
    assert run_record.state == "Crashed" and run_record.message.startswith(lost)
    assert {t.state for t in run_record.task_runs.values()} == {"Crashed"}
    assert all(t.message and t.message.startswith(lost) for t in run_record.task_runs.values())
    figures.add("kill → run recorded Crashed", f"{(run_record.ended - killed_at).total_seconds():.1f} s")
    figures.add("kill → `flows-tui run` exited 1", f"{exited:.1f} s")


async def test_the_ui_shows_the_crash_stays_up_and_the_next_run_reconnects(tmp_path, dask_pair, figures):
    project = _project(tmp_path)
    app = app_for(project, address=dask_pair.address, watch=False)
    lost = _lost(dask_pair.address)
    async with app.run_test(size=(140, 40)) as pilot:
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: app.cluster is not None and "napping" in flow_keys(app),
                       message="the cluster and the flow")
        select(app, "napping")
        await pilot.press("r")
        await wait_for(pilot, lambda: _started(tmp_path), message="both tasks running")
        killed, _ = dask_pair.kill_scheduler()
        await wait_for(pilot, lambda: flows.last_states.get("napping") == "Crashed", timeout=20,
                       message="the run to end Crashed")
        shown = time.monotonic() - killed
        await wait_for(pilot, lambda: lost in tree_labels(app)[0], message="the reason in the tree")
        assert "☠ Crashed  napping" in tree_labels(app)[0]
        assert any(lost in line for line in app.query_one(LogView).shown_lines())
        await wait_for(pilot, lambda: lost in str(app.query_one(StatusBar).cluster), message="the status bar")

        await pilot.press("question_mark")  # the UI still answers keys
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), message="the help screen")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen), message="the help screen to close")

        # The user runs the flow again while the scheduler restarts: the run connects afresh,
        # retrying until the scheduler (and a worker) are back on the same address.
        old = app.cluster
        (tmp_path / "release").touch()
        await pilot.press("r")
        status = app.query_one(StatusBar)
        await wait_for(pilot, lambda: "reconnecting to" in str(status.cluster), message="the reconnect")
        dask_pair.kill_worker()
        await asyncio.to_thread(dask_pair.start)  # the UI goes on meanwhile
        back = time.monotonic()
        await wait_for(pilot, lambda: flows.last_states.get("napping") == "Completed", timeout=30,
                       message="the next run to reconnect and complete")
        completed = time.monotonic() - back
        assert "✓ Completed  napping" in tree_labels(app)[0]
        assert app.cluster is not old and not app.cluster.lost
        assert str(status.cluster).startswith(f"cluster: {dask_pair.address} · ")  # lost no more
    states = [run.state for run in app.store.runs()]
    assert states == ["Completed", "Crashed"]  # newest first
    figures.add("kill → Crashed in the UI", f"{shown:.1f} s")
    figures.add("scheduler back → the run r started during the outage Completed", f"{completed:.1f} s")


def test_serve_reconnects_when_the_scheduler_comes_back(tmp_path, dask_pair, figures):
    project = _project(tmp_path, schedule='interval = "1s"\n')
    server = _serve(project, "--address", dask_pair.address)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: _started(tmp_path) or server.poll() is not None, timeout=60, message="a scheduled run")
        assert server.poll() is None, "".join(lines)
        # Its first line says where and why, as `run`'s does: the address once.
        assert any(f"schedule(s) on {dask_pair.address}, from --address;" in line for line in lines), lines[:3]
        killed, _ = dask_pair.kill_scheduler()
        wait_until(lambda: any(r.state == "Crashed" for r in _runs(project)), timeout=20, message="the run Crashed")
        crashed = time.monotonic() - killed
        # The next scheduled run finds the client without its scheduler and connects again,
        # retrying while the scheduler restarts.
        wait_until(lambda: any("; reconnecting" in line for line in lines), timeout=20, message="a reconnect")
        dask_pair.kill_worker()
        dask_pair.start()
        back = time.monotonic()
        (tmp_path / "release").touch()
        wait_until(lambda: any(r.state == "Completed" for r in _runs(project)), timeout=30,
                   message="a scheduled run completed after the scheduler came back")
        completed = time.monotonic() - back
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        reader.join(10)
    output = "".join(lines)
    assert server.returncode == 0, output
    assert "☠ Crashed napping" in output and _lost(dask_pair.address) in output
    assert f"reconnected to the Dask scheduler at {dask_pair.address}" in output
    assert "✓ Completed napping" in output
    assert "Traceback" not in output
    states = [r.state for r in _runs(project)]
    assert states[-1] == "Crashed" and "Completed" in states  # the oldest run is the one the kill crashed
    figures.add("kill → scheduled run Crashed", f"{crashed:.1f} s")
    figures.add("scheduler back → scheduled run Completed", f"{completed:.1f} s")
