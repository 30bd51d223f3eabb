"""RunModel folds hand-written event sequences into the tree flow → tasks → mapped children → attempts.

No Dask here: the events are what the engine would publish, so each test reads like a run.
"""

from __future__ import annotations

import datetime as dt

import pytest

from flows_tui.record import events as ev
from flows_tui.record.model import RunModel

RUN = "run-1"
T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def started(run_id: str = RUN) -> ev.FlowRunStarted:
    return ev.FlowRunStarted(run_id, "etl", {"n": 3}, at(0), file="flows/etl.py")


def created(task_run_id: str, task: str, name: str, time: float, map_index: int | None = None,
            upstream: tuple[str, ...] = (), flow_attempt: int = 1) -> ev.TaskRunCreated:
    return ev.TaskRunCreated(RUN, task_run_id, task, name, at(time), map_index, upstream, flow_attempt)


def starts(task_run_id: str, time: float, attempt: int = 1, worker: str | None = None) -> list:
    return [ev.AttemptStarted(RUN, task_run_id, attempt, at(time), worker=worker),
            ev.TaskStateChanged(RUN, task_run_id, "Running", at(time))]


def succeeds(task_run_id: str, start: float, end: float) -> list:
    """One attempt that completes: what the engine publishes for a task that just works."""
    return [*starts(task_run_id, start),
            ev.AttemptEnded(RUN, task_run_id, 1, "Completed", at(end)),
            ev.TaskStateChanged(RUN, task_run_id, "Completed", at(end))]


def fold(*events) -> RunModel:
    """A model fed `events` in order; a list stands for the events of one step."""
    model = RunModel()
    for event in events:
        if isinstance(event, list):
            model.apply_all(event)
        else:
            model.apply(event)
    return model


def map_reduce_run() -> RunModel:
    """download, then clean mapped over three chunks (children finishing out of order), then a reduce."""
    return fold(
        started(),
        ev.FlowStateChanged(RUN, "Running", at(0)),
        created("d", "download", "download-0", 0.1),
        succeeds("d", 0.2, 1.0),
        created("c2", "clean", "clean-2", 1.1, map_index=2, upstream=("d",)),
        created("c0", "clean", "clean-0", 1.1, map_index=0, upstream=("d",)),
        created("c1", "clean", "clean-1", 1.1, map_index=1, upstream=("d",)),
        succeeds("c1", 1.5, 2.0),
        succeeds("c0", 1.2, 3.5),
        succeeds("c2", 1.3, 2.5),
        created("s", "summarize", "summarize-0", 1.2, upstream=("c0", "c1", "c2")),
    )


def test_groups_follow_task_creation_order_and_children_follow_map_index():
    run = map_reduce_run().runs[RUN]
    groups = run.groups()
    assert [g.task for g in groups] == ["download", "clean", "summarize"]
    download, clean, summarize = groups
    assert [t.map_index for t in clean.runs] == [0, 1, 2]
    assert [t.name for t in clean.runs] == ["clean-0", "clean-1", "clean-2"]
    assert clean.is_mapped and not download.is_mapped and not summarize.is_mapped
    assert [t.id for t in download.runs] == ["d"]
    assert summarize.runs[0].upstream == ("c0", "c1", "c2")


def test_a_group_counts_its_states_and_measures_first_start_to_last_end():
    run = map_reduce_run().runs[RUN]
    download, clean, summarize = run.groups()
    assert clean.counts == {"Completed": 3}
    assert (clean.done, clean.total, clean.state) == (3, 3, "Completed")
    assert clean.started == at(1.2) and clean.ended == at(3.5)
    assert clean.duration == pytest.approx(2.3)  # wall time, not the 3.5 s sum of the children
    assert download.duration == pytest.approx(0.8)
    # Created but not started: no time yet, and the group reads Pending.
    assert summarize.state == "Pending" and summarize.duration is None and summarize.ended is None
    assert run.counts() == {"Completed": 4, "Pending": 1}


