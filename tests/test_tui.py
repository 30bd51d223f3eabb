"""The UI driven with Textual's Pilot, as a user presses keys, on real flows and a real LocalCluster."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from conftest import wait_until
from flows_tui.record import events as ev
from flows_tui.project.config import load_config
from flows_tui.record.store import Store
from flows_tui.tui.app import FlowsApp
from flows_tui.tui.flow_list import FlowList
from flows_tui.tui.log_view import LogView
from flows_tui.tui.param_form import ParamForm
from flows_tui.tui.screens import ConfirmScreen, HelpScreen, TextScreen
from flows_tui.tui.status_bar import StatusBar
from flows_tui.tui.task_tree import TaskTree

NUMBERS = """
    import os
    import time
    from flows_tui import flow, task, get_run_logger

    @task
    def square(x):
        return x * x

    @task
    def report(values):
        get_run_logger().info("total %d", sum(values))

    @flow
    def numbers(n: int = 5):
        report(square.map(range(n)))

    @task
    def nap(seconds: float):
        for _ in range(int(seconds / 0.05)):
            if os.path.exists(STOP):  # the test is done with this run
                return
            time.sleep(0.05)

    @flow
    def sleepy(seconds: float = 60.0):
        nap(seconds)
"""


async def wait_for(pilot, condition, timeout: float = 30.0, message: str = "the UI") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        await pilot.pause(0.05)


def make_project(tmp_path: Path) -> Path:
    (tmp_path / "flows").mkdir()
    stop = f"\n\nSTOP = {str(tmp_path / 'stop')!r}\n"  # after the flows, so their lines stay put
    (tmp_path / "flows" / "numbers.py").write_text(textwrap.dedent(NUMBERS) + stop)
    (tmp_path / "flows" / "broken.py").write_text("import not_a_module_anywhere\n")
    (tmp_path / "flows.toml").write_text('[project]\nflows_dir = "flows"\n'
                                         '[cluster]\nprocesses = false\nn_workers = 1\nthreads_per_worker = 2\n')
    return tmp_path


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def app_for(project: Path, **options) -> FlowsApp:
    config = load_config(None, cwd=project)
    store = Store.open(config.project.state_dir)
    bus = ev.EventBus()
    bus.set_journal(store.record)
    return FlowsApp(config, bus=bus, store=store, **options)


def flow_keys(app: FlowsApp) -> list[str]:
    table = app.query_one(FlowList)
    return [table.coordinate_to_cell_key((row, 0)).row_key.value for row in range(table.row_count)]


def select(app: FlowsApp, key: str) -> None:
    table = app.query_one(FlowList)
    table.move_cursor(row=flow_keys(app).index(key))


def tree_labels(app: FlowsApp) -> list[str]:
    tree = app.query_one(TaskTree)
    labels = []

    def walk(node) -> None:
        labels.append(str(node.label))
        for child in node.children:
            walk(child)

    walk(tree.root)
    return labels


def toasts(app: FlowsApp) -> str:
    """The text of the notifications on screen."""
    from textual.widgets._toast import Toast

    return " ".join(str(toast.render()) for toast in app.screen.query(Toast))


async def test_flows_and_a_broken_file_are_listed_and_the_plan_is_shown_before_any_run(project):
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3, message="the flows")
        assert [key for key in flow_keys(app) if not key.startswith("error:")] == ["numbers", "sleepy"]
        select(app, "numbers")
        await pilot.pause()
        labels = tree_labels(app)
        assert "planned, not run yet" in labels[0]
        assert any("square  map" in label for label in labels) and any("report  ← square" in label for label in labels)


async def test_enter_on_a_broken_file_opens_its_traceback(project):
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3)
        select(app, next(key for key in flow_keys(app) if key.startswith("error:")))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen))
        assert "No module named 'not_a_module_anywhere'" in app.screen.body
        await pilot.press("escape")
        assert not isinstance(app.screen, TextScreen)


async def test_r_runs_the_selected_flow_and_the_tree_and_logs_follow_it(project):
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.cluster is not None and len(flow_keys(app)) == 3, message="the cluster")
        select(app, "numbers")
        await pilot.press("r")
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("numbers") == "Completed", message="the run to end")
        await pilot.pause(0.2)
        labels = tree_labels(app)
        assert "✓ Completed  numbers" in labels[0]
        assert any(label.startswith("✓ square  5/5  ✓ 5") for label in labels)
        assert any("total 30" in line for line in app.query_one(LogView).shown_lines())
        assert [s.flow for s in app.store.runs()] == ["numbers"]  # recorded, like `flows-tui run`


async def test_p_opens_a_form_from_the_signature_shows_errors_inline_and_runs_with_the_values(project):
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.cluster is not None and len(flow_keys(app)) == 3)
        select(app, "numbers")
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, ParamForm))
        form = app.screen
        field = form.query_one("#param-n")
        assert field.value == "5"
        field.value = "five"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "five" in str(form.query_one("#error-n").render()) or "integer" in str(form.query_one("#error-n").render())
        assert isinstance(app.screen, ParamForm)
        field.value = "3"
        await pilot.press("ctrl+s")
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("numbers") == "Completed", message="the run to end")
        await pilot.pause(0.2)
        assert any("total 5" in line for line in app.query_one(LogView).shown_lines())  # 0 + 1 + 4


async def test_c_cancels_the_run_in_progress(project):
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.cluster is not None and len(flow_keys(app)) == 3)
        select(app, "sleepy")
        await pilot.press("r")
        await wait_for(pilot, lambda: bool(app.engines), message="the run to start")
        await pilot.press("c")
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("sleepy") == "Cancelled", message="the cancel")
        (project / "stop").touch()  # the task itself goes on after a cancel: let it end


async def test_q_during_a_run_asks_before_quitting(project):
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.cluster is not None and len(flow_keys(app)) == 3)
        select(app, "sleepy")
        await pilot.press("r")
        await wait_for(pilot, lambda: bool(app.engines))
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        assert app.is_running and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        (project / "stop").touch()  # the task itself goes on after a cancel: let it end
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running, message="the app to exit")


async def test_slash_filters_the_flows_and_escape_clears_it(project):
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3)
        await pilot.press("slash", "s", "l", "e", "enter")
        assert flow_keys(app) == ["sleepy"]
        await pilot.press("slash", "escape")
        assert len(flow_keys(app)) == 3


async def test_question_mark_lists_every_key(project):
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        keys = {key for _, rows in app.screen.sections for key, _ in rows}
        assert {"r", "p", "c", "l", "/", "?", "q", "ctrl+p", "enter", "tab / shift+tab"} <= keys


async def test_tab_moves_between_the_panes(project):
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        seen = []
        for _ in range(4):
            seen.append(app.focused.id if app.focused.id else app.focused.parent.id)
            await pilot.press("tab")
        assert seen == ["flows", "runs", "tasks", "log-lines"]


async def test_a_past_run_opens_from_the_runs_history_with_its_tree_and_logs(project):
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.cluster is not None and len(flow_keys(app)) == 3)
        select(app, "numbers")
        await pilot.press("r")
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("numbers") == "Completed")
        select(app, "sleepy")  # the tree now shows sleepy's plan
        await pilot.pause()
        assert "planned" in tree_labels(app)[0]
        runs = app.query_one("#runs")
        await wait_for(pilot, lambda: runs.row_count == 1, message="the history")
        runs.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: "numbers" in tree_labels(app)[0] and "Completed" in tree_labels(app)[0])
        await wait_for(pilot, lambda: any("total 30" in line for line in app.query_one(LogView).shown_lines()))


async def test_j_k_g_and_G_move_in_the_flows_and_the_runs_panes_alike(project):
    import datetime as _dt

    from flows_tui.record.store import Store

    # Three runs recorded (as `flows-tui run` records them): the runs pane lists three rows.
    store, moment = Store.open(project / ".flows-tui"), _dt.datetime.now(_dt.timezone.utc)
    for number in range(3):
        started = moment + _dt.timedelta(seconds=number)
        store.record([ev.FlowRunStarted(f"run{number}", "numbers", {}, started),
                      ev.FlowStateChanged(f"run{number}", "Completed", started + _dt.timedelta(seconds=0.5))])
    store.close()
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        flows = app.query_one(FlowList)
        runs = app.query_one("#runs")
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3 and runs.row_count == 3, message="flows and runs")
        for pane in (flows, runs):
            pane.focus()
            moves = []
            for key in ("G", "g", "j", "j", "k"):
                await pilot.press(key)
                moves.append(pane.cursor_row)
            assert moves == [2, 0, 1, 2, 1], (pane.id, moves)


async def test_saving_a_flow_file_updates_the_list_and_a_broken_save_shows_its_error(project):
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3 and app.directory.watching,
                       message="the flows, and the watch on their folder in place")
        extra = project / "flows" / "extra.py"
        extra.write_text("from flows_tui import flow\n\n@flow\ndef brand_new():\n    return 1\n")
        await wait_for(pilot, lambda: "brand-new" in flow_keys(app), message="the new flow")
        extra.write_text("from flows_tui import flow\n\n@flow\ndef brand_new(:\n")
        await wait_for(pilot, lambda: f"error:{extra.resolve()}" in flow_keys(app), message="the error row")
        assert "brand-new" in flow_keys(app)  # its last good version stays runnable


async def test_the_command_palette_lists_actions_and_flows(project):
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3)
        from flows_tui.tui.app import FlowsCommands

        provider = FlowsCommands(app.screen)
        hits = [str(hit.text) async for hit in provider.search("run")]
        assert "run numbers" in hits and "Run the selected flow" in hits


async def test_at_80_columns_the_status_bar_shows_the_next_scheduled_run(project):
    with open(project / "flows.toml", "a") as config:
        config.write('[flows.numbers]\ninterval = "1h"\n')
    app = app_for(project)
    async with app.run_test(size=(80, 24)) as pilot:
        status = app.query_one(StatusBar)
        await wait_for(pilot, lambda: status.next_run is not None and "LocalCluster" in str(status.cluster), message="the cluster and the schedule's countdown")
        await pilot.pause()
        shown = str(status.render())[:78]  # what fits on the line, past the border
        assert "next: numbers in 59m" in shown or "next: numbers in 1h" in shown, shown
        # The flows pane has room for the name and its last state whole; its countdown shows from 100
        # columns (tests/test_tui_first_minutes.py).
        assert str(app.query_one(FlowList).cell("numbers", "next")).startswith("59m")


async def test_with_serve_running_on_the_project_the_ui_stands_by_then_takes_the_schedules_over(project):
    import os
    import signal
    import subprocess
    import sys

    pids = project / "fired-by"
    (project / "flows" / "beat.py").write_text(textwrap.dedent(f"""
        import os
        from flows_tui import flow

        @flow
        def beat():
            with open({str(pids)!r}, "a") as out:  # the process that fired this run
                out.write(f"{{os.getpid()}}\\n")
    """))
    with open(project / "flows.toml", "a") as config:
        config.write('[flows.beat]\ninterval = "1s"\n')

    def fired_by() -> list[int]:
        return [int(line) for line in pids.read_text().split()] if pids.exists() else []

    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    serve = subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "serve"], cwd=project, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: serve.pid in fired_by(), timeout=60, message="serve firing the schedule")
        app = app_for(project)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await wait_for(pilot, lambda: "standing by" in toasts(app), message="the UI saying it stands by")
            assert f"the schedules are fired by flows-tui serve (pid {serve.pid} on " in toasts(app)
            count = len(fired_by())
            await wait_for(pilot, lambda: len(fired_by()) >= count + 2, message="two more runs from serve")
            assert set(fired_by()) == {serve.pid}  # the UI fired none of them

            serve.kill()  # SIGKILL: the lock goes with the process
            serve.wait(timeout=30)
            await wait_for(pilot, lambda: os.getpid() in fired_by(), message="the UI firing the schedule")
            assert f"firing the schedules now: flows-tui serve (pid {serve.pid} on " in toasts(app)
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)


async def test_notifications_show_flows_toml_tables_as_written(project):
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3)
        config = project / "flows.toml"
        config.write_text(config.read_text().replace("threads_per_worker = 2", "threads_per_worker = 3"))
        await wait_for(pilot, lambda: "restart" in toasts(app), message="the notification that flows.toml was reloaded")
        shown = toasts(app)
        assert "restart flows-tui to apply [cluster]" in shown, shown
