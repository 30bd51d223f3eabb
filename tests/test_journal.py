"""The store as the project's journal: what one process commits, another tails and folds the same."""

from __future__ import annotations

import datetime as _dt
import os
import signal
import subprocess
import sqlite3
import sys

from conftest import wait_until, write_project
from flows_tui.record import events as ev
from flows_tui.record.model import RunModel
from flows_tui.record.store import Store
from flows_tui.record.tail import JournalTail
from test_store import _run_recorded


def _as_other_process(store: Store) -> Store:
    """A second Store on the same file whose writes this process's tail reads as another process's."""
    store._writer_name = "elsewhere:1"
    return store


def _tail(store: Store) -> tuple[JournalTail, RunModel, list]:
    model, batches = RunModel(), []

    def fold(events: list) -> None:
        batches.append(events)
        model.apply_all(events)

    return JournalTail(store, fold, interval=0.01), model, batches


def test_a_tail_folds_another_writers_run_into_the_same_tree_as_the_store_rebuilds(tmp_path, thread_client):
    reader = Store.open(tmp_path)
    tail, model, _ = _tail(reader)
    tail.start()
    try:
        writer = _as_other_process(Store.open(tmp_path))
        engine, _ = _run_recorded(writer, thread_client)
        wait_until(lambda: engine.run_id in model.runs and model.runs[engine.run_id].ended is not None,
                   message="the other writer's run reached the tail")
    finally:
        tail.stop()
    live, rebuilt = model.runs[engine.run_id], reader.load_run(engine.run_id)
    assert live.state == rebuilt.state == engine.flow_run.state
    assert {t.name: (t.state, len(t.attempts)) for t in live.task_runs.values()} == \
        {t.name: (t.state, len(t.attempts)) for t in rebuilt.task_runs.values()}


def test_a_tail_skips_what_its_own_process_recorded(tmp_path, thread_client):
    store = Store.open(tmp_path)
    tail, model, batches = _tail(store)
    tail.start()
    try:
        engine, _ = _run_recorded(store, thread_client)
        tail.poll()
    finally:
        tail.stop()
    assert engine.run_id not in model.runs and not batches
    assert store.journal_head() > 0


def test_log_lines_reach_a_tail_with_their_ids_in_order_none_lost(tmp_path):
    writer = _as_other_process(Store.open(tmp_path))
    reader = Store.open(tmp_path)
    tail, model, batches = _tail(reader)
    now = _dt.datetime.now(_dt.timezone.utc)
    writer.record([ev.FlowRunStarted("r1", "f", {}, now)])
    tail._catch_up()
    for chunk in range(5):
        writer.record([ev.LogLines("r1", tuple(ev.LogLine(now, 20, f"line {chunk * 10 + i}") for i in range(10)))])
    tail.poll()
    lines = [line for batch in batches for e in batch if type(e) is ev.LogLines for line in e.lines]
    assert [line.message for line in lines] == [f"line {i}" for i in range(50)]
    assert [line.id for line in lines] == sorted(line.id for line in lines)


def test_a_run_met_midway_is_rebuilt_once_and_not_applied_twice(tmp_path):
    writer = _as_other_process(Store.open(tmp_path))
    reader = Store.open(tmp_path)
    now = _dt.datetime.now(_dt.timezone.utc)
    writer.record([ev.FlowRunStarted("r1", "f", {}, now), ev.TaskRunCreated("r1", "t1", "t", "t-0", now)])
    tail, model, _ = _tail(reader)
    tail.last = reader.journal_head()  # as if it started after the run did, and skipped its catch-up
    writer.record([ev.AttemptStarted("r1", "t1", 1, now)])
    writer.record([ev.AttemptEnded("r1", "t1", 1, "Completed", now)])
    tail.poll()
    writer.record([ev.TaskStateChanged("r1", "t1", "Completed", now)])
    tail.poll()
    task_run = model.runs["r1"].task_runs["t1"]
    assert [a.state for a in task_run.attempts] == ["Completed"] and task_run.state == "Completed"


FLOWS = {"slow.py": """
import time
from flows_tui import flow, task

@task
def nap(i: int) -> int:
    time.sleep(30)
    return i

@flow(name="slow")
def slow():
    nap.map(range(2))
"""}


def test_the_owner_killed_while_watched_shows_crashed_by_the_next_recovery(tmp_path):
    root = write_project(tmp_path, FLOWS)
    owner = subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "run", "slow"], cwd=root,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        reader = Store.open(root / ".flows-tui")
        tail, model, _ = _tail(reader)
        tail.start()
        wait_until(lambda: any(len(run.task_runs) == 2 for run in model.runs.values()), timeout=60,
                   message="the other process's run and its task runs reached the tail")
        os.killpg(owner.pid, signal.SIGKILL)
        owner.wait(10)
        wait_until(lambda: reader.recover(), message="the run was found orphaned")
        wait_until(lambda: all(run.state == "Crashed" for run in model.runs.values()),
                   message="the tail saw it Crashed")
        tail.stop()
        run = next(iter(model.runs.values()))
        assert {t.state for t in run.task_runs.values()} == {"Crashed"}
    finally:
        if owner.poll() is None:
            os.killpg(owner.pid, signal.SIGKILL)


def test_a_store_at_rest_keeps_only_the_journals_last_minute_and_a_tail_behind_a_trim_reloads(tmp_path, monkeypatch):
    from flows_tui.record.store import journal

    now = _dt.datetime.now(_dt.timezone.utc)
    reader = Store.open(tmp_path)
    tail, model, _ = _tail(reader)
    writer = _as_other_process(Store.open(tmp_path))
    writer.record([ev.FlowRunStarted("a", "etl", {}, now), ev.FlowStateChanged("a", "Running", now)])
    tail.last = reader.journal_head()  # as a tail that read the run's start and then fell behind
    writer.record([ev.TaskRunCreated("a", "t1", "inc", "inc-0", now, 0)])
    writer.record([ev.FlowRunStarted("b", "etl", {}, now)])
    monkeypatch.setattr(journal, "GRACE_SECONDS", 0.0)  # as a minute after: "a" ends, the journal is trimmed
    writer.record([ev.TaskStateChanged("a", "t1", "Completed", now), ev.FlowStateChanged("a", "Completed", now)])
    with sqlite3.connect(tmp_path / "flows-tui.db") as c:
        assert c.execute("SELECT count(*) FROM journal").fetchone()[0] == 1  # the last row, for the tails
    tail.poll()  # rows it had not read are gone: it rebuilds what is in flight from the tables
    assert set(model.runs) == {"b"}
    writer.record([ev.FlowStateChanged("b", "Running", now)])
    tail.poll()
    assert model.runs["b"].state == "Running"
