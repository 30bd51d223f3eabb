"""Odd flow files and an odd state directory: one clear message, the rest goes on."""

from __future__ import annotations

import json
import os

from conftest import cli, write_project

GOOD = """
    from flows_tui import flow

    @flow
    def good():
        return 1
"""


def test_a_symlink_loop_in_the_flows_dir_is_one_error_row_and_the_other_flows_work(tmp_path):
    project = write_project(tmp_path, {"good.py": GOOD})
    os.symlink("loop_b.py", project / "flows" / "loop_a.py")
    os.symlink("loop_a.py", project / "flows" / "loop_b.py")
    listed = cli("list", "--json", cwd=project)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [row["name"] for row in rows if row["error"] is None] == ["good"]
    assert sorted(row["error"] for row in rows if row["error"]) == [
        "flows/loop_a.py: cannot read the file: a symlink loop", "flows/loop_b.py: cannot read the file: a symlink loop"]
    table = cli("list", cwd=project)
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    checked = cli("check", cwd=project)
    assert checked.returncode == 2 and checked.stdout.count("a symlink loop") == 2, checked.stdout + checked.stderr
    ran = cli("run", "good", cwd=project)
    assert ran.returncode == 0, ran.stderr


def test_a_flow_file_printing_at_import_leaves_run_json_stdout_to_the_document(tmp_path):
    noisy = """
        import os
        print("x" * 1_000_000)
        os.write(1, b"written to file descriptor 1\\n")
        from flows_tui import flow

        @flow
        def noisy():
            print("the body prints too")
            return 1
    """
    project = write_project(tmp_path, {"noisy.py": noisy, "other.py": "print('another file prints')\n"})
    result = cli("run", "noisy", "--json", cwd=project)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["state"] == "Completed"  # the document alone
    assert "written to file descriptor 1" in result.stderr and "another file prints" in result.stderr


def test_the_state_dir_deleted_mid_run_is_said(tmp_path):
    project = write_project(tmp_path, {"gone.py": """
        import shutil
        from flows_tui import flow, task, get_run_logger

        @task
        def remove_it():
            shutil.rmtree(".flows-tui")
            get_run_logger().info("recorded after the store was deleted")

        @flow
        def gone():
            remove_it()
    """})
    result = cli("run", "gone", cwd=project)
    assert result.returncode == 0, result.stderr  # the run itself Completed
    assert "error: the run store .flows-tui/flows-tui.db was deleted while runs were recorded" in result.stderr
    assert "is lost" in result.stderr
