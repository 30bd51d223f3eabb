"""A worker's report that never arrives (its worker died between the result and the report): the
task run still ends, with the state its outcome on the cluster holds."""

from __future__ import annotations

from flows_tui import flow, task

from conftest import local_client


@task
def silenced(x):
    """Returns its value, and makes its worker's reports vanish, as a worker dying right after would."""
    from flows_tui.engine.reports import shipper

    shipper()._worker = lambda: None  # the reports queued and to come are never sent
    return x + 1


def test_a_task_run_whose_report_is_lost_ends_with_its_outcome_state(run, caplog):
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
