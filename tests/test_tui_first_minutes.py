"""The UI as a new user meets it: what it says when something is off, what the keys do at once."""

from __future__ import annotations

import re

import pytest

from flows_tui.tui.status_bar import StatusBar
from test_tui import app_for, flow_keys, make_project, toasts, wait_for


async def test_a_notifier_without_its_secret_is_named_once_and_shown_in_the_status_bar(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOWS_TUI_TEST_SLACK", raising=False)
    project = make_project(tmp_path)
    with (project / "flows.toml").open("a") as config:
        config.write('[notify.slack]\nwebhook_url = "${FLOWS_TUI_TEST_SLACK}"\n')
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await wait_for(pilot, lambda: "FLOWS_TUI_TEST_SLACK" in toasts(app), message="the warning")
        assert "the slack notifier is off" in toasts(app)
        status = str(app.query_one(StatusBar).render())
        assert "slack off: FLOWS_TUI_TEST_SLACK unset" in status


def _palette_entries(app) -> list[str]:
    from textual.command import CommandList

    options = app.screen.query_one(CommandList)
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


async def test_the_palette_lists_the_apps_commands_before_typing_and_run_name_runs_the_flow(tmp_path):
    from textual.command import CommandPalette

    from flows_tui.tui.flow_list import FlowList

    project = make_project(tmp_path)
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3, message="the flows")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), message="the palette")
        await wait_for(pilot, lambda: any("Run the selected flow" in entry for entry in _palette_entries(app)),
                       message="the app's commands with an empty query")
        assert any("run numbers" in entry for entry in _palette_entries(app))
        await pilot.press(*"run sleepy")
        await wait_for(pilot, lambda: _palette_entries(app) and "run sleepy" in _palette_entries(app)[0],
                       message="run sleepy first")
        (tmp_path / "stop").touch()  # the sleepy flow then ends at once
        await pilot.press("enter")
        await wait_for(pilot, lambda: flows.last_states.get("sleepy") == "Completed", message="the palette's run")


async def test_the_flows_filter_follows_each_key_shows_in_the_title_and_esc_in_the_pane_clears_it(tmp_path):
    from flows_tui.tui.flow_list import FlowList

    app = app_for(make_project(tmp_path), connect_cluster=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3, message="the flows")
        await pilot.press("slash", "s", "l")
        await wait_for(pilot, lambda: flow_keys(app) == ["sleepy"], message="the list to follow the keys (no enter)")
        await pilot.press("e")
        assert "/sle" in str(app.query_one("#flows").border_title)
        await pilot.press("enter")  # keeps the filter, back in the list
        assert app.query_one(FlowList).has_focus and flow_keys(app) == ["sleepy"]
        await pilot.press("escape")  # in the pane: clears it
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3, message="the filter cleared")
        assert "/" not in str(app.query_one("#flows").border_title).replace("flows · ", "")


async def test_ctrl_c_quits_and_during_a_run_a_second_ctrl_c_cancels_and_quits(tmp_path):
    from flows_tui.tui.screens import ConfirmScreen
    from test_tui import select

    project = make_project(tmp_path)
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: not app.is_running, message="ctrl+c to quit")

    app = app_for(project)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.cluster is not None and len(flow_keys(app)) == 3, message="the cluster")
        select(app, "sleepy")
        await pilot.press("r")
        await wait_for(pilot, lambda: bool(app.engines), message="the run")
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="the question")
        (project / "stop").touch()  # the task itself goes on after a cancel: let it end
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: not app.is_running, message="the second ctrl+c to quit")


