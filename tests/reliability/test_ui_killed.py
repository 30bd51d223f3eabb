"""flows-tui killed with SIGKILL mid-run: nothing it showed is lost, the run is Crashed after restart.

The UI runs in a process of its own, built as `flows-tui` builds it (the store as the bus's
journal), driven headless by Textual's Pilot; while a run is in progress it writes down
what its panes show (log lines, task rows) every few milliseconds. The test kills it with
SIGKILL, then starts the UI again on the same project, as a user would, and opens the run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flows_tui.record.store import Store
from flows_tui.tui.log_view import LogView
from flows_tui.tui.run_history import RunHistory

from test_tui import app_for, flow_keys, tree_labels, wait_for

from .conftest import sized

TICKS = sized(400, 150)  # log lines shown before the kill

SLOW = """
    import time
    from flows_tui import flow, task, get_run_logger

    @task
    def warm_up() -> int:
        return 1

    @task
    def tick(index: int, ready: int) -> None:
        log = get_run_logger()
        for n in range(3000):
            log.info("tick %d line %d", index, n)
            time.sleep(0.01)

    @flow
    def slow():
        ready = warm_up()
        tick.map(range(3), ready=ready)
"""

# The UI process: what `flows-tui` runs (recording(bus, config) + FlowsApp), headless.
CHILD = """
    import asyncio, json, os, sys
    from flows_tui.record import events as ev
    from flows_tui.project.config import load_config
    from flows_tui.launch.runner import recording
    from flows_tui.tui.app import FlowsApp
    from flows_tui.tui.flow_list import FlowList
    from flows_tui.tui.log_view import LogView
    from flows_tui.tui.task_tree import TaskTree

    shown_path = sys.argv[1]

    def labels(app):
        out = []
        def walk(node):
            out.append(str(node.label))
            for child in node.children:
                walk(child)
        walk(app.query_one(TaskTree).root)
        return out

    async def main():
        config = load_config(None)
        bus = ev.EventBus()
        with recording(bus, config) as store:
            app = FlowsApp(config, bus=bus, store=store)
            async with app.run_test(size=(120, 40)) as pilot:
                table = app.query_one(FlowList)
                while app.cluster is None or table.row_count == 0:
                    await pilot.pause(0.05)
                await pilot.press("r")
                while True:
                    await pilot.pause(0.02)
                    shown = {"run_id": app.shown_run, "lines": app.query_one(LogView).shown_lines(),
                             "tree": labels(app)}
                    with open(shown_path + ".tmp", "w") as out:
                        json.dump(shown, out)
                    os.replace(shown_path + ".tmp", shown_path)

    asyncio.run(main())
"""

TICK = re.compile(r"tick \d+ line \d+")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "slow.py").write_text(textwrap.dedent(SLOW))
    (tmp_path / "flows.toml").write_text('[project]\nflows_dir = "flows"\n'
                                         '[cluster]\nprocesses = false\nn_workers = 1\nthreads_per_worker = 4\n')
    (tmp_path / "ui.py").write_text(textwrap.dedent(CHILD))
    return tmp_path


def read_shown(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@pytest.mark.timeout(120)
async def test_the_ui_killed_mid_run_loses_nothing_it_showed_and_the_run_is_crashed_after_restart(project, figures):
    shown_path = project / "shown.json"
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    ui = subprocess.Popen([sys.executable, str(project / "ui.py"), str(shown_path)], cwd=project, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            shown = read_shown(shown_path)
            if shown and sum(bool(TICK.search(line)) for line in shown["lines"]) >= TICKS:
                break
            assert ui.poll() is None, ui.stderr.read().decode()
            assert time.monotonic() < deadline, "the UI never showed the run's lines"
            time.sleep(0.02)
        ui.send_signal(signal.SIGKILL)
        ui.wait(10)
    finally:
        ui.kill()
        ui.stderr.close()
    shown = read_shown(shown_path)  # the last thing the UI showed before it died
    shown_ticks = [TICK.search(line).group(0) for line in shown["lines"] if TICK.search(line)]
    shown_done = [label for label in shown["tree"] if "warm_up" in label and "✓" in label]
    assert shown_done, f"the UI showed warm_up Completed before the kill: {shown['tree']}"

    # Start the UI again on the same project, as the user would.
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        history = app.query_one(RunHistory)
        await wait_for(pilot, lambda: history.row_count == 1, message="the run in the history")
        # The flows pane fills in the background; once it has, its highlighted flow no longer
        # replaces what the tasks pane shows (a run opened before then gave way to the plan).
        await wait_for(pilot, lambda: "slow" in flow_keys(app), message="the flows listed")
        [summary] = app.store.runs()
        assert summary.run_id == shown["run_id"] and summary.state == "Crashed"
        assert "Crashed" in str(history.get_row_at(0))
        history.focus()
        await pilot.press("enter")
        log = app.query_one(LogView)
        await wait_for(pilot, lambda: app.shown_run == summary.run_id and any(
            TICK.search(line) for line in log.shown_lines()), message="the run's lines after the restart")
        await pilot.pause(0.2)
        again = {TICK.search(line).group(0) for line in log.shown_lines() if TICK.search(line)}
        missing = [line for line in shown_ticks if line not in again]
        assert not missing, f"{len(missing)} lines shown before the kill are gone: {missing[:5]}"
        labels = tree_labels(app)
        assert "Crashed" in labels[0]
        assert any("warm_up" in label and "✓" in label for label in labels)

    reopened = Store.open(project / ".flows-tui")
    stored = reopened.load_run(summary.run_id)
    stored_lines = len(reopened.logs(summary.run_id))
    reopened.close()
    ticks = [t for t in stored.task_runs.values() if t.task == "tick"]
    assert ticks and all(t.state == "Crashed" for t in ticks)
    figures.add("killed", f"the UI process (SIGKILL) mid-run, after it had shown {len(shown_ticks)} log lines")
    figures.add("after restart", f"run Crashed; {len(shown_ticks)} of {len(shown_ticks)} lines shown before "
                                 f"are shown again ({stored_lines} lines stored); warm_up still Completed, "
                                 f"{len(ticks)} running tasks Crashed")
