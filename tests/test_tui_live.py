"""The UI as a window onto the whole project: runs of other processes appear, change and end live."""

from __future__ import annotations

import datetime as _dt
import os
import signal
import subprocess
import sys
from pathlib import Path

from flows_tui.record import events as ev
from flows_tui.record.store import Store
from flows_tui.tui.flow_list import FlowList
from flows_tui.tui.run_history import RunHistory
from flows_tui.tui.task_tree import TaskTree
from test_tui import app_for, make_project, tree_labels, wait_for  # noqa: F401  (project layout shared)


def run_elsewhere(project: Path, *args: str) -> subprocess.Popen:
    """`flows-tui run ...` in a process of its own, in its own session (so it can be killed whole)."""
    environment = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    return subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "run", *args], cwd=project, env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def listed(app) -> dict[str, str]:
    """Run id → state word, as the runs pane shows them, top to bottom."""
    table = app.query_one(RunHistory)
    keys = [table.coordinate_to_cell_key((row, 0)).row_key.value for row in range(table.row_count)]
    return {key: str(table.cell(key, "state")) for key in keys}


async def open_from_the_runs_pane(pilot, app, run_id: str) -> None:
    """As a user opens a run: the runs pane focused, its cursor on the run, enter."""
    runs = app.query_one(RunHistory)
    runs.focus()
    runs.move_cursor(row=list(listed(app)).index(run_id))
    await pilot.press("enter")


def last_state(app, flow: str) -> str:
    flows = app.query_one(FlowList)
    return str(flows.cell(flow, "last")) if flows._has_row(flow) else ""


async def test_a_run_of_another_process_appears_updates_opens_live_and_ends(tmp_path):
    project = make_project(tmp_path)
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: last_state(app, "sleepy") == "" and app.query_one(FlowList).row_count == 3)
        other = run_elsewhere(project, "sleepy")
        try:
            await wait_for(pilot, lambda: any("Running" in state for state in listed(app).values()), timeout=60,
                           message="the other process's run listed Running")
            await wait_for(pilot, lambda: "Running" in last_state(app, "sleepy"), message="the flow shown Running")
            runs = app.query_one(RunHistory)
            runs.focus()
            runs.move_cursor(row=0)
            await pilot.press("enter")
            await wait_for(pilot, lambda: any("nap" in label for label in tree_labels(app)),
                           message="its task tree, opened while it runs")
            header = app.query_one("#log-header")
            await wait_for(pilot, lambda: "following" in str(header.render()), message="its logs followed")
            (project / "stop").write_text("")
            assert other.wait(60) == 0
            await wait_for(pilot, lambda: all("Completed" in state for state in listed(app).values()),
                           message="the run listed Completed")
            await wait_for(pilot, lambda: "Completed" in str(app.query_one(TaskTree).root.label),
                           message="the opened tree ended Completed")
            # Nothing more to follow: the logs pane says the run ended (it said "following" for good).
            await wait_for(pilot, lambda: "run ended Completed" in str(header.render()),
                           message="the logs pane's header saying the run ended")
            assert "following" not in str(header.render())
            assert "Completed" in last_state(app, "sleepy")
        finally:
            if other.poll() is None:
                os.killpg(other.pid, signal.SIGKILL)


async def test_the_owner_killed_while_watched_is_shown_crashed(tmp_path):
    project = make_project(tmp_path)
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        other = run_elsewhere(project, "sleepy")
        try:
            await wait_for(pilot, lambda: any("Running" in state for state in listed(app).values()), timeout=60,
                           message="the other process's run listed Running")
            os.killpg(other.pid, signal.SIGKILL)
            other.wait(10)
            await wait_for(pilot, lambda: all("Crashed" in state for state in listed(app).values()), timeout=10,
                           message="the run listed Crashed")
            await wait_for(pilot, lambda: "Crashed" in last_state(app, "sleepy"), message="the flow's last state")
        finally:
            if other.poll() is None:
                os.killpg(other.pid, signal.SIGKILL)


async def test_new_runs_go_on_top_without_moving_the_cursor_and_g_goes_there(tmp_path):
    project = make_project(tmp_path)
    app = app_for(project, connect_cluster=False)
    other = Store.open(project / ".flows-tui")
    other._writer_name = "elsewhere:1"  # its commits reach the UI as another process's would
    started = _dt.datetime.now(_dt.timezone.utc)

    def start(run_id: str, seconds: int) -> None:
        other.record([ev.FlowRunStarted(run_id, "numbers", {}, started + _dt.timedelta(seconds=seconds))])

    async with app.run_test(size=(120, 40)) as pilot:
        for number in range(3):
            start(f"run{number}", number)
        runs = app.query_one(RunHistory)
        await wait_for(pilot, lambda: list(listed(app)) == ["run2", "run1", "run0"], message="three runs")
        runs.focus()
        runs.move_cursor(row=1)
        start("run3", 3)
        start("run4", 4)
        await wait_for(pilot, lambda: list(listed(app))[:2] == ["run4", "run3"], message="new runs on top")
        assert runs.selected_run() == "run1"
        assert "2 new" in str(runs.border_subtitle)
        await pilot.press("g")
        assert runs.selected_run() == "run4" and not runs.border_subtitle


