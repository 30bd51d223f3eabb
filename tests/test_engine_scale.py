"""Big maps: every task run is on record with its states and attempts, however the engine packs
what it sends to Dask and keeps per task run."""

from __future__ import annotations

import time

from flows_tui import allow_failure, flow, task
from flows_tui.record.model import RunModel


@task
def inc(x):
    return x + 1


@task
def double(x):
    return 2 * x


@task
def total(values):
    return sum(values)


@task
def boom():
    raise ValueError("boom")


@task
def describe(value):
    return f"got {type(value).__name__}: {value}"


def test_every_task_run_of_a_map_over_a_map_on_worker_processes_is_recorded_with_its_states_and_attempt(
        run, process_client):
    n = 500

    @flow
    def maps(n: int):
        return sum(double.map(inc.map(range(n))).result())

    engine, recorder = run(maps, client=process_client, n=n)
    assert engine.final.name == "Completed" and engine.return_value == sum(2 * (i + 1) for i in range(n))
    run_ = engine.flow_run
    assert run_.counts() == {"Completed": 2 * n}
    by_id = run_.task_runs
    for task_run in by_id.values():
        assert [state for state, _ in task_run.history] == ["Pending", "Running", "Completed"], task_run.name
        [attempt] = task_run.attempts
        assert attempt.state == "Completed" and attempt.worker and attempt.ended >= attempt.started
        assert task_run.name == f"{task_run.task}-{task_run.map_index}"
    doubles = [t for t in by_id.values() if t.task == "double"]
    assert sorted(t.map_index for t in doubles) == list(range(n))
    assert all(by_id[t.upstream[0]].name == f"inc-{t.map_index}" for t in doubles)
    # What every other observer (the store, the UI) folds from the events says the same.
    seen = RunModel()
    seen.apply_all(recorder.events)
    assert {t.id: ([s for s, _ in t.history], len(t.attempts)) for t in seen.runs[engine.run_id].task_runs.values()} \
        == {t.id: ([s for s, _ in t.history], len(t.attempts)) for t in by_id.values()}


def test_elements_of_one_map_with_different_upstreams_each_get_their_own(run, process_client):
    @flow
    def mixed():
        one, two, failed = inc.submit(0), inc.submit(1), boom.submit()
        sums = total.map([[one, two], [3], [two]])  # two upstreams, none, one
        described = describe.map([allow_failure(failed), one, 3])  # only the first may have failed
        return sums.result(), described.result()

    engine, _ = run(mixed, client=process_client)
    sums, described = engine.return_value
    assert sums == [3, 3, 2]
    assert described == ["got ValueError: boom", "got int: 1", "got int: 3"]
    upstream = {t.name: len(t.upstream) for t in engine.flow_run.task_runs.values() if t.task == "total"}
    assert upstream == {"total-0": 2, "total-1": 0, "total-2": 1}
    states = {t.name: t.state for t in engine.flow_run.task_runs.values()}
    assert states["boom-0"] == "Failed" and all(states[f"describe-{i}"] == "Completed" for i in range(3))


def test_results_nothing_can_ask_for_are_let_go_of_during_the_run(run, process_client):
    """As raw Dask drops a map's futures that only fed the next map: the cluster frees them once
    their dependents ran, while a State the body holds still gives its result to a later call."""
    n = 50

    @flow
    def drops(n: int):
        state = inc.submit(200, return_state=True)  # its future is gone, the State stays with the body
        total = sum(double.map(inc.map(range(n))).result())
        return total, describe.submit(state).result()

    engine, _ = run(drops, client=process_client, n=n)
    assert engine.return_value == (sum(2 * (i + 1) for i in range(n)), "got int: 201")
    tracks = {t.name: engine._tracking[t.id] for t in engine.flow_run.task_runs.values()}
    mapped = {tracks[f"inc-{i}"].key for i in range(1, n + 1)}  # inc-0 is the submit of 200
    deadline = time.monotonic() + 30
    while mapped & _held(process_client) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mapped & _held(process_client)
    assert tracks["inc-0"].key in _held(process_client)  # the State's: the run still holds it


def _held(client) -> set:
    return {key for keys in client.has_what().values() for key in keys}
