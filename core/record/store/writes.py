"""How each event is written in the store's tables (inside the caller's transaction)."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sqlite3
from typing import Any, Callable

from flows_tui.record import events as ev
from flows_tui.states import CRASHED, FINAL_STATES, PENDING, RUNNING

from .owners import Owner
from .rows import iso, to_json


def flow_run_started(c: sqlite3.Connection, e: ev.FlowRunStarted, owner: Owner, replace: bool = True) -> None:
    c.execute(f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO runs (run_id, flow, file, address, "
              "cluster, parameters, state, started, owner_host, owner_pid, owner_started, owner_command) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              (e.run_id, e.flow, e.file, e.address, e.cluster, to_json(e.parameters), PENDING, iso(e.time),
               owner.host, owner.pid, owner.started, owner.command))


def flow_state_changed(c: sqlite3.Connection, e: ev.FlowStateChanged, owner: Owner) -> None:
    final = e.state in FINAL_STATES
    c.execute("UPDATE runs SET state = ?, attempt = ?, message = ?, traceback = ?, ended = ? WHERE run_id = ?",
              (e.state, e.attempt, e.message, e.traceback, iso(e.time) if final else None, e.run_id))
    c.execute("INSERT INTO run_states (run_id, state, time, attempt, message) VALUES (?, ?, ?, ?, ?)",
              (e.run_id, e.state, iso(e.time), e.attempt, e.message))


def task_run_created(c: sqlite3.Connection, e: ev.TaskRunCreated, owner: Owner) -> None:
    c.execute("INSERT OR REPLACE INTO task_runs (task_run_id, run_id, task, name, map_index, upstream, "
              "flow_attempt, state, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
              (e.task_run_id, e.run_id, e.task, e.name, e.map_index, json.dumps(list(e.upstream)),
               e.flow_attempt, PENDING, iso(e.time)))


def task_state_changed(c: sqlite3.Connection, e: ev.TaskStateChanged, owner: Owner) -> None:
    final = e.state in FINAL_STATES
    c.execute("UPDATE task_runs SET state = ?, message = ?, retry_at = ?, ended = ? WHERE task_run_id = ?",
              (e.state, e.message, iso(e.retry_at), iso(e.time) if final else None, e.task_run_id))
    c.execute("INSERT INTO task_states (task_run_id, run_id, state, time, message, retry_at) "
              "VALUES (?, ?, ?, ?, ?, ?)",
              (e.task_run_id, e.run_id, e.state, iso(e.time), e.message, iso(e.retry_at)))


def attempt_started(c: sqlite3.Connection, e: ev.AttemptStarted, owner: Owner) -> None:
    c.execute("INSERT OR REPLACE INTO attempts (task_run_id, attempt, run_id, state, started, worker) "
              "VALUES (?, ?, ?, ?, ?, ?)", (e.task_run_id, e.attempt, e.run_id, RUNNING, iso(e.time), e.worker))


def attempt_ended(c: sqlite3.Connection, e: ev.AttemptEnded, owner: Owner) -> None:
    updated = c.execute("UPDATE attempts SET state = ?, ended = ?, error = ?, traceback = ? "
                        "WHERE task_run_id = ? AND attempt = ?",
                        (e.state, iso(e.time), e.error, e.traceback, e.task_run_id, e.attempt)).rowcount
    if not updated:
        c.execute("INSERT INTO attempts (task_run_id, attempt, run_id, state, started, ended, error, traceback) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (e.task_run_id, e.attempt, e.run_id, e.state, iso(e.time), iso(e.time), e.error, e.traceback))


def log_lines(c: sqlite3.Connection, e: ev.LogLines, owner: Owner) -> tuple[int, int]:
    """Returns the ids of the lines' rows, first and last (one writer at a time: consecutive)."""
    c.executemany("INSERT INTO logs (run_id, task_run_id, attempt, time, level, logger, message) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                  [(e.run_id, line.task_run_id, line.attempt, iso(line.time), line.level, line.logger,
                    line.message) for line in e.lines])
    last = c.execute("SELECT last_insert_rowid()").fetchone()[0]
    return last - len(e.lines) + 1, last


def run_crashed(c: sqlite3.Connection, run_id: str, reason: str, when: _dt.datetime) -> list[tuple[Any, Any]]:
    """Mark a run in flight Crashed with its open task runs and attempts, and say so in its log;
    returns what changed as (event, what its writer returned) pairs for the journal (none if the run
    had ended already: another process recovered it first)."""
    row = c.execute("SELECT attempt FROM runs WHERE run_id = ? AND ended IS NULL", (run_id,)).fetchone()
    if row is None:
        return []
    at = iso(when)
    changes: list = [ev.AttemptEnded(run_id, r["task_run_id"], r["attempt"], CRASHED, when, reason) for r in c.execute(
        "SELECT task_run_id, attempt FROM attempts WHERE run_id = ? AND ended IS NULL", (run_id,))]
    c.execute("UPDATE attempts SET state = ?, ended = ?, error = ? WHERE run_id = ? AND ended IS NULL",
              (CRASHED, at, reason, run_id))
    open_tasks = [r["task_run_id"] for r in c.execute(
        "SELECT task_run_id FROM task_runs WHERE run_id = ? AND ended IS NULL", (run_id,))]
    changes += [ev.TaskStateChanged(run_id, task_run_id, CRASHED, when, reason) for task_run_id in open_tasks]
    c.executemany("INSERT INTO task_states (task_run_id, run_id, state, time, message) "
                  "VALUES (?, ?, ?, ?, ?)", [(t, run_id, CRASHED, at, reason) for t in open_tasks])
    c.execute("UPDATE task_runs SET state = ?, message = ?, ended = ? WHERE run_id = ? AND ended IS NULL",
              (CRASHED, reason, at, run_id))
    c.execute("UPDATE runs SET state = ?, message = ?, ended = ? WHERE run_id = ?",
              (CRASHED, reason, at, run_id))
    c.execute("INSERT INTO run_states (run_id, state, time, attempt, message) VALUES (?, ?, ?, ?, ?)",
              (run_id, CRASHED, at, row["attempt"], reason))
    changes.append(ev.FlowStateChanged(run_id, CRASHED, when, row["attempt"], reason))
    said = ev.LogLines(run_id, (ev.LogLine(when, logging.ERROR, f"flow run ended Crashed: {reason}",
                                           logger="flows_tui"),))
    return [(event, None) for event in changes] + [(said, log_lines(c, said, None))]