async def test_enter_on_a_failed_runs_root_row_opens_why_it_failed(tmp_path):
    from flows_tui.tui.screens import TextScreen
    from test_tui_snapshots import RUN, run_events

    from test_tui import select

    app = app_for(make_project(tmp_path), connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(FlowList).row_count == 3)
        select(app, "numbers")  # as when `r` starts it: its flow is the one highlighted
        app._follow_run(RUN, "numbers")
        app.bus.publish_many(run_events(failed=True))
        tree = app.query_one(TaskTree)
        await wait_for(pilot, lambda: "Failed" in str(tree.root.label), message="the failed run")
        tree.focus()
        tree.move_cursor(tree.root)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), message="the run's traceback")
        assert "ended Failed" in app.screen.body and "ValueError: no square for 4" in app.screen.body
        await pilot.press("escape")
        assert tree.root.is_expanded


async def test_the_logs_pane_shows_the_run_the_tasks_pane_shows_named_by_name(tmp_path):
    from flows_tui.tui.log_view import LogView
    from test_tui import select
    from test_tui_snapshots import RUN, run_events

    app = app_for(make_project(tmp_path), connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(FlowList).row_count == 3)
        select(app, "numbers")
        await pilot.pause()  # its plan shown first, as when a user picks the flow
        app._follow_run(RUN, "numbers")
        app.bus.publish_many(run_events(failed=True))
        logs, tree = app.query_one(LogView), app.query_one(TaskTree)
        await wait_for(pilot, lambda: "Failed" in str(tree.root.label), message="the failed run")
        assert logs.run_id == RUN and f"numbers · {RUN}" in str(logs.query_one("#log-header").render())
        tree.focus()
        group = next(node for node in tree.root.children if node.data == ("group", "square"))
        group.expand()
        await pilot.pause()
        tree.move_cursor(next(node for node in group.children if node.data == ("task_run", "sq4")))
        await wait_for(pilot, lambda: "task square-4" in str(logs.query_one("#log-header").render()),
                       message="the task run named in the logs header")
        select(app, "sleepy")  # another flow: its plan in the tasks pane, and no run's lines in the logs
        await wait_for(pilot, lambda: "planned" in tree_labels(app)[0])
        assert logs.run_id is None and not logs.shown_lines()
        select(app, "numbers")  # back: its run in both panes
        await wait_for(pilot, lambda: logs.run_id == RUN and logs.shown_lines(), message="the run's lines again")


async def test_a_long_watch_keeps_only_the_recent_ended_runs_in_memory_and_an_old_one_opens_from_the_store(tmp_path):
    from flows_tui.tui.bridge import KEPT_ENDED_RUNS

    project = make_project(tmp_path)
    app = app_for(project, connect_cluster=False)
    other = Store.open(project / ".flows-tui")
    other._writer_name = "elsewhere:1"  # its commits reach the UI as another process's would
    started = _dt.datetime.now(_dt.timezone.utc)
    count = KEPT_ENDED_RUNS + 15
    async with app.run_test(size=(120, 40)) as pilot:
        for number in range(count):
            moment = started + _dt.timedelta(seconds=number)
            other.record([ev.FlowRunStarted(f"run{number:02d}", "numbers", {}, moment),
                          ev.FlowStateChanged(f"run{number:02d}", "Completed", moment + _dt.timedelta(seconds=0.5))])
        await wait_for(pilot, lambda: "Completed" in listed(app).get(f"run{count - 1:02d}", ""), timeout=60,
                       message="the last run listed Completed")
        with app.bridge.lock:
            kept = set(app.bridge.model.runs)
        assert len(kept) <= KEPT_ENDED_RUNS and f"run{count - 1:02d}" in kept and "run00" not in kept
        assert len(listed(app)) == count  # the runs pane still lists every one
        await open_from_the_runs_pane(pilot, app, "run00")
        root = app.query_one(TaskTree).root
        await wait_for(pilot, lambda: app.shown_run == "run00" and "run00" in str(root.label), message="the dropped run")
        assert "Completed" in str(root.label)  # read from the store


