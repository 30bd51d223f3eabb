"""Tracebacks, warnings and logged exceptions name the user's file and line, and start at the user's code.

Flow files travel to workers by value; cloudpickle 3.1.3 and later rename the code it sends
to "<dynamic-code>". Whatever cloudpickle is installed, what the user reads must name their
file (relative to the project), show the source line, and leave flows-tui's and Dask's own
frames out — on worker processes, worker threads, and a `dask worker` started in another
directory that has no copy of the files.
"""

from __future__ import annotations

import json
import re
import sqlite3
import textwrap
from pathlib import Path

import pytest

from conftest import PROCESS_CLUSTER_TOML, THREAD_CLUSTER_TOML, cli, write_project

PIPELINE = """
    import logging
    import warnings

    from flows_tui import flow, get_run_logger, task
    from helpers import explode

    @task
    def check(n: int) -> int:
        warnings.warn("disk almost full")
        try:
            explode(n)
        except ValueError:
            get_run_logger().exception("caught it once")
        return explode(n)

    @flow
    def pipeline(n: int = 3) -> None:
        check(n)
"""

HELPERS = """
    def explode(n):
        raise ValueError(f"bad n={n}")
"""

# What must never reach the user unless they ask for it (--debug).
INTERNAL = re.compile(r'<dynamic-code>|File "[^"]*(flows_tui|core/|distributed|dask/|tornado)[^"]*"')


def _line_of(source: str, text: str) -> int:
    lines = textwrap.dedent(source).splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def _project(tmp_path: Path, toml: str) -> Path:
    return write_project(tmp_path, {"pipeline.py": PIPELINE, "helpers.py": HELPERS}, toml=toml)


def _recorded(project: Path, run_id: str) -> tuple[list[str], list[str]]:
    """(every traceback of the run in the store, every log line of the run)."""
    with sqlite3.connect(project / ".flows-tui" / "flows-tui.db") as db:
        run = "(SELECT id FROM runs WHERE run_id = ?)"
        tracebacks = [row[0] for row in db.execute(
            f"SELECT traceback FROM attempts WHERE task IN (SELECT id FROM task_runs WHERE run = {run}) "
            "UNION ALL SELECT traceback FROM runs WHERE run_id = ?", (run_id, run_id)) if row[0]]
        lines = [row[0] for row in db.execute(f"SELECT message FROM logs WHERE run = {run}", (run_id,))]
    return tracebacks, lines


def _assert_user_locations(project: Path, result, debug: bool = False) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    raise_line = _line_of(HELPERS, "raise ValueError")
    call_line = _line_of(PIPELINE, "return explode(n)")
    warn_line = _line_of(PIPELINE, "warnings.warn")
    shown = result.stdout + result.stderr
    # The run's summary: the user's frames, by path within the project, with their source lines.
    assert f'File "flows/pipeline.py", line {call_line}, in check\n    return explode(n)' in shown, shown
    assert f'File "flows/helpers.py", line {raise_line}, in explode\n    raise ValueError(f"bad n={{n}}")' in shown
    [run_id] = re.findall(r"\(([0-9a-f]{12})\)", shown.splitlines()[0])
    tracebacks, lines = _recorded(project, run_id)
    assert tracebacks, "the failure's traceback is recorded"
    for text in tracebacks:
        assert 'File "flows/helpers.py"' in text and "ValueError: bad n=3" in text
    [warning] = [line for line in lines if "disk almost full" in line]
    assert warning == f"UserWarning: disk almost full (flows/pipeline.py:{warn_line})"
    [logged] = [line for line in lines if line.startswith("caught it once")]
    assert f'File "flows/helpers.py", line {raise_line}, in explode' in logged
    everything = [shown, *tracebacks, *lines]
    if debug:
        assert any(INTERNAL.search(text) for text in tracebacks), tracebacks
        assert not any("<dynamic-code>" in text for text in everything)
    else:
        for text in everything:
            assert not INTERNAL.search(text), text
        # Each recorded traceback starts at the user's code.
        for text in tracebacks:
            first_frame = next(line for line in text.splitlines() if line.startswith("  File "))
            assert first_frame.startswith(('  File "flows/pipeline.py"', '  File "flows/helpers.py"')), text


@pytest.mark.parametrize("toml", [PROCESS_CLUSTER_TOML, THREAD_CLUSTER_TOML], ids=["processes", "threads"])
def test_a_failed_task_shows_the_users_files_and_lines_only(tmp_path, toml):
    project = _project(tmp_path, toml)
    _assert_user_locations(project, cli("run", "pipeline", cwd=project))


@pytest.mark.attach
def test_a_remote_worker_without_the_files_shows_their_lines(tmp_path, scheduler, worker_dir):
    project = _project(tmp_path, THREAD_CLUSTER_TOML)
    assert not list(worker_dir.glob("**/*.py"))
    _assert_user_locations(project, cli("run", "pipeline", "--address", scheduler, cwd=project))


def test_debug_keeps_flows_tui_and_dask_frames(tmp_path):
    project = _project(tmp_path, THREAD_CLUSTER_TOML)
    _assert_user_locations(project, cli("--debug", "run", "pipeline", cwd=project), debug=True)
    again = cli("run", "pipeline", cwd=project, env={"FLOWS_TUI_DEBUG": "1"})
    assert 'File "flows/helpers.py"' in again.stdout and INTERNAL.search(again.stdout), again.stdout


def test_the_flow_bodys_own_error_starts_at_the_body(tmp_path):
    project = write_project(tmp_path, {"body.py": """
        from flows_tui import flow

        def parse(text):
            return int(text)

        @flow
        def body_fails(text: str = "x") -> int:
            return parse(text)
    """})
    result = cli("run", "body_fails", "--json", cwd=project)
    assert result.returncode == 1
    run_id = json.loads(result.stdout)["run_id"]
    [traceback] = _recorded(project, run_id)[0]
    frames = [line for line in traceback.splitlines() if line.startswith("  File ")]
    assert frames == ['  File "flows/body.py", line 9, in body_fails', '  File "flows/body.py", line 5, in parse']
    assert traceback.endswith("ValueError: invalid literal for int() with base 10: 'x'")


async def test_the_uis_traceback_of_a_failed_attempt_names_the_users_files(tmp_path, monkeypatch):
    from test_tui import app_for, wait_for
    from flows_tui.tui.screens import TextScreen
    from flows_tui.tui.task_tree import TaskTree

    project = _project(tmp_path, THREAD_CLUSTER_TOML)
    monkeypatch.chdir(project)
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        tree = app.query_one(TaskTree)

        def attempt_node():
            stack = [tree.root]
            while stack:
                node = stack.pop()
                if node.data and node.data[0] == "attempt":
                    return node
                stack.extend(node.children)
            return None

        await wait_for(pilot, lambda: app.query_one("#flows").row_count and "pipeline" in str(app.query_one("#flows").get_row_at(0)), message="the flow")
        await pilot.press("r")
        await wait_for(pilot, lambda: attempt_node() is not None and "Failed" in str(attempt_node().label),
                       message="the failed attempt")
        node = attempt_node()
        parent = node.parent
        while parent is not None:
            parent.expand()
            parent = parent.parent
        tree.focus()
        await pilot.pause()
        tree.move_cursor(node)
        await pilot.pause()
        assert tree.cursor_node is node
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), message="the traceback screen")
        body = app.screen.body
        assert 'File "flows/helpers.py", line 3, in explode' in body and 'raise ValueError(f"bad n={n}")' in body
        assert not INTERNAL.search(body), body
