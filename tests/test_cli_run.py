"""`flows-tui run` as a user types it: progress, summary, exit codes, the JSON document."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import PROCESS_CLUSTER_TOML, ROOT, cli, write_project

FLOWS = """
    import datetime
    from typing import Literal
    from flows_tui import flow, task, get_run_logger

    @task(retries=1, retry_delay_seconds=0)
    def shout(word: str, times: int) -> str:
        get_run_logger().info("shouting %s", word)
        return (word.upper() + "!") * times

    @task
    def explode():
        raise RuntimeError("kaboom")

    @task
    def after(value):
        return value

    @flow(name="greet")
    def greet(word: str = "hi", times: int = 1, day: datetime.date = datetime.date(2024, 1, 1),
              mode: Literal["loud", "quiet"] = "loud"):
        return shout(word, times)

    @flow(name="broken")
    def broken():
        after.submit(explode.submit())
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, {"greetings.py": FLOWS})


def test_a_completed_run_exits_0_and_prints_a_summary_with_logs(project):
    result = cli("run", "greet", "-p", "word=hey", "-p", "times=2", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "shouting hey" in result.stdout
    assert "✓ Completed" in result.stdout and "greet" in result.stdout


def test_the_json_document_has_specs_shape(project):
    result = cli("run", "broken", "--json", cwd=project)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert set(document) == {"run_id", "flow", "state", "parameters", "started", "ended", "tasks"}
    assert document["flow"] == "broken" and document["state"] == "Failed"
    tasks = {t["name"]: t for t in document["tasks"]}
    assert tasks["explode-0"]["state"] == "Failed" and tasks["explode-0"]["error"] == "RuntimeError: kaboom"
    assert tasks["explode-0"]["attempts"] == 1 and tasks["explode-0"]["map_index"] is None
    assert tasks["after-0"]["state"] == "NotRun" and tasks["after-0"]["upstream"] == [tasks["explode-0"]["id"]]
    assert set(tasks["after-0"]) == {"id", "name", "task", "map_index", "state", "attempts", "error", "upstream"}
    assert tasks["after-0"]["task"] == "after"
    assert document["started"] < document["ended"]


def test_why_a_run_failed_is_in_its_log_and_in_runs_json(project):
    failed = json.loads(cli("run", "broken", "--json", cwd=project).stdout)
    errors = cli("logs", failed["run_id"], "--level", "ERROR", cwd=project)
    assert errors.returncode == 0, errors.stderr
    lines = errors.stdout.splitlines()
    assert any("explode-0" in line and "attempt 1 Failed: RuntimeError: kaboom" in line for line in lines)
    assert any("flow run" in line and "ended Failed" in line for line in lines)
    assert 'raise RuntimeError("kaboom")' in errors.stdout  # the first failure's traceback, at the run's end
    listed = json.loads(cli("runs", "--json", cwd=project).stdout.splitlines()[0])
    assert listed["error"] == "RuntimeError: kaboom"
    assert listed["owner"]["command"] == "flows-tui run broken --json" and listed["owner"]["pid"] > 0


def test_parameters_from_the_command_line_are_converted_to_their_types(project):
    result = cli("run", "greet", "-p", "times=3", "-p", "day=2024-02-29", "-p", "mode=quiet", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["parameters"] == {"word": "hi", "times": 3, "day": "2024-02-29", "mode": "quiet"}


@pytest.mark.parametrize("argument, words", [
    ("times=three", ["times", "three"]),
    ("day=2024-13-01", ["day"]),
    ("mode=shouty", ["mode", "shouty"]),
    ("colour=red", ["colour"]),
])
def test_a_bad_parameter_exits_2_naming_it_before_anything_runs(project, argument, words):
    result = cli("run", "greet", "-p", argument, cwd=project)
    assert result.returncode == 2
    assert all(word in result.stderr for word in words), result.stderr
    assert "Traceback" not in result.stderr
    assert "flow run" not in result.stdout


def test_an_unknown_flow_exits_2_and_suggests_the_closest(project):
    result = cli("run", "gret", cwd=project)
    assert result.returncode == 2
    assert "'greet'" in result.stderr


def test_a_flow_file_that_fails_to_import_exits_2_with_file_and_line(project):
    (project / "flows" / "greetings.py").write_text("from flows_tui import flow\n\n@flow\ndef x(:\n    pass\n")
    result = cli("run", "greetings.py:x", cwd=project / "flows")
    assert result.returncode == 2
    assert "greetings.py:4" in result.stderr and "SyntaxError" in result.stderr


def test_a_bad_config_exits_2_naming_the_key_and_line(project):
    (project / "flows.toml").write_text("[project]\nflows_dir = \"flows\"\n\n[cluster]\nn_worker = 2\n")
    result = cli("run", "greet", cwd=project)
    assert result.returncode == 2
    assert "flows.toml:5" in result.stderr and "n_worker" in result.stderr and "n_workers" in result.stderr


def test_file_colon_function_selects_a_flow(project):
    result = cli("run", "flows/greetings.py:greet", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["flow"] == "greet"


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    """The repository's sample_flows and flows.toml, copied: the runs leave the repository's own history alone."""
    shutil.copytree(ROOT / "sample_flows", tmp_path / "sample_flows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "flows.toml", tmp_path / "flows.toml")
    return tmp_path


def test_the_bundled_map_reduce_sample_runs_on_an_embedded_process_cluster(bundled):
    result = cli("run", "map_reduce", "-p", "n=50", "--json", cwd=bundled)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["state"] == "Completed" and len(document["tasks"]) == 151


def test_the_bundled_taxi_sample_logs_the_best_rows(bundled):
    result = cli("run", "taxi_tips", "-p", "rows=3000", "-p", "failure_rate=0", "--json", cwd=bundled)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    clean = [t for t in document["tasks"] if t["name"].startswith("clean")]
    assert len(clean) == 24 and all(t["state"] == "Completed" for t in clean)
    assert "most generous hour" in result.stderr


def test_a_flow_file_named_like_a_standard_module_runs_on_worker_processes(tmp_path):
    # numbers.py beside the flows must not replace the standard `numbers` (Dask imports it) in
    # the worker processes, which start with the command's sys.path.
    write_project(tmp_path, {"numbers.py": """
        from flows_tui import flow, task

        @task
        def double(x):
            return 2 * x

        @flow
        def numbers_flow():
            return sum(double.map(range(4)).result())
    """}, toml=PROCESS_CLUSTER_TOML)
    result = cli("run", "numbers_flow", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["state"] == "Completed"