async def test_a_run_opened_while_the_flows_still_load_stays_when_they_arrive(tmp_path):
    # Opened from the runs pane in the first seconds, as a user checking last night's failure
    # does: the flows arriving (their first highlight) must not put a plan in its place.
    project = make_project(tmp_path)
    (project / "flows" / "slow_import.py").write_text(
        "import time\ntime.sleep(1.5)  # a heavy import\nfrom flows_tui import flow\n\n@flow\ndef slow():\n    pass\n")
    Store.open(project / ".flows-tui").record([
        ev.FlowRunStarted("lastnight", "numbers", {}, _dt.datetime.now(_dt.timezone.utc)),
        ev.FlowStateChanged("lastnight", "Failed", _dt.datetime.now(_dt.timezone.utc), message="boom")])
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "lastnight" in listed(app), message="the stored run listed")
        assert not app.loaded.is_set(), "the flows loaded before the run could be opened: the test proves nothing"
        await open_from_the_runs_pane(pilot, app, "lastnight")
        root = app.query_one(TaskTree).root
        await wait_for(pilot, lambda: app.shown_run == "lastnight" and "lastnight" in str(root.label), message="the run")
        await wait_for(pilot, lambda: app.loaded.is_set() and "slow" in app.directory.flows, message="the flows")
        await pilot.pause(0.3)
        assert app.shown_run == "lastnight" and "lastnight" in str(root.label), str(root.label)
        flows = app.query_one(FlowList)
        flows.focus()
        await pilot.press("j")  # the user moves in the flows pane: that flow's plan or run now
        await wait_for(pilot, lambda: app.shown_run != "lastnight", message="the flows pane to take over")


async def test_the_tasks_panes_subtitle_names_the_file_of_the_flow_on_screen_plan_or_run(tmp_path):
    from test_tui import select
    from test_tui_snapshots import RUN, run_events

    project = make_project(tmp_path)
    (project / "flows" / "other.py").write_text(
        "from flows_tui import flow\n\n\n@flow\ndef other():\n    return 1\n")
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(FlowList).row_count == 4, message="the flows")
        tree = app.query_one(TaskTree)
        select(app, "other")
        await wait_for(pilot, lambda: "other  planned" in tree_labels(app)[0], message="other's plan")
        assert str(tree.border_subtitle) == "other.py"
        select(app, "numbers")
        await wait_for(pilot, lambda: "numbers  planned" in tree_labels(app)[0], message="numbers' plan")
        app._follow_run(RUN, "numbers")
        app.bus.publish_many(run_events(failed=True))
        await wait_for(pilot, lambda: tree.flow_run is not None and tree.flow_run.run_id == RUN, message="the run")
        assert str(tree.border_subtitle) == "numbers.py"
        select(app, "other")
        await wait_for(pilot, lambda: "other  planned" in tree_labels(app)[0], message="other's plan again")
        assert str(tree.border_subtitle) == "other.py"
        select(app, "numbers")  # back on the flow of the run: the run, and its file (it said other.py)
        await wait_for(pilot, lambda: tree.flow_run is not None and tree.flow_run.run_id == RUN, message="the run again")
        assert str(tree.border_subtitle) == "numbers.py"


async def test_a_flow_whose_last_run_was_recorded_before_the_ui_opened_shows_that_run_not_its_plan(tmp_path):
    # `flows-tui run numbers` (or serve, or an earlier UI) recorded a run; the UI opened after it showed
    # ✗ Failed in the flows pane and "planned, not run yet" in the tasks pane for the same flow.
    from test_tui import select
    from test_tui_snapshots import RUN, run_events

    project = make_project(tmp_path)
    Store.open(project / ".flows-tui").record(run_events(failed=True))
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "Failed" in last_state(app, "numbers"), message="numbers' last state")
        tree = app.query_one(TaskTree)
        select(app, "numbers")
        await wait_for(pilot, lambda: tree.flow_run is not None and tree.flow_run.run_id == RUN,
                       message="numbers' last run in the tasks pane")
        assert any("report-0" in label for label in tree_labels(app)), tree_labels(app)  # its tasks, not a plan
        await wait_for(pilot, lambda: "run ended Failed" in str(app.query_one("#log-header").render()),
                       message="its logs named as those of an ended run, not followed")
        select(app, "sleepy")  # a flow never run: its plan
        await wait_for(pilot, lambda: "sleepy  planned" in tree_labels(app)[0], message="sleepy's plan")
        select(app, "numbers")
        await wait_for(pilot, lambda: tree.flow_run is not None and tree.flow_run.run_id == RUN,
                       message="numbers' last run again")