async def test_help_scrolls_with_j_and_k_and_shows_two_columns_at_100(tmp_path):
    from textual.containers import VerticalScroll

    from flows_tui.tui.screens import HelpScreen

    app = app_for(make_project(tmp_path), connect_cluster=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), message="the help")
        await pilot.pause()
        text = app.export_screenshot().replace("&#160;", " ")  # the SVG of what is visible, no more
        for section in ("Everywhere", "Flows", "Runs", "Tasks", "Logs"):
            assert section in text, section  # every section visible at 100x30, no scrolling needed
        assert "Search as you type" in text and "Follow" in text
        assert "Wrap lines" in text and "ctrl+c" in text  # the last of each column: all of it fits at 100x30
        assert app.screen.query_one("#help", VerticalScroll).max_scroll_y == 0
    (tmp_path / "narrow").mkdir()
    app = app_for(make_project(tmp_path / "narrow"), connect_cluster=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), message="the help")
        view = app.screen.query_one("#help", VerticalScroll)
        await wait_for(pilot, lambda: view.max_scroll_y > 0, message="a help longer than the screen")
        await wait_for(pilot, lambda: "more below" in app.export_screenshot().replace("&#160;", " "),
                       message="the border saying there is more below")
        await pilot.press("j", "j", "j")
        await wait_for(pilot, lambda: view.scroll_y == 3, message="j to scroll down")
        await pilot.press("k")
        await wait_for(pilot, lambda: view.scroll_y == 2, message="k to scroll up")
        await pilot.press("G")
        await wait_for(pilot, lambda: view.scroll_y == view.max_scroll_y, message="G to the end")
        await wait_for(pilot, lambda: "the end" in app.export_screenshot().replace("&#160;", " "),
                       message="the border saying it is the end")


async def test_an_empty_folder_says_how_to_add_a_first_flow(tmp_path):
    from test_tui import app_for as _app_for

    (tmp_path / "flows").mkdir()
    (tmp_path / "flows.toml").write_text('[project]\nflows_dir = "flows"\n[cluster]\nprocesses = false\n')
    app = _app_for(tmp_path, connect_cluster=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "no flows here yet" in app.export_screenshot().replace("&#160;", " "),
                       message="the empty pane saying what to do")
        assert "flows-tui init" in app.export_screenshot().replace("&#160;", " ")


async def test_the_ui_opened_to_look_creates_nothing_and_shows_the_runs_of_a_process_that_creates_the_store(tmp_path):
    import datetime as dt

    from flows_tui.launch.runner import recording
    from flows_tui.project.config import load_config
    from flows_tui.record import events as ev
    from flows_tui.record.store import Store
    from flows_tui.tui.app import FlowsApp
    from test_tui_live import listed

    config = load_config(None, cwd=tmp_path)  # an empty folder: no flows.toml, no flows/
    bus = ev.EventBus()
    with recording(bus, config, unrecorded_ok=True, deferred=True) as store:
        app = FlowsApp(config, path=str(tmp_path), bus=bus, store=store, connect_cluster=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: "flows-tui init" in app.export_screenshot().replace("&#160;", " "),
                           message="the empty pane saying what to do")
            await wait_until_idle(pilot)
            assert list(tmp_path.iterdir()) == []

            other = Store.open(config.project.state_dir)  # `flows-tui run` in another terminal
            other._writer_name = "elsewhere:1"
            other.record([ev.FlowRunStarted("run1", "riders", {}, dt.datetime.now(dt.timezone.utc))])
            await wait_for(pilot, lambda: list(listed(app)) == ["run1"], message="the other process's run")
            other.close()


