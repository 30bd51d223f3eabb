"""Task runs outside a flow's engine (inside another task, outside any flow), subflows' wait_for,
and run logs reaching Python's logging: Prefect 3's behaviour, beyond what its own tests check."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from flows_tui import flow, get_run_logger, task
from flows_tui.cache_policies import INPUTS
from flows_tui.states import NOT_RUN


@pytest.fixture(autouse=True)
def _project(monkeypatch, tmp_path, prefect_cluster_address):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", prefect_cluster_address)
    monkeypatch.chdir(tmp_path)


def test_a_task_outside_any_flow_is_cached_in_the_projects_state_dir(tmp_path: Path):
    calls = []

    @task(cache_policy=INPUTS)
    def double(x):
        calls.append(x)
        return 2 * x

    assert double(21) == 42
    assert double(21) == 42
    assert calls == [21]
    assert len(list((tmp_path / ".flows-tui" / "cache").glob("*.result"))) == 1


def test_a_task_outside_any_flow_retries_and_returns_its_state():
    attempts = []

    @task(retries=2)
    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError("not yet")
        return "done"

    state = flaky(return_state=True)
    assert state.is_completed() and state.result() == "done"
    assert len(attempts) == 3


def test_a_subflow_waiting_for_a_failed_task_does_not_run():
    ran = []

    @task
    def fails():
        raise ValueError("boom")

    @flow
    def child():
        ran.append(1)

    @flow(fail_on_unhandled_task_failures=False)
    def parent():
        upstream = fails.submit()
        state = child(wait_for=[upstream], return_state=True)
        return state.name, state.message

    name, message = parent()
    assert name == NOT_RUN
    assert "upstream in wait_for ended Failed" in message
    assert ran == []


def test_run_log_lines_reach_python_logging_under_the_run_loggers(caplog):
    @task(log_prints=True)
    def inner():
        get_run_logger().warning("from the task")
        print("printed in the task")

    @flow
    def outer():
        get_run_logger().warning("from the flow")
        inner()

    with caplog.at_level(logging.INFO):
        outer()
    names = {record.getMessage(): record.name for record in caplog.records}
    assert names["from the flow"] == "flows_tui.flow_runs"
    assert names["from the task"] == "flows_tui.task_runs"
    assert names["printed in the task"] == "flows_tui.task_runs"


STOPPED: list[bool] = []


def record_stop(*args, **kwargs) -> None:
    STOPPED.append(True)


def test_breakpoint_in_a_task_called_outside_any_flow_stops_there(monkeypatch):
    # The caller's terminal is right there: breakpoint() calls the debugger PYTHONBREAKPOINT names.
    monkeypatch.setenv("PYTHONBREAKPOINT", f"{__name__}.record_stop")
    STOPPED.clear()

    @task
    def debug_me():
        breakpoint()
        return 1

    assert debug_me() == 1
    assert STOPPED == [True]


class Unpicklable(Exception):
    """An error holding a lock: it could not cross a process, and from a direct call it need not."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def test_a_task_called_outside_any_flow_runs_at_once_in_the_callers_thread_needing_no_cluster(
        monkeypatch, tmp_path: Path):
    # No cluster anywhere: an address where nothing listens, and no flows.toml.
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:9")
    raised = []

    @task(retries=1)
    def where(fail: bool = False):
        if fail:
            raised.append(Unpicklable("as raised"))
            raise raised[-1]
        return threading.get_ident()

    assert where() == threading.get_ident()
    with pytest.raises(Unpicklable) as info:  # the task's own exception, as from any call
        where(fail=True)
    assert info.value is raised[-1] and len(raised) == 2  # its retry ran too
    assert where.fn() == threading.get_ident()
    # Nothing recorded: no store, no state directory; only a task with cache options writes its result.
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_in_a_task_called_outside_any_flow_stops_it_at_once_without_retrying():
    attempts = []

    @task(retries=3)
    def interrupted():
        attempts.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert attempts == [1]


def test_delay_runs_the_task_in_the_background_and_returns_its_future():
    started = threading.Event()
    release = threading.Event()

    @task
    def add(x, y):
        started.set()
        assert release.wait(10)
        return x + y

    future = add.delay(1, y=2)
    assert started.wait(10) and not future.done()  # delay() returned while the task runs
    release.set()
    assert future.result(timeout=10) == 3
    assert add.apply_async((2, 3)).result(timeout=10) == 5


def test_bad_parameters_from_python_are_a_failed_run_recorded_with_its_hooks_and_no_cluster(monkeypatch, tmp_path):
    from flows_tui.errors import ParameterError
    from flows_tui.record.store import Store

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:9")  # nothing listens: none is needed
    seen = []

    @flow(on_failure=[lambda flow, flow_run, state: seen.append((flow_run.id, state.name, state.message))])
    def needs_int(x: int):
        seen.append("the body ran")

    with pytest.raises(ParameterError, match="parameter 'x'"):
        needs_int(x="many")
    state = needs_int(x="many", return_state=True)
    assert state.is_failed() and "parameter 'x'" in state.message
    runs = Store.open(tmp_path / ".flows-tui").runs()
    assert [(run.flow, run.state) for run in runs] == [("needs-int", "Failed")] * 2
    assert sorted(seen) == sorted((run.run_id, "Failed", state.message) for run in runs)


def test_from_source_loads_a_flow_from_a_folder_a_module_path_or_a_git_repository(tmp_path):
    import subprocess
    import sys

    from flows_tui import Flow

    repo = tmp_path / "repo.git"  # a name ending in .git: cloned, as a URL would be
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "jobs.py").write_text(
        "from flows_tui import flow\n\n@flow\ndef nightly(x: int = 1):\n    return x * 2\n")
    loaded = Flow.from_source(str(repo / "pkg"), "jobs.py:nightly")
    assert loaded.name == "nightly" and loaded(x=3) == 6
    assert loaded.to_deployment("n", interval=60).storage == str(repo / "pkg")
    path_before = list(sys.path)
    assert Flow.from_source(repo.parent / "repo.git", "pkg.jobs.nightly").name == "nightly"
    assert sys.path == path_before
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    if subprocess.run(git[:1] + ["--version"], capture_output=True).returncode == 0:
        for step in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "flows"]):
            subprocess.run(git + step, check=True, capture_output=True)
        cloned = Flow.from_source(str(repo), "pkg/jobs.py:nightly")
        assert cloned.name == "nightly" and repo not in Path(cloned.file).parents
    with pytest.raises(ValueError, match="'missing' is missing"):
        Flow.from_source(str(repo / "pkg"), "jobs.py:missing")
