"""Acting across processes through the store: cancel a run another flows-tui process owns; watch runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from conftest import cli, wait_until
from flows_tui.record.store import Store
from flows_tui.tui.run_history import RunHistory
from test_tui import app_for, make_project, wait_for
from test_tui_live import listed, run_elsewhere


def running_run(store: Store) -> str:
    """The id of the one run in flight once its task is running."""
    def found():
        runs = [summary for summary in store.runs() if summary.state == "Running"]
        return runs and any(t.state == "Running" for t in store.load_run(runs[0].run_id).task_runs.values()) \
            and runs[0].run_id

    return wait_until(found, timeout=60, message="the other process's run in progress")


def test_cancel_asks_the_owner_which_records_cancelled_with_who_asked(tmp_path):
    project = make_project(tmp_path)
    owner = run_elsewhere(project, "sleepy")
    try:
        store = Store.open(project / ".flows-tui")
        run_id = running_run(store)
        asked = time.monotonic()
        result = cli("cancel", run_id[:6], cwd=project)
        took = time.monotonic() - asked
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"run {run_id} cancelled by flows-tui run sleepy (pid {owner.pid}" in result.stdout
        (project / "stop").write_text("")  # the task's thread, which a cancel cannot stop, returns
        assert owner.wait(30) == 1  # the owner's own exit code for a cancelled run
        run = store.load_run(run_id)
        assert run.state == "Cancelled"
        assert run.message.startswith(f"cancelled from flows-tui pid ") and socket.gethostname() in run.message
        print(f"cancel → Cancelled in the owner, seen by `flows-tui cancel`: {took:.2f}s (with the command's start)")
    finally:
        if owner.poll() is None:
            os.killpg(owner.pid, signal.SIGKILL)


def test_cancel_of_a_run_that_ended_or_whose_process_is_gone_says_so(tmp_path):
    project = make_project(tmp_path)
    (project / "stop").write_text("")  # sleepy returns at once
    assert cli("run", "sleepy", cwd=project).returncode == 0
    ended = Store.open(project / ".flows-tui").runs()[0].run_id
    result = cli("cancel", ended, cwd=project)
    assert result.returncode == 1 and f"run {ended} ended already: Completed" in result.stdout
    (project / "stop").unlink()
    owner = run_elsewhere(project, "sleepy")
    try:
        run_id = running_run(Store.open(project / ".flows-tui"))
        os.killpg(owner.pid, signal.SIGKILL)
        owner.wait(10)
        result = cli("cancel", run_id, cwd=project)
        assert result.returncode == 1 and "is gone; the run is recorded Crashed" in result.stdout
        assert f"pid {owner.pid}" in result.stdout
    finally:
        if owner.poll() is None:
            os.killpg(owner.pid, signal.SIGKILL)


async def test_c_in_the_ui_cancels_the_open_run_of_another_process(tmp_path):
    project = make_project(tmp_path)
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        owner = run_elsewhere(project, "sleepy")
        try:
            await wait_for(pilot, lambda: any("Running" in state for state in listed(app).values()), timeout=60,
                           message="the other process's run listed Running")
            runs = app.query_one(RunHistory)
            runs.focus()
            runs.move_cursor(row=0)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.shown_run == runs.selected_run(), message="the run opened")
            await pilot.press("c")
            await wait_for(pilot, lambda: all("Cancelled" in state for state in listed(app).values()), timeout=10,
                           message="the run listed Cancelled")
            (project / "stop").write_text("")
            assert owner.wait(30) == 1
        finally:
            if owner.poll() is None:
                os.killpg(owner.pid, signal.SIGKILL)


def test_runs_watch_prints_runs_of_other_processes_as_they_start_and_end(tmp_path):
    project = make_project(tmp_path)
    (project / "stop").write_text("")
    environment = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    assert cli("run", "sleepy", cwd=project).returncode == 0  # the store exists, with one run
    watch = subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "runs", "--watch", "--json"], cwd=project,
                             env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = json.loads(watch.stdout.readline())  # the run recorded before
        assert first["state"] == "Completed"
        assert cli("run", "sleepy", cwd=project).returncode == 0
        started, ended = json.loads(watch.stdout.readline()), json.loads(watch.stdout.readline())
        assert started["run_id"] == ended["run_id"] != first["run_id"]
        assert started["ended"] is None and ended["state"] == "Completed" and ended["ended"] is not None
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(10)


def test_runs_watch_in_a_folder_with_no_runs_yet_waits_for_the_first(tmp_path):
    project = make_project(tmp_path)
    (project / "stop").write_text("")
    environment = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    watch = subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "runs", "--watch", "--json"], cwd=project,
                             env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stderr.readline().startswith("no runs recorded yet in .flows-tui")
        assert watch.poll() is None  # still watching: the history is empty, not missing
        assert cli("run", "sleepy", cwd=project).returncode == 0  # creates the store
        started, ended = json.loads(watch.stdout.readline()), json.loads(watch.stdout.readline())
        assert started["run_id"] == ended["run_id"] and started["flow"] == "sleepy"
        assert started["ended"] is None and ended["state"] == "Completed"
    finally:
        watch.send_signal(signal.SIGINT)
        assert watch.wait(10) == 0
