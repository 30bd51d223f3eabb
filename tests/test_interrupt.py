"""Ctrl-C (SIGINT to the terminal's process group) ends every command at any moment, and `q` the UI.

While connecting: a real socket that accepts the connection and never answers holds the
connect as long as `connect_timeout` (30 s here); the signal must end it at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from conftest import PROCESS_CLUSTER_TOML, TINY_FLOW, wait_until, write_project
from flows_tui.record.store import Store

FLOWS = {"tiny.py": TINY_FLOW, "endless.py": """
    import time
    from flows_tui import flow, task, get_run_logger

    @task
    def spin():
        while True:
            time.sleep(0.05)

    @flow
    def endless():
        get_run_logger().info("started")
        spin()
"""}

SLOW_CONNECT = """
[project]
flows_dir = "flows"
[cluster]
address = "{address}"
connect_timeout = 30
[flows.tiny]
interval = "1h"
"""


@pytest.fixture
def silent():
    """A listening socket that never answers; `connected` is set once someone connects to it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    connected = threading.Event()
    held = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)
            connected.set()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{sock.getsockname()[1]}", connected
    finally:
        sock.close()
        for conn in held:
            conn.close()


def _start(args: list[str], project) -> subprocess.Popen:
    """`flows-tui ARGS` in a process group of its own, as a shell runs a foreground job."""
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    return subprocess.Popen([sys.executable, "-m", "flows_tui.cli", *args], cwd=project, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**env, "CI": "1", "NO_COLOR": "1"})


def _ctrl_c(process: subprocess.Popen) -> tuple[int, str, str]:
    os.killpg(process.pid, signal.SIGINT)
    try:
        out, err = process.communicate(timeout=10)  # a connect would hold it 30 s
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode, out, err


@pytest.mark.parametrize("args, code, said", [
    (["run", "tiny"], 130, "interrupted"),
    (["run", "tiny", "--watch"], 130, "interrupted"),
    (["serve"], 0, "stopped before the cluster was ready"),
], ids=["run", "run --watch", "serve"])
def test_ctrl_c_while_connecting_ends_the_command_at_once(tmp_path, silent, args, code, said):
    address, connected = silent
    project = write_project(tmp_path, FLOWS, SLOW_CONNECT.format(address=address))
    process = _start(args, project)
    try:
        assert connected.wait(60), "the command to connect"
    except BaseException:
        process.kill()
        raise
    returncode, out, err = _ctrl_c(process)
    assert returncode == code, (out, err)
    assert said in out + err
    assert "Traceback" not in err and "Error" not in err


def test_ctrl_c_to_the_process_group_mid_run_cancels_it_and_the_workers_stay_quiet(tmp_path):
    # The embedded cluster's worker processes are in the group too: they used to die of the
    # signal with a traceback each while the run was being cancelled.
    project = write_project(tmp_path, FLOWS, PROCESS_CLUSTER_TOML.replace("n_workers = 2", "n_workers = 1"))
    process = _start(["run", "endless"], project)
    try:
        for line in process.stdout:
            if "started" in line:
                break
    except BaseException:
        process.kill()
        raise
    returncode, out, err = _ctrl_c(process)
    assert returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    store = Store.open(project / ".flows-tui", read_only_ok=True)
    run = store.load_run(store.runs()[0].run_id)
    assert (run.state, run.message) == ("Cancelled", "interrupted (Ctrl-C)")


def test_ctrl_c_while_the_worker_processes_are_still_starting_says_one_line(tmp_path):
    # The signal goes out the moment a worker process's Python takes Ctrl-C as KeyboardInterrupt: it
    # is then still importing Dask, before anything of ours runs in it. Each such worker used to
    # die of it with a traceback.
    project = write_project(tmp_path, FLOWS, PROCESS_CLUSTER_TOML)
    process = _start(["run", "tiny"], project)
    try:
        wait_until(lambda: _a_worker_catching_sigint(process.pid), timeout=60, interval=0.005,
                   message="a worker process that handles SIGINT")
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    returncode, out, err = _ctrl_c(process)
    wait_until(lambda: not _group(process.pid), timeout=15, message="every process of the group to end")
    assert (returncode, err.strip()) == (130, "interrupted"), err


async def test_q_while_the_cluster_connects_quits_at_once(tmp_path, silent):
    from test_tui import app_for

    address, connected = silent
    project = write_project(tmp_path, FLOWS, SLOW_CONNECT.format(address=address))
    app = app_for(project, watch=False)
    async with app.run_test(size=(100, 30)) as pilot:
        assert await asyncio.to_thread(connected.wait, 60), "the UI to connect"
        await pilot.press("q")
        await pilot.pause()
    assert app.launcher.abandoned and app.launcher.cluster is None


PROFILE_PROCESSES = """
[project]
flows_dir = "flows"
[clusters.own]
class = "distributed.LocalCluster"
kwargs = { n_workers = 1, threads_per_worker = 1, processes = true, dashboard_address = ":0" }
[flows.endless]
cluster = "own"
"""


def test_sigterm_mid_run_closes_the_profiles_cluster_and_leaves_no_process_behind(tmp_path):
    project = write_project(tmp_path, FLOWS, PROFILE_PROCESSES)
    process = _start(["run", "endless"], project)
    try:
        for line in process.stdout:
            if "started" in line:
                break
        os.killpg(process.pid, signal.SIGTERM)  # as a batch system or `kill` ends a job: the whole group
        process.wait(15)
        wait_until(lambda: not _group(process.pid), timeout=15, message="every process of the group to end")
    finally:
        if _group(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + signal.SIGTERM
    store = Store.open(project / ".flows-tui", read_only_ok=True)
    run = store.load_run(store.runs()[0].run_id)
    assert (run.state, run.message) == ("Cancelled", "terminated (SIGTERM)")


def _a_worker_catching_sigint(pid: int) -> bool:
    """Whether a worker process of `pid` has Python's SIGINT handler installed (Linux: /proc)."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return False
    for child in children:
        try:
            if "--multiprocessing-fork" not in child.cmdline():
                continue
            with open(f"/proc/{child.pid}/status") as status:
                caught = next(line for line in status if line.startswith("SigCgt:")).split()[1]
        except (psutil.Error, OSError, StopIteration):
            continue
        if int(caught, 16) & (1 << (signal.SIGINT - 1)):
            return True
    return False


def _group(pgid: int) -> list[str]:
    """The live processes of process group `pgid` (zombies, already ended, are not counted)."""
    import psutil

    alive = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(str(proc.pid))
        except (ProcessLookupError, psutil.Error):
            pass
    return alive


def test_sigint_to_the_uis_process_group_mid_run_cancels_the_run_and_ends_the_ui(tmp_path):
    # Ctrl-C typed in the UI is a key; a SIGINT to the group (kill -INT, a supervisor) is a signal.
    from hostile.conftest import Session

    project = write_project(tmp_path, FLOWS)
    ui = Session(cwd=project, columns=120, rows=40)
    try:
        ui.expect(b"cluster: LocalCluster", deadline=60)
        ui.send("r")
        ui.expect(b"flow: started", deadline=30)
        os.killpg(ui.process.pid, signal.SIGINT)
        shown = ui.wait(deadline=15)  # it used to leave the screen, then wait for the endless run
    finally:
        ui.kill()
    assert shown.returncode == 130
    assert b"Traceback" not in shown.output
    store = Store.open(project / ".flows-tui", read_only_ok=True)
    run = store.load_run(store.runs()[0].run_id)
    assert (run.state, run.message) == ("Cancelled", "interrupted (Ctrl-C)")
