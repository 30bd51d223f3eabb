"""Task runs outside a flow's engine (inside another task, outside any flow), subflows' wait_for,
and run logs reaching Python's logging: Prefect 3's behaviour, beyond what its own tests check."""

from __future__ import annotations

import logging
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