def write_batch(c: sqlite3.Connection, events: list, owner: Owner) -> list:
    """Write a batch of events; returns what each writer returned, in the batch's order.

    The task runs' events, most of a big run's, go as one statement per kind for the whole
    batch (executemany) rather than one or two per event: a 10,000-task run's batches hold
    thousands of them. Kinds go in an order that keeps every row's changes in sequence: a
    task run is created before its states change, an attempt starts before it ends, and
    within a kind the batch's order holds.
    """
    written: list = [None] * len(events)
    by_kind: dict[type, list] = {}
    for index, event in enumerate(events):
        by_kind.setdefault(type(event), []).append(index)
    for kind in _BATCH_ORDER:
        indices = by_kind.pop(kind, None)
        if indices:
            _BATCHED[kind](c, [events[index] for index in indices])
    for indices in by_kind.values():
        for index in indices:
            written[index] = WRITERS[type(events[index])](c, events[index], owner)
    return written


def _task_runs_created(c: sqlite3.Connection, events: list) -> None:
    c.executemany("INSERT OR REPLACE INTO task_runs (task_run_id, run_id, task, name, map_index, upstream, "
                  "flow_attempt, state, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  [(e.task_run_id, e.run_id, e.task, e.name, e.map_index, json.dumps(list(e.upstream)),
                    e.flow_attempt, PENDING, iso(e.time)) for e in events])


def _attempts_started(c: sqlite3.Connection, events: list) -> None:
    c.executemany("INSERT OR REPLACE INTO attempts (task_run_id, attempt, run_id, state, started, worker) "
                  "VALUES (?, ?, ?, ?, ?, ?)",
                  [(e.task_run_id, e.attempt, e.run_id, RUNNING, iso(e.time), e.worker) for e in events])


def _attempts_ended(c: sqlite3.Connection, events: list) -> None:
    # An attempt whose start was never recorded (a crash found later) gets a row of its own.
    c.executemany("INSERT INTO attempts (task_run_id, attempt, run_id, state, started, ended, error, traceback) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_run_id, attempt) DO UPDATE SET "
                  "state = excluded.state, ended = excluded.ended, error = excluded.error, "
                  "traceback = excluded.traceback",
                  [(e.task_run_id, e.attempt, e.run_id, e.state, when, when, e.error, e.traceback)
                   for e in events for when in (iso(e.time),)])


def _task_states_changed(c: sqlite3.Connection, events: list) -> None:
    rows = [(e, iso(e.time), iso(e.retry_at)) for e in events]
    c.executemany("UPDATE task_runs SET state = ?, message = ?, retry_at = ?, ended = ? WHERE task_run_id = ?",
                  [(e.state, e.message, retry_at, when if e.state in FINAL_STATES else None, e.task_run_id)
                   for e, when, retry_at in rows])
    c.executemany("INSERT INTO task_states (task_run_id, run_id, state, time, message, retry_at) "
                  "VALUES (?, ?, ?, ?, ?, ?)",
                  [(e.task_run_id, e.run_id, e.state, when, e.message, retry_at) for e, when, retry_at in rows])


WRITERS: dict[type, Callable[[sqlite3.Connection, Any, Owner], Any]] = {
    ev.FlowRunStarted: flow_run_started,
    ev.FlowStateChanged: flow_state_changed,
    ev.TaskRunCreated: task_run_created,
    ev.TaskStateChanged: task_state_changed,
    ev.AttemptStarted: attempt_started,
    ev.AttemptEnded: attempt_ended,
    ev.LogLines: log_lines,
}

# The task runs' kinds, batched, in this order; what else a batch holds (a flow run's start and
# states, log lines) is written event by event after them, in the batch's order.
_BATCHED: dict[type, Callable[[sqlite3.Connection, list], None]] = {
    ev.TaskRunCreated: _task_runs_created,
    ev.AttemptStarted: _attempts_started,
    ev.AttemptEnded: _attempts_ended,
    ev.TaskStateChanged: _task_states_changed,
}
_BATCH_ORDER = (ev.TaskRunCreated, ev.AttemptStarted, ev.AttemptEnded, ev.TaskStateChanged)
