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


# An SSH session that stalls, then drops: the UI's writes fill the terminal (nobody reads it),
# its writer blocks, and the hang-up makes that write fail. The UI must still end at once
# (Textual's writer thread died on the error, and the next frames waited for ever on its queue).
STALLED = "?\x1bz" * 40  # whole-screen redraws, none of them read


@pytest.mark.parametrize("before_close", ["", STALLED], ids=["closed", "stalled-then-closed"])
def test_the_ui_on_a_closed_terminal_cancels_its_run_and_ends(tmp_path, before_close):
    project = write_project(tmp_path, {"endless.py": ENDLESS})
    ui = Session(cwd=project, columns=200 if before_close else 120, rows=60 if before_close else 40)
    try:
        ui.expect(b"cluster: LocalCluster", deadline=60)
        ui.send("r")
        ui.expect(b"flow: started", deadline=30)
        for key in before_close:
            ui.send(key)
        os.close(ui.controller)
        ui.process.wait(30)
    finally:
        ui.kill()
    assert ui.process.returncode == 128 + signal.SIGHUP
    run = _last_run(project)
    assert run.state == "Cancelled" and run.message == "terminal closed (SIGHUP)", (run.state, run.message)


def test_the_uis_terminal_output_outlives_a_hang_up():
    # Textual's own writer thread on a real pseudo-terminal that hangs up: with the terminal's
    # file as it is, the first failed write ends the thread and the 31st frame waits for ever;
    # through the UI's TerminalOutput every frame and the stop return.
    import pty
    import threading

    from textual.drivers._writer_thread import MAX_QUEUED_WRITES, WriterThread

    from flows_tui.tui.driver import TerminalOutput

    controller, terminal = pty.openpty()
    output = TerminalOutput(os.fdopen(terminal, "w", encoding="utf-8"))
    writer = WriterThread(output)
    writer.start()
    writer.write("before the hang-up\n")
    os.close(controller)  # the terminal hangs up: writes to it fail with EIO

    def frames():
        for n in range(3 * MAX_QUEUED_WRITES):
            writer.write(f"frame {n}\n" * 100)
        writer.stop()

    drawing = threading.Thread(target=frames, daemon=True)
    drawing.start()
    drawing.join(10)
    assert not drawing.is_alive(), "a frame or the stop waited on the writer thread"
    assert output.gone and not writer.is_alive()


def test_q_while_another_process_holds_the_store_says_why_it_waits_and_ctrl_c_leaves_at_once(tmp_path):
    # The UI opens its store after its first frame, and marks Crashed the runs of flows-tui processes
    # that are gone: a write. Another process writing to the store (a big prune, a stalled writer)
    # holds it; q gave the terminal back and then waited up to a minute in silence. Now it says why
    # within a second or two, and Ctrl-C leaves at once.
    import datetime
    import sqlite3

    from flows_tui.record import events as ev
    from flows_tui.record.store import store_path

    project = write_project(tmp_path, {"endless.py": ENDLESS})
    store = Store.open(project / ".flows-tui")
    now = datetime.datetime.now(datetime.timezone.utc)
    store.record([ev.FlowRunStarted("deadbeef0001", "endless", {}, now), ev.FlowStateChanged("deadbeef0001", "Running", now)])
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = sqlite3.connect(store_path(project / ".flows-tui"), isolation_level=None)
    holder.execute("UPDATE runs SET owner_pid = ?", (int(gone.stdout),))  # a flows-tui that was killed
    holder.execute("BEGIN EXCLUSIVE")  # and a writer mid-transaction
    ui = Session(cwd=project, columns=120, rows=40)
    try:
        ui.expect(b"planned, not run yet", deadline=60)  # the flow's plan: the start-up, store and all, began before
        ui.send("q")
        ui.expect(b"waiting for the run store to open", deadline=10)
        ui.send("\x03")  # Ctrl-C, the terminal in its normal mode again: SIGINT
        shown = ui.wait(deadline=5)
    finally:
        ui.kill()
        holder.rollback()
        holder.close()
    assert b"left without waiting" in shown.output
    assert b"Traceback" not in shown.output
