"""SVG snapshots of the UI at 80x24 and 100x30: what a user sees, cell for cell.

Runs are fed to the app as the events a real run produces (fixed ids and times, the
app's clock pinned), so the pictures do not depend on timing. Update with
`pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs.

A screenshot is compared with its SVG by what it shows: each cell's character, the colour
and weight of a visible character, and the cell's background. Not as SVG text: Textual
splits a line into text runs differently from one frame to the next (a run of spaces
drawn or left to the background), which changes the file and not the picture.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import time
from pathlib import Path

import pytest

from flows_tui.record import events as ev
from flows_tui.project.config import load_config
from flows_tui.tui.app import FlowsApp
from flows_tui.tui.flow_list import FlowList
from flows_tui.tui.task_tree import TaskTree
from flows_tui.tui.screens import TextScreen
from test_tui import flow_keys, make_project, select, wait_for

T0 = dt.datetime(2026, 11, 23, 9, 0, 0, tzinfo=dt.timezone.utc)
RUN = "1a2b3c4d5e6f"
TRACEBACK = """Traceback (most recent call last):
  File "flows/numbers.py", line 8, in square
    raise ValueError(f"no square for {x}")
ValueError: no square for 4"""

SIZES = [(80, 24), (100, 30)]
# The pictures are taken one after another in one pytest-xdist worker (`--dist loadgroup`):
# a DataTable sizes its columns when it is idle, which a crowded process puts off.
pytestmark = pytest.mark.xdist_group("snapshots")
SNAPSHOTS = Path(__file__).parent / "__snapshots__" / "test_tui_snapshots"
CELL_WIDTH = 12.2  # Textual's SVG export: x advances this much per terminal column
LINE_HEIGHT = 24.4


def cells(svg: str) -> dict[tuple[int, int], tuple[str, str, str]]:
    """(row, column) → (character, foreground style if the character is visible, background)."""
    styles = {m.group(1): m.group(2).strip() for m in re.finditer(r"\.(terminal-[\w-]*?r\d+) \{ ([^}]*) \}", svg)}
    shown: dict[tuple[int, int], tuple[str, str, str]] = {}
    for m in re.finditer(r'<rect fill="(#[0-9a-fA-F]+)" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"', svg):
        row, column = round(float(m.group(3)) / LINE_HEIGHT), round(float(m.group(2)) / CELL_WIDTH)
        for offset in range(round(float(m.group(4)) / CELL_WIDTH)):
            shown[(row, column + offset)] = (" ", "", m.group(1).lower())
    for m in re.finditer(r'<text class="([^"]*)" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', svg):
        row, column = round(float(m.group(3)) / LINE_HEIGHT), round(float(m.group(2)) / CELL_WIDTH)
        for offset, char in enumerate(html.unescape(m.group(4)).replace("\xa0", " ")):
            background = shown.get((row, column + offset), (" ", "", ""))[2]
            shown[(row, column + offset)] = (char, styles.get(m.group(1), "") if char != " " else "", background)
    return shown


def differences(expected: str, actual: str, width: int) -> list[str]:
    """The rows whose cells differ, as text: `expected` then `actual` for each."""
    want, got = cells(expected), cells(actual)
    rows = sorted({row for row, _ in set(want) | set(got)
                   if want.get((row, _), (" ", "", "")) != got.get((row, _), (" ", "", ""))})
    lines = []
    for row in rows:
        lines.append("expected " + "".join(want.get((row, c), (" ",))[0] for c in range(width)).rstrip())
        lines.append("actual   " + "".join(got.get((row, c), (" ",))[0] for c in range(width)).rstrip())
    return lines


@pytest.fixture
def snap_compare(request):
    """Screenshot the app after `run_before` (as pytest-textual-snapshot takes it) and compare it
    with the stored SVG cell for cell; `--snapshot-update` stores it instead."""
    from textual._doc import take_svg_screenshot

    def compare(app, terminal_size=(80, 24), run_before=None) -> bool:
        actual = take_svg_screenshot(app=app, terminal_size=terminal_size, run_before=run_before)
        path = SNAPSHOTS / f"{request.node.name}.svg"
        if request.config.getoption("--snapshot-update", default=False) or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual)
            return True
        changed = differences(path.read_text(), actual, terminal_size[0])
        if changed:
            failed = request.config.rootpath / "snapshot_failures" / path.name
            failed.parent.mkdir(exist_ok=True)
            failed.write_text(actual)
            raise AssertionError(f"the screen differs from {path.name} (actual: snapshot_failures/{path.name}):\n"
                                 + "\n".join(changed))
        return True

    return compare


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def run_events(failed: bool) -> list:
    events = [ev.FlowRunStarted(RUN, "numbers", {"n": 5}, at(0), address="LocalCluster"),
              ev.FlowStateChanged(RUN, "Running", at(0))]
    for i in range(5):
        events.append(ev.TaskRunCreated(RUN, f"sq{i}", "square", f"square-{i}", at(0), i))
    events.append(ev.TaskRunCreated(RUN, "rep", "report", "report-0", at(0), None, tuple(f"sq{i}" for i in range(5))))
    for i in range(3):
        events += [ev.AttemptStarted(RUN, f"sq{i}", 1, at(1), "worker-0"),
                   ev.TaskStateChanged(RUN, f"sq{i}", "Running", at(1)),
                   ev.AttemptEnded(RUN, f"sq{i}", 1, "Completed", at(1.5)),
                   ev.TaskStateChanged(RUN, f"sq{i}", "Completed", at(1.5))]
    events += [ev.AttemptStarted(RUN, "sq3", 1, at(2), "worker-1"), ev.TaskStateChanged(RUN, "sq3", "Running", at(2)),
               ev.AttemptStarted(RUN, "sq4", 1, at(1), "worker-0"), ev.TaskStateChanged(RUN, "sq4", "Running", at(1)),
               ev.AttemptEnded(RUN, "sq4", 1, "Failed", at(2), "ValueError: no square for 4", TRACEBACK),
               ev.TaskStateChanged(RUN, "sq4", "Retrying", at(2), "attempt 1 Failed", retry_at=at(8))]
    events.append(ev.LogLines(RUN, tuple(ev.LogLine(at(1.5), 20, f"squared {i}", f"sq{i}", 1) for i in range(3))))
    if failed:
        events += [ev.AttemptEnded(RUN, "sq3", 1, "Completed", at(3)),
                   ev.TaskStateChanged(RUN, "sq3", "Completed", at(3)),
                   ev.AttemptStarted(RUN, "sq4", 2, at(8), "worker-0"),
                   ev.AttemptEnded(RUN, "sq4", 2, "Failed", at(8.5), "ValueError: no square for 4", TRACEBACK),
                   ev.TaskStateChanged(RUN, "sq4", "Failed", at(8.5)),
                   ev.TaskStateChanged(RUN, "rep", "NotRun", at(8.5), "upstream task 'square-4' ended Failed"),
                   ev.LogLines(RUN, (ev.LogLine(at(8.5), 40, "square-4 failed after 2 attempts", None, None),)),
                   ev.FlowStateChanged(RUN, "Failed", at(9), message="2 task run(s) did not succeed: square-4 "
                                                                     "(Failed), report-0 (NotRun)")]
    return events


def make_app(project) -> FlowsApp:
    app = FlowsApp(load_config(None, cwd=project), connect_cluster=False, watch=False)
    app.clock = lambda: at(5)
    return app


async def loaded(pilot) -> None:
    app = pilot.app
    deadline = time.monotonic() + 90  # a crowded machine loads and draws slowly; the picture is what counts
    while len(flow_keys(app)) < 3 or not app.loaded.is_set():
        assert time.monotonic() < deadline, "the flows did not load"
        await pilot.pause(0.05)
    app.query_one("#status").set_cluster("cluster: LocalCluster · 2 workers · 2 threads · 8.0 GiB")
    select(app, "numbers")
    # The screen shows every name once the table has drawn its rows (later on a busy machine).
    flows = app.query_one(FlowList)
    while not all(name in app.export_screenshot() for name in ("numbers", "sleepy")):
        assert time.monotonic() < deadline, (
            "the flows pane did not show every flow's name: "
            f"{[(key.value, column.width) for key, column in flows.columns.items()]}")
        await pilot.pause(0.05)
    await pilot.pause()


async def show_run(pilot, failed: bool) -> None:
    await loaded(pilot)
    app = pilot.app
    app._follow_run(RUN, "numbers")
    app.bus.publish_many(run_events(failed))
    deadline = time.monotonic() + 90  # a crowded machine loads and draws slowly; the picture is what counts
    want = "Failed" if failed else "Running"
    # The runs pane lists it too, and sizes its columns on a later refresh: wait for its id in full.
    while want not in str(app.query_one(TaskTree).root.label) or RUN[:8] not in app.export_screenshot():
        assert time.monotonic() < deadline, "the run did not show"
        await pilot.pause(0.05)
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_idle_with_flows_and_the_plan(snap_compare, tmp_path, size):
    assert snap_compare(make_app(make_project(tmp_path)), terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_run_in_progress(snap_compare, tmp_path, size):
    async def before(pilot):
        await show_run(pilot, failed=False)

    assert snap_compare(make_app(make_project(tmp_path)), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_failed_run_with_its_traceback(snap_compare, tmp_path, size):
    async def before(pilot):
        await show_run(pilot, failed=True)
        tree = pilot.app.query_one(TaskTree)
        tree.focus()
        group = next(node for node in tree.root.children if node.data == ("group", "square"))
        group.expand()
        await pilot.pause()
        failed = next(node for node in group.children if node.data == ("task_run", "sq4"))
        tree.move_cursor(failed)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, TextScreen), message="the traceback screen")
        await pilot.pause()

    app = make_app(make_project(tmp_path))
    # The run's end is also a notification, on screen or not yet depending on timing: not part of this picture.
    app.notify = lambda *args, **kwargs: None
    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_file_that_fails_to_load(snap_compare, tmp_path, size):
    async def before(pilot):
        await loaded(pilot)
        app = pilot.app
        select(app, next(key for key in flow_keys(app) if key.startswith("error:")))
        app.query_one(FlowList).focus()
        await pilot.pause()

    assert snap_compare(make_app(make_project(tmp_path)), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_parameter_form(snap_compare, tmp_path, size):
    async def before(pilot):
        await loaded(pilot)
        await pilot.press("p")
        await pilot.pause()
        field = pilot.app.screen.query_one("#param-n")
        field.cursor_blink = False  # a blinking cursor would make the picture depend on the moment
        field.value = "many"
        await pilot.press("ctrl+s")
        await pilot.pause()

    assert snap_compare(make_app(make_project(tmp_path)), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_lists_every_key(snap_compare, tmp_path, size):
    async def before(pilot):
        await loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(make_project(tmp_path)), terminal_size=size, run_before=before)