def test_f12_saves_the_screenshot_under_the_state_dir(tmp_path):
    import asyncio

    project = make_project(tmp_path)

    async def go() -> None:
        app = app_for(project, connect_cluster=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("f12")
            await wait_for(pilot, lambda: list((project / ".flows-tui" / "screenshots").glob("*.svg")),
                           message="the screenshot")

    asyncio.run(go())
    assert not list(project.glob("*.svg"))  # nothing in the project's own folder


async def test_with_8_colours_the_focused_pane_is_not_drawn_in_red(tmp_path, monkeypatch):
    from textual.color import Color

    from flows_tui.tui.app import FlowsApp
    from flows_tui.tui.flow_list import FlowList

    monkeypatch.setenv("TERM", "screen")
    monkeypatch.delenv("COLORTERM", raising=False)
    monkeypatch.setattr(FlowsApp, "is_headless", property(lambda app: False))  # as in a real terminal
    app = app_for(make_project(tmp_path), connect_cluster=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.has_class("few-colors")
        variables = app.get_css_variables()
        border = app.query_one(FlowList).styles.border_top[1]
        assert border == Color.parse(variables["primary"]) and border != Color.parse(variables["accent"])


async def test_a_batch_of_log_lines_from_several_workers_is_shown_in_time_order(tmp_path):
    import datetime as dt

    from flows_tui.record import events as ev
    from flows_tui.tui.log_view import Line, LogView

    app = app_for(make_project(tmp_path), connect_cluster=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.loaded.is_set() and len(flow_keys(app)) == 3, message="the flows")
        await pilot.pause()  # the selected flow's plan shown: the logs pane shows no run until told
        logs = app.query_one(LogView)
        logs.show_run("r1")
        start = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.timezone.utc)

        def line(seconds: float, task: str, text: str) -> Line:
            return Line("r1", task, task.split("-")[0], ev.LogLine(start + dt.timedelta(seconds=seconds), 20, text))

        # One worker's report (best-18) then another's (report-0), as a batch brings them.
        logs.add([line(2.0, "report-0", "the report"), line(1.0, "best-18", "best of hour 18")])
        await pilot.pause()
        shown = logs.shown_lines()
        assert [i for i, text in enumerate(shown) if "best of hour 18" in text] < \
            [i for i, text in enumerate(shown) if "the report" in text]


async def test_long_log_lines_and_errors_wrap_to_the_pane_refold_when_zoomed_and_w_turns_it_off(tmp_path):
    import datetime as dt

    from flows_tui.record import events as ev
    from flows_tui.tui.log_view import Line, LogView

    app = app_for(make_project(tmp_path), connect_cluster=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.loaded.is_set() and len(flow_keys(app)) == 3, message="the flows")
        await pilot.pause()  # the selected flow's plan shown: the logs pane shows no run until told
        logs = app.query_one(LogView)
        logs.show_run("r1")
        error = "ValueError: only 1780 payments rows, expected at least 2000 (source orders, hour 18); end"
        logs.add([Line("r1", "check-0", "check", ev.LogLine(dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.timezone.utc),
                                                            40, f"{error}\nTraceback (most recent call last):"))])
        await pilot.pause()

        def folded() -> list[str]:
            shown = logs.shown_lines()
            return shown[:next(i for i, text in enumerate(shown) if "Traceback" in text)]

        width = logs.output.scrollable_content_region.width
        assert len(folded()) > 1 and all(len(text) <= width for text in logs.shown_lines())
        assert " ".join(text.strip() for text in folded()).endswith(error)  # every word, in order
        assert logs.shown_lines()[len(folded())] == "    Traceback (most recent call last):"

        logs.output.focus()
        await pilot.press("z")  # the pane alone: wider, fewer folds
        await wait_for(pilot, lambda: logs.output.scrollable_content_region.width > width, message="the zoom")
        await wait_for(pilot, lambda: all(len(text) <= logs.output.scrollable_content_region.width
                                          for text in logs.shown_lines()) and len(folded()) == 2,
                       message="the lines folded again at the new width")
        await pilot.press("w")
        assert len(folded()) == 1 and folded()[0].endswith(error) and "no wrap" in str(
            app.query_one("#log-header").render())


def test_an_attempt_names_its_worker_by_address_when_the_name_is_only_a_number():
    from flows_tui.engine.reports import worker_label

    assert worker_label(0, "tcp://127.0.0.1:40123") == "127.0.0.1:40123"
    assert worker_label("1", "tls://10.0.0.5:9000") == "10.0.0.5:9000"
    assert worker_label("gpu-box-2", "tcp://10.0.0.6:9000") == "gpu-box-2"
    assert worker_label(None, "tcp://127.0.0.1:40123") == "127.0.0.1:40123"


