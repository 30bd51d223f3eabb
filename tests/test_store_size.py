"""What a big run costs on disk, and journal rows written by an earlier flows-tui still read."""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3

from flows_tui.record import events as ev
from flows_tui.record.store import STORE_NAME, Store, journal

NOW = _dt.datetime.now(_dt.timezone.utc)


def record_map(store: Store, run_id: str, count: int) -> None:
    """A map of `count` task runs as the engine reports it: created, started, ended, in batches."""
    store.record([ev.FlowRunStarted(run_id, "maps", {"n": count}, NOW), ev.FlowStateChanged(run_id, "Running", NOW)])
    store.record([ev.TaskRunCreated(run_id, f"{index:016x}", "inc", f"inc-{index}", NOW, index)
                  for index in range(count)])
    batch: list = []
    for index in range(count):
        task_run_id, when = f"{index:016x}", NOW + _dt.timedelta(milliseconds=index)
        batch += [ev.AttemptStarted(run_id, task_run_id, 1, when, "127.0.0.1:40000"),
                  ev.TaskStateChanged(run_id, task_run_id, "Running", when),
                  ev.AttemptEnded(run_id, task_run_id, 1, "Completed", when),
                  ev.TaskStateChanged(run_id, task_run_id, "Completed", when)]
        if len(batch) >= 400:
            store.record(batch)
            batch = []
    store.record(batch + [ev.FlowStateChanged(run_id, "Completed", NOW)])


def used_bytes(path) -> int:
    """The bytes the store's pages in use take: pages freed by the journal's trim go to the next runs."""
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, size = (c.execute(f"PRAGMA {name}").fetchone()[0]
                             for name in ("page_count", "freelist_count", "page_size"))
    return (pages - free) * size


def test_a_big_map_takes_under_700_bytes_per_task_run_with_every_state_and_attempt(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "GRACE_SECONDS", 0.0)  # at rest: the run ended a minute ago
    store = Store.open(tmp_path)
    record_map(store, "big", 2000)
    store.close()
    with sqlite3.connect(tmp_path / STORE_NAME) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert c.execute("SELECT count(*) FROM task_states").fetchone()[0] == 4000
        assert c.execute("SELECT count(*) FROM attempts WHERE state = 'Completed'").fetchone()[0] == 2000
    run = Store.open(tmp_path).load_run("big")
    assert run.counts() == {"Completed": 2000}
    assert all(len(task_run.attempts) == 1 for task_run in run.task_runs.values())
    size = used_bytes(tmp_path / STORE_NAME)
    assert size / 2000 < 700, f"{size / 2000:.0f} bytes per task run"


def test_journal_rows_in_the_earlier_form_are_still_read(tmp_path):
    store = Store.open(tmp_path)
    older = [["FlowRunStarted", {"run_id": "old", "flow": "etl", "parameters": {}, "time": NOW.isoformat(),
                                 "file": None, "address": None}],
             ["TaskStateChanged", {"run_id": "old", "task_run_id": "t1", "state": "Running",
                                   "time": NOW.isoformat(), "message": None, "retry_at": None}]]
    with sqlite3.connect(tmp_path / STORE_NAME) as c:
        c.execute("INSERT INTO journal (time, writer, events) VALUES (?, ?, ?)", (0.0, None, json.dumps(older)))
    store.record([ev.TaskStateChanged("new", "t2", "Completed", NOW)])
    with sqlite3.connect(tmp_path / STORE_NAME) as c:  # as another process tails it
        c.row_factory = sqlite3.Row
        events = journal.read(c, 0, None, 100).events
    assert events == [ev.FlowRunStarted("old", "etl", {}, NOW), ev.TaskStateChanged("old", "t1", "Running", NOW),
                      ev.TaskStateChanged("new", "t2", "Completed", NOW)]
