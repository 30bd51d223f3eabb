"""SIGINT, SIGTERM and a closed terminal end `flows-tui run` at once, the run recorded Cancelled with why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import write_project
from flows_tui.record.store import Store

from .conftest import Session

ENDLESS = """
    import time
    from flows_tui import flow, task, get_run_logger

    @task
    def spin():
        while True:  # never returns: only the run's cancel ends it
            time.sleep(0.05)

    @flow
    def endless():
        get_run_logger().info("started")
        spin()
"""

REASONS = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}


def _last_run(project):
    store = Store.open(project / ".flows-tui", read_only_ok=True)
    return store.load_run(store.runs()[0].run_id)


@pytest.mark.parametrize("signum", list(REASONS), ids=lambda s: signal.Signals(s).name)
def test_a_signal_cancels_the_run_records_why_and_exits_at_once(tmp_path, signum):
    project = write_project(tmp_path, {"endless.py": ENDLESS})
    process = subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "run", "endless"], cwd=project,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "CI": "1", "NO_COLOR": "1"})
    try:
        for line in process.stdout:
            if "started" in line:
                break
        process.send_signal(signum)
        returncode = process.wait(10)  # it used to take seconds, or forever behind the endless task
    finally:
        process.kill()
    assert returncode == 128 + signum
    run = _last_run(project)
    assert run.state == "Cancelled" and run.message == REASONS[signum], (run.state, run.message)


def test_closing_the_terminal_cancels_the_run_as_terminal_closed(tmp_path):
    project = write_project(tmp_path, {"endless.py": ENDLESS})
    run = Session("run", "endless", cwd=project)
    try:
        run.expect(b"started", deadline=60)
        os.close(run.controller)  # the terminal (an SSH session, a tmux pane) goes away: SIGHUP
        run.process.wait(10)
    finally:
        run.kill()
    assert run.process.returncode == 128 + signal.SIGHUP
    recorded = _last_run(project)
    assert recorded.state == "Cancelled" and recorded.message == "terminal closed (SIGHUP)"


def test_the_ui_on_sigterm_cancels_its_run_and_gives_the_terminal_back(tmp_path):
    project = write_project(tmp_path, {"endless.py": ENDLESS})
    ui = Session(cwd=project, columns=120, rows=40)
    try:
        ui.expect(b"cluster: LocalCluster", deadline=60)
        ui.send("r")
        ui.expect(b"flow: started", deadline=30)
        before = len(ui.output)
        ui.process.send_signal(signal.SIGTERM)
        shown = ui.wait(deadline=30)
    finally:
        ui.kill()
    assert shown.returncode == 128 + signal.SIGTERM
    after = shown.output[before:]
    assert b"\x1b[?1049l" in after and b"\x1b[?1000l" in after  # the alternate screen left, the mouse let go
    run = _last_run(project)
    assert run.state == "Cancelled" and run.message == "terminated (SIGTERM)", (run.state, run.message)


def test_the_ui_on_a_closed_terminal_cancels_its_run_and_ends(tmp_path):
    project = write_project(tmp_path, {"endless.py": ENDLESS})
    ui = Session(cwd=project, columns=120, rows=40)
    try:
        ui.expect(b"cluster: LocalCluster", deadline=60)
        ui.send("r")
        ui.expect(b"flow: started", deadline=30)
        os.close(ui.controller)
        ui.process.wait(30)
    finally:
        ui.kill()
    assert ui.process.returncode == 128 + signal.SIGHUP
    run = _last_run(project)
    assert run.state == "Cancelled" and run.message == "terminal closed (SIGHUP)", (run.state, run.message)