TYPED = """
    import datetime
    import enum
    from typing import Literal
    from flows_tui import flow, get_run_logger

    class Mode(enum.Enum):
        FAST = "fast"
        SAFE = "safe"

    @flow
    def typed(day: datetime.date = datetime.date(2024, 1, 1), mode: Mode = Mode.SAFE,
              size: Literal["s", "m", "l"] = "m", a: int = 1, b: int = 2, c: int = 3):
        get_run_logger().info("got %s %s %s", day.isoformat(), mode.value, size)
"""


async def test_the_parameter_form_shows_its_keys_and_buttons_and_offers_choices_at_80x24(tmp_path):
    import textwrap

    from textual.widgets import Button, Select

    from flows_tui.tui.log_view import LogView
    from flows_tui.tui.param_form import ParamForm
    from test_tui import select

    project = make_project(tmp_path)
    (project / "flows" / "typed.py").write_text(textwrap.dedent(TYPED))
    app = app_for(project)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.cluster is not None and "typed" in flow_keys(app), message="the flows")
        select(app, "typed")
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, ParamForm), message="the form")
        form = app.screen
        await pilot.pause()
        shown = app.export_screenshot().replace("&#160;", " ")
        assert "ctrl+s runs" in shown
        run_button = form.query_one("#run", Button)
        assert run_button.region.bottom <= 24 and run_button.region.height > 0  # on screen, not below the fold
        mode, size = form.query_one("#param-mode", Select), form.query_one("#param-size", Select)
        assert mode.value == "safe" and size.value == "m"
        day = form.query_one("#param-day")
        assert day.placeholder == "a date (YYYY-MM-DD)"
        day.value = "2024-13-01"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "YYYY-MM-DD" in str(form.query_one("#error-day").render()),
                       message="the date's format in its error")
        day.value = "2024-02-29"
        mode.value = "fast"
        size.value = "l"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("got 2024-02-29 fast l" in line
                                          for line in app.query_one(LogView).shown_lines()), message="the run")


async def test_r_while_the_cluster_starts_runs_once_it_is_ready(tmp_path):
    from flows_tui.tui.app import FlowsApp
    from flows_tui.tui.flow_list import FlowList
    from test_tui import select

    project = make_project(tmp_path)
    app = app_for(project)
    app.start_cluster = lambda: None  # held back: the cluster is "still starting" until the test starts it
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3, message="the flows")
        select(app, "numbers")
        await pilot.press("r")
        await wait_for(pilot, lambda: "numbers runs as soon as the cluster is ready" in toasts(app),
                       message="the run queued")
        assert app.cluster is None and not app.engines
        FlowsApp.start_cluster(app)
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("numbers") == "Completed", message="the queued run")


async def test_the_ui_is_up_before_its_store_and_engine_and_r_pressed_meanwhile_runs_and_is_recorded(tmp_path):
    import threading

    from flows_tui.launch.runner import recording
    from flows_tui.project.config import load_config
    from flows_tui.record import events as ev
    from flows_tui.record.store import Store
    from flows_tui.tui.app import FlowsApp
    from flows_tui.tui.flow_list import FlowList
    from test_tui import select

    config = load_config(None, cwd=make_project(tmp_path))
    bus = ev.EventBus()
    release = threading.Event()

    def open_store():  # as the UI's command opens it, once the test lets it
        assert release.wait(60), "the store was never let open"
        return recording(bus, config, unrecorded_ok=True, deferred=True)

    app = FlowsApp(config, bus=bus, open_store=open_store)
    try:
        async with app.run_test(size=(100, 30), notifications=True) as pilot:
            await wait_for(pilot, lambda: len(flow_keys(app)) == 3 and app.loaded.is_set(), message="the flows")
            assert app.store is None and not app.warmed_up.is_set()  # drawn, listed: the engine not there yet
            select(app, "numbers")
            await pilot.press("r")
            await wait_for(pilot, lambda: "numbers runs as soon as the cluster is ready" in toasts(app),
                           message="the run queued")
            release.set()
            flows = app.query_one(FlowList)
            await wait_for(pilot, lambda: flows.last_states.get("numbers") == "Completed", message="the queued run")
    finally:
        release.set()
        app.close_store()
    [run] = Store.open(config.project.state_dir).runs()  # recorded: the store was open before the run started
    assert (run.flow, run.state) == ("numbers", "Completed")