def test_a_group_has_no_duration_while_a_child_is_still_running():
    model = map_reduce_run()
    model.apply_all([created("c3", "clean", "clean-3", 1.1, map_index=3), *starts("c3", 1.4)])
    clean = model.runs[RUN].groups()[1]
    assert clean.counts == {"Completed": 3, "Running": 1}
    assert clean.state == "Running" and (clean.done, clean.total) == (3, 4)
    assert clean.ended is None and clean.duration is None and clean.started == at(1.2)


def test_retries_keep_each_attempt_with_its_own_times_error_and_traceback():
    model = fold(
        started(),
        created("f", "fetch", "fetch-0", 0),
        starts("f", 1, worker="w1"),
        ev.AttemptEnded(RUN, "f", 1, "Failed", at(2), error="ConnectionError: refused",
                        traceback="Traceback ...\nConnectionError: refused"),
        ev.TaskStateChanged(RUN, "f", "Retrying", at(2), message="attempt 1 Failed: ConnectionError: refused",
                            retry_at=at(7)),
    )
    fetch = model.runs[RUN].task_runs["f"]
    assert fetch.state == "Retrying" and fetch.retry_at == at(7)
    assert fetch.error is None  # not final: nothing to report yet
    assert model.runs[RUN].groups()[0].state == "Retrying"

    model.apply_all([
        *starts("f", 7, attempt=2, worker="w2"),
        ev.AttemptEnded(RUN, "f", 2, "TimedOut", at(9), error="TaskRunTimedOut: after 2s"),
        ev.TaskStateChanged(RUN, "f", "TimedOut", at(9), message="TaskRunTimedOut: after 2s"),
    ])
    assert [(a.number, a.state, a.worker, a.duration) for a in fetch.attempts] == [
        (1, "Failed", "w1", 1.0), (2, "TimedOut", "w2", 2.0)]
    assert fetch.attempts[0].traceback.endswith("ConnectionError: refused")
    assert fetch.attempts[1].traceback is None
    assert fetch.error == "TaskRunTimedOut: after 2s"  # the last attempt's, not the first
    assert fetch.retries == 1 and fetch.duration == 8.0
    assert [state for state, _ in fetch.history] == ["Pending", "Running", "Retrying", "Running", "TimedOut"]
    group = model.runs[RUN].groups()[0]
    assert group.state == "TimedOut" and group.retries == 1 and group.done == 0


def test_error_falls_back_to_the_state_message_and_is_none_on_success():
    model = fold(
        started(),
        created("a", "explode", "explode-0", 0),
        created("b", "after", "after-0", 0, upstream=("a",)),
        starts("a", 0),
        ev.AttemptEnded(RUN, "a", 1, "Failed", at(1), error="RuntimeError: kaboom"),
        ev.TaskStateChanged(RUN, "a", "Failed", at(1), message="RuntimeError: kaboom"),
        ev.TaskStateChanged(RUN, "b", "NotRun", at(1), message="upstream 'explode-0' Failed"),
        ev.FlowStateChanged(RUN, "Failed", at(2), message="1 task run failed", traceback="Traceback ..."),
    )
    run = model.runs[RUN]
    assert run.task_runs["a"].error == "RuntimeError: kaboom"
    assert run.task_runs["b"].error == "upstream 'explode-0' Failed"  # never started: the state says why
    assert run.error == "1 task run failed" and run.traceback == "Traceback ..."
    assert run.groups()[1].state == "NotRun" and run.groups()[1].duration is None

    ok = map_reduce_run()
    ok.apply(ev.FlowStateChanged(RUN, "Completed", at(4)))
    assert ok.runs[RUN].error is None
    assert all(t.error is None for t in ok.runs[RUN].task_runs.values())


def test_a_task_run_crashed_while_waiting_to_retry_reads_the_crash_not_the_attempt_before():
    lost = "lost the Dask scheduler at tcp://127.0.0.1:8786 while the run was in progress"
    model = fold(
        started(),
        created("a", "fetch", "fetch-0", 0),
        starts("a", 0),
        ev.AttemptEnded(RUN, "a", 1, "Failed", at(1), error="ConnectionError: dropped"),
        ev.TaskStateChanged(RUN, "a", "Retrying", at(1), message="attempt 1 Failed: ConnectionError: dropped"),
        ev.TaskStateChanged(RUN, "a", "Crashed", at(2), message=lost),
    )
    task_run = model.runs[RUN].task_runs["a"]
    assert task_run.error == lost
    assert task_run.attempts[0].error == "ConnectionError: dropped"  # the attempt keeps its own


