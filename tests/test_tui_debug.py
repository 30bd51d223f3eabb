"""`d` and `e` in the UI: a task run under the debugger, a file in the editor, and back.

Under Pilot there is no terminal to give back, so only `App.suspend()` is replaced: by a
context that collects what would have been written to the terminal. The debugger is the one
PYTHONBREAKPOINT names (a small module here whose post_mortem records the failing frame),
and the editor is a script named `vim` that records its arguments and saves a fix.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from test_tui import app_for, flow_keys, select, wait_for
from flows_tui.tui.flow_list import FlowList
from flows_tui.tui.screens import TextScreen
from flows_tui.tui.task_tree import TaskTree

RIDERS = '''
from flows_tui import flow, task


@task
def double(rows):
    return [r * 2 for r in rows]


@task
def clean(rows: list, limit: int) -> list:
    total = sum(rows)
    if total > limit:
        raise ValueError(f"total {total} over {limit}")
    return [r for r in rows if r >= 0]


@flow(name="riders")
def riders(n: int = 4, limit: int = 30):
    doubled = double.map([[i, -1, i * 7] for i in range(n)])
    clean.map(doubled, limit)
'''
FAILING_LINE = next(n for n, line in enumerate(RIDERS.splitlines(), 1) if "raise ValueError" in line)

RECORDING_DEBUGGER = '''
import json, os


def set_trace(*args, **kwargs):
    pass


def post_mortem(tb):
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    with open(os.environ["DEBUGGED"], "w") as out:
        json.dump({"file": frame.f_code.co_filename, "line": tb.tb_lineno, "function": frame.f_code.co_name,
                   "locals": {k: repr(v) for k, v in frame.f_locals.items()}}, out)
'''

EDITOR = f'''#!{sys.executable}
import json, os, sys
with open(os.environ["EDITED"], "a") as out:
    out.write(json.dumps(sys.argv[1:]) + "\\n")
path = sys.argv[-1]
with open(path) as source:
    text = source.read()
with open(path, "w") as target:
    target.write(text.replace("if total > limit:", "if total > limit * 10:"))
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "riders.py").write_text(textwrap.dedent(RIDERS))
    (tmp_path / "flows" / "broken.py").write_text("x = 1\nimport not_a_module_anywhere\n")
    (tmp_path / "flows.toml").write_text('[project]\nflows_dir = "flows"\n'
                                         '[cluster]\nprocesses = false\nn_workers = 1\nthreads_per_worker = 2\n')
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "recording_debugger.py").write_text(RECORDING_DEBUGGER)
    editor = tools / "vim"
    editor.write_text(EDITOR)
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    monkeypatch.syspath_prepend(str(tools))
    monkeypatch.setenv("PYTHONBREAKPOINT", "recording_debugger.set_trace")
    monkeypatch.setenv("DEBUGGED", str(tmp_path / "debugged.json"))
    monkeypatch.setenv("EDITED", str(tmp_path / "edited.jsonl"))
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def terminal_for(app) -> io.StringIO:
    """Replace the terminal side of `App.suspend()`: what goes to the terminal is collected."""
    written = io.StringIO()
    suspended = []

    @contextlib.contextmanager
    def suspend():
        suspended.append(True)
        with contextlib.redirect_stderr(written), contextlib.redirect_stdout(written):
            yield

    app.suspend = suspend
    written.suspended = suspended
    return written


async def failed_run(app, pilot) -> str:
    await wait_for(pilot, lambda: app.cluster is not None and "riders" in flow_keys(app), message="the cluster")
    select(app, "riders")
    await pilot.press("r")
    flows = app.query_one(FlowList)
    await wait_for(pilot, lambda: flows.last_states.get("riders") == "Failed", message="the run to fail")
    await pilot.pause(0.2)
    return app.shown_run


async def cursor_on(app, pilot, name: str) -> None:
    """The tasks pane focused, its cursor on task run `name` (its group expanded)."""
    tree = app.query_one(TaskTree)
    tree.focus()
    group = next(node for node in tree.root.children if node.data == ("group", name.rsplit("-", 1)[0]))
    group.expand()
    await pilot.pause(0.1)
    node = next(child for child in group.children
                if child.data and child.data[0] == "task_run" and tree.flow_run.task_runs[child.data[1]].name == name)
    tree.move_cursor(node)
    await pilot.pause()


async def test_d_runs_the_task_run_in_the_terminal_under_the_debugger_with_its_inputs_and_comes_back(project):
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        written = terminal_for(app)
        run_id = await failed_run(app, pilot)
        await cursor_on(app, pilot, "clean-3")
        await pilot.press("d")
        debugged = project / "debugged.json"
        await wait_for(pilot, debugged.exists, message="the debugger")
        await wait_for(pilot, lambda: "press enter to go back" in written.getvalue(), message="the way back")
        frame = json.loads(debugged.read_text())
        assert frame["file"].endswith("riders.py") and frame["line"] == FAILING_LINE
        assert frame["function"] == "clean"
        assert frame["locals"]["total"] == "46" and frame["locals"]["rows"] == "[6, -2, 42]"
        shown = written.getvalue()
        assert f"debugging clean-3 of run {run_id}" in shown
        assert f"rows: list, 3 items" in shown and f"held in cluster memory from run {run_id}" in shown
        assert "the re-run's task runs" not in shown  # the run's own inputs: nothing ran again for them
        assert "ValueError: total 46 over 30" in shown
        assert written.suspended == [True]
        await pilot.pause(0.1)
        assert app.is_running and app.shown_run == run_id
        assert app.session.holds(run_id)  # R still reuses what the run completed


async def test_e_on_a_failed_attempt_opens_the_editor_at_the_failing_line_and_the_save_is_reloaded(project):
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        written = terminal_for(app)
        await failed_run(app, pilot)
        await cursor_on(app, pilot, "clean-3")
        before = app.directory.flows["riders"]
        await pilot.press("e")
        await wait_for(pilot, lambda: (project / "edited.jsonl").exists(), message="the editor")
        [args] = [json.loads(line) for line in (project / "edited.jsonl").read_text().splitlines()]
        assert args == [f"+{FAILING_LINE}", str(project / "flows" / "riders.py")]
        assert written.suspended == [True]
        await wait_for(pilot, lambda: app.directory.flows["riders"] is not before, message="the reload")
        select(app, "riders")
        await pilot.press("r")
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("riders") == "Completed", message="the fixed run")


async def test_e_on_a_traceback_screen_and_on_a_broken_files_row_opens_their_lines(project):
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        terminal_for(app)
        await failed_run(app, pilot)
        await cursor_on(app, pilot, "clean-3")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), message="the traceback")
        await pilot.press("e")
        await wait_for(pilot, lambda: (project / "edited.jsonl").exists(), message="the editor")
        await pilot.press("escape")
        broken = next(key for key in flow_keys(app) if key.startswith("error:"))
        select(app, broken)
        app.query_one(FlowList).focus()
        await pilot.press("e")
        await wait_for(pilot, lambda: len((project / "edited.jsonl").read_text().splitlines()) == 2)
        calls = [json.loads(line) for line in (project / "edited.jsonl").read_text().splitlines()]
        assert calls == [[f"+{FAILING_LINE}", str(project / "flows" / "riders.py")],
                         ["+2", str(project / "flows" / "broken.py")]]


@pytest.mark.parametrize("editor, expected", [
    ("vim", ["vim", "+7", "f.py"]),
    ("/usr/bin/nvim", ["/usr/bin/nvim", "+7", "f.py"]),
    ("emacs -nw", ["emacs", "-nw", "+7", "f.py"]),
    ("nano", ["nano", "+7", "f.py"]),
    ("code --wait", ["code", "--wait", "--goto", "f.py:7"]),
    ("hx", ["hx", "f.py:7"]),
    ("someeditor", ["someeditor", "f.py"]),
])
def test_the_editor_is_asked_for_the_line_the_way_it_understands(editor, expected):
    from flows_tui.tui.terminal import editor_command

    assert editor_command("f.py", 7, {"EDITOR": editor}) == expected
    assert editor_command("f.py", 7, {"VISUAL": editor, "EDITOR": "ed"}) == expected  # VISUAL first


async def test_enter_on_a_task_run_shows_its_inputs_and_result_described_on_the_cluster(project):
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        await failed_run(app, pilot)
        await cursor_on(app, pilot, "clean-1")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), message="the inputs")
        body = app.screen.body
        assert "rows: list, 3 items" in body and "[2, -2, 14]" in body
        assert "limit: int" in body and "30" in body
        assert "result: list, 2 items" in body and "[2, 14]" in body
        await pilot.press("escape")
        await cursor_on(app, pilot, "clean-3")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), message="the inputs")
        body = app.screen.body
        assert "[6, -2, 42]" in body and "result:" not in body
        assert "ValueError: total 46 over 30" in body and "Traceback" in body


async def test_d_after_a_fix_runs_the_saved_code_on_the_inputs_the_run_had(project):
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        written = terminal_for(app)
        await failed_run(app, pilot)
        before = app.directory.flows["riders"]
        source = project / "flows" / "riders.py"
        source.write_text(source.read_text().replace("if total > limit:", "if total > limit * 10:"))
        await wait_for(pilot, lambda: app.directory.flows["riders"] is not before, message="the reload")
        await cursor_on(app, pilot, "clean-3")
        await pilot.press("d")
        await wait_for(pilot, lambda: "press enter to go back" in written.getvalue(), message="the debugger")
        assert "clean-3 completed; it returned list, 2 items" in written.getvalue()
        assert "[6, 42]" in written.getvalue()
        assert not (project / "debugged.json").exists()


async def test_d_on_a_run_of_an_earlier_session_computes_its_inputs_again(project):
    first = app_for(project)
    async with first.run_test(size=(120, 40)) as pilot:
        run_id = await failed_run(first, pilot)
    app = app_for(project)  # a new UI: the cluster that held the run is gone
    async with app.run_test(size=(120, 40)) as pilot:
        written = terminal_for(app)
        await wait_for(pilot, lambda: app.cluster is not None and app.loaded.is_set(), message="the cluster and flows")
        app.open_stored_run(run_id)
        await wait_for(pilot, lambda: app.shown_run == run_id, message="the stored run")
        await cursor_on(app, pilot, "clean-3")
        await pilot.press("d")
        await wait_for(pilot, lambda: "press enter to go back" in written.getvalue(), message="the debugger")
        shown = written.getvalue()
        assert "double-3: computed again" in shown and "ValueError: total 46 over 30" in shown
        assert json.loads((project / "debugged.json").read_text())["locals"]["rows"] == "[6, -2, 42]"


NESTED = '''
from flows_tui import flow, task


def check(value):
    raise ValueError(f"bad {value}")


@task
def parse(value):
    return check(value)


@flow(name="nested")
def nested():
    parse(1)
'''


async def test_e_on_a_traceback_with_several_frames_asks_which_one(project):
    from flows_tui.tui.screens import FramePicker

    (project / "flows" / "nested.py").write_text(textwrap.dedent(NESTED))
    lines = NESTED.splitlines()
    raised = next(n for n, line in enumerate(lines, 1) if "raise ValueError" in line)
    called = next(n for n, line in enumerate(lines, 1) if "return check(value)" in line)
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        terminal_for(app)
        await wait_for(pilot, lambda: app.cluster is not None and "nested" in flow_keys(app), message="the cluster")
        select(app, "nested")
        await pilot.press("r")
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("nested") == "Failed", message="the run to fail")
        tree = app.query_one(TaskTree)
        tree.focus()
        tree.move_cursor(next(node for node in tree.root.children if node.data and node.data[0] == "task_run"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), message="the traceback")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, FramePicker), message="the frames")
        assert [line for _, line in app.screen.frames] == [raised, called]  # where it raised comes first
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: (project / "edited.jsonl").exists(), message="the editor")
        [args] = [json.loads(line) for line in (project / "edited.jsonl").read_text().splitlines()]
        assert args == [f"+{called}", str(project / "flows" / "nested.py")]


async def test_e_with_watch_run_on_reruns_only_what_the_fix_changed(project):
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        terminal_for(app)
        await wait_for(pilot, lambda: app.cluster is not None and "riders" in flow_keys(app), message="the cluster")
        select(app, "riders")
        await pilot.press("w")  # runs now, and after every save
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("riders") == "Failed", message="the first run")
        await pilot.pause(0.2)
        await cursor_on(app, pilot, "clean-3")
        await pilot.press("e")
        await wait_for(pilot, lambda: flows.last_states.get("riders") == "Completed", message="the run after the fix")
        with app.bridge.lock:
            run = app.bridge.model.runs[app._last_run_of["riders"]]
            states = {t.name: t.state for t in run.task_runs.values()}
        assert {states[f"double-{i}"] for i in range(4)} == {"Cached"}  # reused: the fix did not touch them
        assert {states[f"clean-{i}"] for i in range(4)} == {"Completed"}
        await pilot.press("w")  # stop watching