async def test_the_first_frame_lists_the_flows_from_their_source(tmp_path, monkeypatch):
    import flows_tui.tui.app as app_module

    monkeypatch.setattr(app_module, "FIRST_FRAME_LISTING", 30.0)  # how long that may take is the machine's matter
    app = app_for(make_project(tmp_path), connect_cluster=False)
    at_first_frame: list[list[str]] = []
    after_first_frame = app._after_first_frame
    app._after_first_frame = lambda: (at_first_frame.append(flow_keys(app)), after_first_frame())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: at_first_frame, message="the first frame")
        assert at_first_frame == [["numbers", "sleepy"]]  # named from numbers.py's source, still importing
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3, message="the flows imported, broken.py's row")


async def wait_until_idle(pilot) -> None:
    """The app's start-up workers (flows, history, cache, the journal's tail) have had their turn."""
    for _ in range(10):
        await pilot.pause(0.05)
    await pilot.app.workers.wait_for_complete()


def _screen_lines(app, width: int) -> list[str]:
    """The screen as text, line by line."""
    from test_tui_snapshots import cells

    shown = cells(app.export_screenshot())
    rows = max(row for row, _ in shown) + 1
    return ["".join(shown.get((row, column), (" ",))[0] for column in range(width)) for row in range(rows)]


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=lambda size: f"{size[0]}x{size[1]}")
async def test_the_flows_and_runs_panes_show_names_and_states_whole_and_their_columns_stay_put(tmp_path, size):
    import datetime as dt

    from flows_tui.record.store.rows import RunSummary
    from flows_tui.tui.flow_list import FlowList
    from flows_tui.tui.run_history import RunHistory

    app = app_for(make_project(tmp_path), connect_cluster=False)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3, message="the flows")
        flows, runs = app.query_one(FlowList), app.query_one(RunHistory)
        start = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.timezone.utc)
        runs.show([RunSummary("1a2b3c4d5e6f", "sleepy", "Cancelled", start, start + dt.timedelta(seconds=65)),
                   RunSummary("0a2b3c4d5e6f", "numbers", "Completed", start, start + dt.timedelta(seconds=2))])
        flows.set_last_state("numbers", "Completed")
        flows.set_next_runs({"numbers": dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=59, seconds=30)})
        app.query_one(StatusBar).set_cluster("cluster: LocalCluster · 2 workers · 2 threads · 8.0 GiB",
                                             "http://127.0.0.1:40123/status")
        await pilot.pause()

        def shows(*patterns: str) -> bool:  # each on a line of the screen, spaces between words of any length
            lines = _screen_lines(app, size[0])
            return all(any(re.search(pattern.replace(" ", " +"), line) for line in lines) for pattern in patterns)

        await wait_for(pilot, lambda: shows("│ numbers ✓ Completed", "│ sleepy ⊘ Cancelled", "│ broken.py:1 ✗ broken",
                                            "http://127.0.0.1:40123/status"),
                       message="every name, state and the dashboard link whole")
        if size[0] >= 100:  # room for the countdown and the run's duration
            await wait_for(pilot, lambda: shows("│ flow last next", "│ flow state took", "⊘ Cancelled 1m05s",
                                                "✓ Completed 5[89]m"), message="the countdown and durations")

        widths = {table.id: [column.width for column in table.columns.values()] for table in (flows, runs)}
        flows.set_watching({"numbers"})
        runs.upsert([RunSummary("2a2b3c4d5e6f", "numbers", "Running", start + dt.timedelta(minutes=1), None)])
        runs.upsert([RunSummary("2a2b3c4d5e6f", "numbers", "TimedOut", start + dt.timedelta(minutes=1),
                                start + dt.timedelta(minutes=2))])
        await wait_for(pilot, lambda: shows("⌛ TimedOut", "watching"), message="the new run and the watch")
        assert {table.id: [column.width for column in table.columns.values()] for table in (flows, runs)} == widths


