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
    assert "written to file descriptor 1" in result.stderr
    assert "another file prints" not in result.stdout + result.stderr  # not imported: it defines no such flow


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


ODD_AT_IMPORT = {
    "loops.py": "import time\nwhile True:\n    time.sleep(0.05)\n",
    "exits.py": "import os\nos._exit(7)\n",
    "interrupts.py": "raise KeyboardInterrupt\n",
    "thread.py": "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,)).start()\n",
    "marks.py": "from pathlib import Path\nPath(__file__).with_name('imported').mkdir(exist_ok=True)\n",
}
TIMEOUT_TOML = """
[project]
flows_dir = "flows"
import_timeout = 1
[cluster]
n_workers = 1
threads_per_worker = 1
processes = false
"""


def test_files_that_loop_exit_or_interrupt_at_import_are_error_rows_and_nothing_hangs(tmp_path):
    project = write_project(tmp_path, {"good.py": GOOD, **ODD_AT_IMPORT}, toml=TIMEOUT_TOML)
    listed = cli("list", "--json", cwd=project, timeout=60)
    assert listed.returncode == 0, listed.stderr
    errors = {json.loads(line)["file"]: json.loads(line)["error"] for line in listed.stdout.splitlines()}
    assert errors["flows/good.py"] is None and "flows/thread.py" not in errors  # no flows, no error
    assert errors["flows/loops.py"] == "flows/loops.py:3: import did not finish in 1 s ([project] import_timeout)"
    assert errors["flows/exits.py"].startswith("flows/exits.py:2: ImportExited: os._exit(7)")
    assert errors["flows/interrupts.py"].startswith("flows/interrupts.py:1: KeyboardInterrupt")
    checked = cli("check", cwd=project, timeout=60)
    assert checked.returncode == 2 and checked.stdout.count("\n") == 3, checked.stdout + checked.stderr


def test_run_imports_only_the_file_that_defines_the_flow(tmp_path):
    project = write_project(tmp_path, {"good.py": GOOD, **ODD_AT_IMPORT}, toml=TIMEOUT_TOML)
    ran = cli("run", "good", cwd=project, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert not (project / "flows" / "imported").exists()  # marks.py, found not to define it, was never run
