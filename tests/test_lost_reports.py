"""A worker's report that never arrives (its worker died between the result and the report): the
task run still ends, with the state its outcome on the cluster holds; a report that comes after
all adds its attempt to the record and changes nothing else."""

from __future__ import annotations

import threading
import time

import pytest

from flows_tui import flow, task
from flows_tui.context import flow_run_var
from flows_tui.engine import dask_watch

from conftest import local_client


@task
def silenced(x, late_after=None):
    """Returns its value with its worker's reports held back (as a dying worker's would be lost),
    or, with `late_after`, sent that many seconds later."""
    from flows_tui.engine.reports import shipper

    reports = shipper()
    reports.flush = lambda: None  # what is queued now and later stays queued

    def send_late() -> None:
        del reports.flush
        reports.flush()

    if late_after is not None:
        threading.Timer(late_after, send_late).start()
    return x + 1


@pytest.fixture
def short_silence(monkeypatch):
    monkeypatch.setattr(dask_watch, "REPORT_QUIET_SECONDS", 1.0)


def test_a_task_run_whose_report_is_lost_ends_with_its_outcome_state(run, caplog, short_silence):
    @flow
    def lose_a_report():
        return silenced(1)

    with local_client(processes=False, threads_per_worker=1, n_workers=1) as client:
        engine, _ = run(lose_a_report, client=client)
    assert engine.final.name == "Completed"
    assert engine.return_value == 2
    [task_run] = engine.flow_run.task_runs.values()
    assert task_run.state == "Completed"
    assert "took its outcome from the cluster" in caplog.text


def test_a_report_that_comes_after_its_outcome_was_taken_adds_only_its_attempt(run, short_silence):
    @flow
    def report_late():
        value = silenced(1, late_after=3.0)
        engine = flow_run_var.get()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the body goes on until the late report is in
            if any(t.attempts for t in engine.flow_run.task_runs.values()):
                break
            time.sleep(0.05)
        return value

    with local_client(processes=False, threads_per_worker=1, n_workers=1) as client:
        engine, _ = run(report_late, client=client)
    assert engine.final.name == "Completed"
    [task_run] = engine.flow_run.task_runs.values()
    assert [state for state, _ in task_run.history] == ["Pending", "Completed"]
    assert [(a.number, a.state) for a in task_run.attempts] == [(1, "Completed")]