def test_a_flow_retry_starts_a_fresh_tree_and_keeps_the_first_attempt_in_history():
    model = fold(
        started(),
        ev.FlowStateChanged(RUN, "Running", at(0)),
        created("x1", "extract", "extract-0", 0.1),
        starts("x1", 0.1),
        ev.AttemptEnded(RUN, "x1", 1, "Failed", at(0.5), error="ValueError: bad row"),
        ev.TaskStateChanged(RUN, "x1", "Failed", at(0.5), message="ValueError: bad row"),
        ev.FlowStateChanged(RUN, "Retrying", at(0.6), attempt=1, message="1 task run failed; retrying in 1s"),
    )
    run = model.runs[RUN]
    # Waiting out the flow's retry delay: the failed attempt is still what there is to show.
    assert run.state == "Retrying" and run.ended is None
    assert [t.id for t in run.current_task_runs()] == ["x1"]

    model.apply_all([
        ev.FlowStateChanged(RUN, "Running", at(1.6), attempt=2),
        created("x2", "extract", "extract-1", 1.7, flow_attempt=2),
        *succeeds("x2", 1.8, 2.0),
        created("l2", "load", "load-0", 2.1, upstream=("x2",), flow_attempt=2),
        *succeeds("l2", 2.2, 2.4),
        ev.FlowStateChanged(RUN, "Completed", at(2.5), attempt=2),
    ])
    assert run.attempt == 2 and run.state == "Completed" and run.duration == 2.5
    assert [t.id for t in run.current_task_runs()] == ["x2", "l2"]
    assert [(g.task, [t.id for t in g.runs]) for g in run.groups()] == [("extract", ["x2"]), ("load", ["l2"])]
    assert [(g.task, g.state) for g in run.groups(flow_attempt=1)] == [("extract", "Failed")]
    assert run.counts() == {"Failed": 1, "Completed": 2}  # counts() covers every attempt's task runs
    assert [state for state, _ in run.history] == ["Pending", "Running", "Retrying", "Running", "Completed"]


def test_events_of_unknown_runs_and_task_runs_change_nothing():
    model = map_reduce_run()
    before = [(t.id, t.state, len(t.attempts)) for t in model.runs[RUN].task_runs.values()]
    model.apply_all([
        ev.FlowStateChanged("other", "Failed", at(5)),
        ev.TaskRunCreated("other", "z", "zap", "zap-0", at(5)),
        ev.TaskStateChanged("other", "z", "Failed", at(5)),
        ev.TaskStateChanged(RUN, "nope", "Failed", at(5)),
        ev.AttemptStarted(RUN, "nope", 1, at(5)),
        ev.AttemptEnded(RUN, "nope", 1, "Failed", at(5)),
        ev.AttemptEnded(RUN, "d", 7, "Failed", at(5)),  # an attempt never started: ignored
        ev.LogLines(RUN, (ev.LogLine(at(5), 20, "hello"),)),  # logs are not part of the tree
        object(),
    ])
    assert list(model.runs) == [RUN]
    assert [(t.id, t.state, len(t.attempts)) for t in model.runs[RUN].task_runs.values()] == before
    assert model.runs[RUN].task_runs["d"].attempts[0].state == "Completed"


def test_a_run_with_no_tasks_has_no_groups_and_plain_calls_of_one_task_share_a_group():
    model = fold(started(), ev.FlowStateChanged(RUN, "Running", at(0)))
    assert model.runs[RUN].groups() == []
    model.apply_all([created("a", "shout", "shout-0", 1), created("b", "shout", "shout-1", 2)])
    (group,) = model.runs[RUN].groups()
    assert [t.name for t in group.runs] == ["shout-0", "shout-1"] and not group.is_mapped
    assert group.started is None and group.duration is None