SLOW_IMPORT = """
    import os
    import time
    from flows_tui import flow

    deadline = time.monotonic() + 30
    while not os.path.exists(GO) and time.monotonic() < deadline:  # a heavy import (pandas, dask.dataframe)
        time.sleep(0.02)

    @flow(name="slow-import")
    def slow_import():
        return 1
"""


async def test_flows_are_listed_from_their_source_while_their_file_imports_and_r_runs_once_it_has(tmp_path):
    import textwrap

    from flows_tui.tui.flow_list import FlowList
    from test_tui import select

    project = make_project(tmp_path)
    go = tmp_path / "go"
    (project / "flows" / "slow.py").write_text(f"GO = {str(go)!r}\n" + textwrap.dedent(SLOW_IMPORT))
    app = app_for(project)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await wait_for(pilot, lambda: "slow-import" in flow_keys(app), message="the name read from the source")
        assert not app.loaded.is_set() and "importing…" in str(app.query_one(FlowList).cell("slow-import", "last"))
        select(app, "slow-import")
        await pilot.press("r")
        await wait_for(pilot, lambda: "still importing" in toasts(app), message="r said to wait for the import")
        go.touch()
        await wait_for(pilot, lambda: app.query_one(FlowList).last_states.get("slow-import") == "Completed",
                       message="the run, once the file imported")


async def test_notifications_show_at_the_top_right_and_leave_the_log_lines_uncovered(tmp_path):
    from textual.widgets._toast import Toast

    from flows_tui.tui.log_view import LogView

    app = app_for(make_project(tmp_path), connect_cluster=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        for number in range(3):
            app.notify(f"notification {number}: something the user may read while the run goes on")
        await wait_for(pilot, lambda: len(app.screen.query(Toast)) == 3, message="the notifications")
        await pilot.pause()
        logs = app.query_one(LogView).output.region
        for toast in app.screen.query(Toast):
            assert toast.region.y < 12 and not toast.region.overlaps(logs), (toast.region, logs)
        await pilot.press("l", "z")  # the logs pane focused, then zoomed
        await wait_for(pilot, lambda: app.has_class("zoomed") and app.query_one("#flows").display is False,
                       message="the logs zoomed")


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=lambda size: f"{size[0]}x{size[1]}")
async def test_a_broken_files_row_shows_which_file_and_that_it_is_broken_within_the_pane(tmp_path, size):
    project = make_project(tmp_path)
    (project / "flows" / "nightly_warehouse_refresh.py").write_text("x = 1\nraise ValueError('no')\n")
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 4, message="the flows and the two broken files")

        def shows(*patterns: str) -> bool:
            lines = _screen_lines(app, size[0])
            return all(any(re.search(pattern, line) for line in lines) for pattern in patterns)

        # The name's start and its end with the line, then that it is broken, each whole; enter has the rest.
        await wait_for(pilot, lambda: shows(r"│ broken\.py:1 +✗ broken", r"│ nightly\w*…[\w.]*\.py:2 +✗ broken"),
                       message="both broken rows whole")
        await pilot.press("z")  # the zoomed pane has room for the error's kind
        await wait_for(pilot, lambda: shows(r"│ nightly_warehouse_refresh\.py:2 ValueError +✗ broken",
                                            r"│ broken\.py:1 ModuleNotFoundError +✗ broken"),
                       message="the kinds in the zoomed pane")
