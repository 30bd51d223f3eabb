"""The UI driven with Textual's Pilot, as a user presses keys."""

from __future__ import annotations

import textwrap

from flows_tui.config import load_config
from flows_tui.tui.app import FlowsApp


async def _wait_for(pilot, condition, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the UI")
        await pilot.pause(0.05)


def _project(tmp_path):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "numbers.py").write_text(textwrap.dedent("""
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
    """))
    (tmp_path / "flows" / "broken.py").write_text("import not_a_module_anywhere\n")
    (tmp_path / "flows.toml").write_text('[project]\nflows_dir = "flows"\n[cluster]\nprocesses = false\nn_workers = 1\n')
    return load_config(None, cwd=tmp_path)


async def test_the_ui_lists_flows_and_broken_files_and_runs_the_selected_flow(tmp_path):
    app = FlowsApp(_project(tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await _wait_for(pilot, lambda: app.cluster is not None and len(app.rows) == 2)
        flows = app.query_one("#flows")
        cells = [str(flows.get_row_at(i)[0]) for i in range(flows.row_count)]
        assert "✗ broken.py" in cells and "numbers" in cells
        flows.move_cursor(row=cells.index("numbers"))
        await pilot.press("r")
        await _wait_for(pilot, lambda: "Completed" in str(flows.get_row_at(cells.index("numbers"))[2]))
        await pilot.pause(0.3)
        tasks = app.query_one("#tasks")
        rows = {str(tasks.get_row_at(i)[0]): str(tasks.get_row_at(i)[1]) for i in range(tasks.row_count)}
        assert rows == {"square": "5/5", "report": "1/1"}
        assert any("total 30" in line for line in app.query_one("#logs").lines)
