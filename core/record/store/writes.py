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
              "parameters, state, started, owner_host, owner_pid, owner_started, owner_command) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              (e.run_id, e.flow, e.file, e.address, to_json(e.parameters), PENDING, iso(e.time), owner.host,
               owner.pid, owner.started, owner.command))


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


WRITERS: dict[type, Callable[[sqlite3.Connection, Any, Owner], Any]] = {
    ev.FlowRunStarted: flow_run_started,
    ev.FlowStateChanged: flow_state_changed,
    ev.TaskRunCreated: task_run_created,
    ev.TaskStateChanged: task_state_changed,
    ev.AttemptStarted: attempt_started,
    ev.AttemptEnded: attempt_ended,
    ev.LogLines: log_lines,
}
