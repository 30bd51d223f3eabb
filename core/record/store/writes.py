"""How each event is written in the store's tables (inside the caller's transaction).

The task runs' rows are compact (see `compact`): a run's rows refer to it by its integer id and
count their times from its start, read once per transaction (`compact.Runs`). Events of a run
or task run the store has no row for (its start was not recorded) are left out of the tables;
the journal still carries them to the tails.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sqlite3
from typing import Any, Callable

from flows_tui.record import events as ev
from flows_tui.states import CRASHED, FINAL_STATES, PENDING, RUNNING

from .compact import NAME_ID, Runs, code, intern, micros, short_name
from .owners import Owner
from .rows import iso, to_json

_TASK_ID = "(SELECT id FROM task_runs WHERE task_run_id = ?)"
_NEXT_STATE = "coalesce((SELECT max(n) FROM task_states WHERE task = task_runs.id), 0) + 1"


def flow_run_started(c: sqlite3.Connection, e: ev.FlowRunStarted, owner: Owner, replace: bool = True,
                     runs: Runs | None = None) -> None:
    # An upsert, not a REPLACE: the run keeps its integer id, which its task runs' rows refer to.
    update = ("DO UPDATE SET flow = excluded.flow, file = excluded.file, address = excluded.address, "
              "cluster = excluded.cluster, parameters = excluded.parameters, state = excluded.state, attempt = 1, "
              "started = excluded.started, ended = NULL, message = NULL, traceback = NULL, error = NULL, "
              "owner_host = excluded.owner_host, owner_pid = excluded.owner_pid, "
              "owner_started = excluded.owner_started, owner_command = excluded.owner_command") if replace else "DO NOTHING"
    c.execute("INSERT INTO runs (run_id, flow, file, address, cluster, parameters, state, started, owner_host, "
              f"owner_pid, owner_started, owner_command) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
              f"ON CONFLICT (run_id) {update}",
              (e.run_id, e.flow, e.file, e.address, e.cluster, to_json(e.parameters), PENDING, iso(e.time),
               owner.host, owner.pid, owner.started, owner.command))
    if runs is not None:
        runs.forget(e.run_id)


def flow_state_changed(c: sqlite3.Connection, e: ev.FlowStateChanged, owner: Owner, runs: Runs | None = None) -> None:
    final = e.state in FINAL_STATES
    c.execute("UPDATE runs SET state = ?, attempt = ?, message = ?, traceback = ?, ended = ? WHERE run_id = ?",
              (e.state, e.attempt, e.message, e.traceback, iso(e.time) if final else None, e.run_id))
    c.execute("INSERT INTO run_states (run_id, state, time, attempt, message) VALUES (?, ?, ?, ?, ?)",
              (e.run_id, e.state, iso(e.time), e.attempt, e.message))


def log_lines(c: sqlite3.Connection, e: ev.LogLines, owner: Owner | None, runs: Runs | None = None) -> tuple[int, int]:
    """Returns the ids of the lines' rows, first and last (one writer at a time: consecutive)."""
    run = (runs or Runs(c)).get(e.run_id)
    if run is None or not e.lines:  # nobody's history: an empty range
        return 1, 0
    run_key, base = run
    intern(c, (line.logger for line in e.lines))
    c.executemany(f"INSERT INTO logs (run, task, attempt, time, level, logger, message) "
                  f"VALUES (?, {_TASK_ID}, ?, ?, ?, {NAME_ID}, ?)",
                  [(run_key, line.task_run_id, line.attempt, micros(line.time) - base, line.level, line.logger,
                    line.message) for line in e.lines])
    last = c.execute("SELECT last_insert_rowid()").fetchone()[0]
    return last - len(e.lines) + 1, last


def _task_runs_created(c: sqlite3.Connection, events: list, runs: Runs) -> None:
    rows = []
    for e in events:
        run = runs.get(e.run_id)
        if run is not None:
            rows.append((run[0], e.task_run_id, e.task, short_name(e.task, e.name, e.map_index), e.map_index,
                         json.dumps(list(e.upstream)) if e.upstream else None, e.flow_attempt, code(PENDING),
                         micros(e.time) - run[1]))
    # An upsert keeps a task run created again its id, which its other rows refer to.
    c.executemany("INSERT INTO task_runs (run, task_run_id, task, name, map_index, upstream, flow_attempt, state, "
                  "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_run_id) DO UPDATE SET "
                  "run = excluded.run, task = excluded.task, name = excluded.name, map_index = excluded.map_index, "
                  "upstream = excluded.upstream, flow_attempt = excluded.flow_attempt, state = excluded.state, "
                  "created = excluded.created, message = NULL, retry_at = NULL, ended = NULL", rows)


def _attempts_started(c: sqlite3.Connection, events: list, runs: Runs) -> None:
    intern(c, (e.worker for e in events))
    c.executemany(f"INSERT INTO attempts (task, attempt, state, started, worker) SELECT id, ?, ?, ?, {NAME_ID} "
                  "FROM task_runs WHERE task_run_id = ? ON CONFLICT (task, attempt) DO UPDATE SET "
                  "state = excluded.state, started = excluded.started, worker = excluded.worker, ended = NULL, "
                  "error = NULL, traceback = NULL",
                  [(e.attempt, code(RUNNING), micros(e.time) - run[1], e.worker, e.task_run_id)
                   for e in events for run in (runs.get(e.run_id),) if run is not None])


def _attempts_ended(c: sqlite3.Connection, events: list, runs: Runs) -> None:
    # An attempt whose start was never recorded (a crash found later) gets a row of its own.
    c.executemany("INSERT INTO attempts (task, attempt, state, started, ended, error, traceback) "
                  "SELECT id, ?, ?, ?, ?, ?, ? FROM task_runs WHERE task_run_id = ? ON CONFLICT (task, attempt) "
                  "DO UPDATE SET state = excluded.state, ended = excluded.ended, error = excluded.error, "
                  "traceback = excluded.traceback",
                  [(e.attempt, code(e.state), when, when, e.error, e.traceback, e.task_run_id)
                   for e in events for run in (runs.get(e.run_id),) if run is not None
                   for when in (micros(e.time) - run[1],)])
    failed = {}
    for e in events:
        if e.error is not None and runs.get(e.run_id) is not None:
            failed.setdefault(runs.get(e.run_id)[0], e.error)  # type: ignore[index]
    c.executemany("UPDATE runs SET error = ? WHERE id = ? AND error IS NULL",
                  [(error, run) for run, error in failed.items()])


def _task_states_changed(c: sqlite3.Connection, events: list, runs: Runs) -> None:
    rows = [(e, micros(e.time) - run[1], None if e.retry_at is None else micros(e.retry_at) - run[1])
            for e in events for run in (runs.get(e.run_id),) if run is not None]
    # A task run's row takes its last state in the batch: each UPDATE sets every column it touches,
    # so the earlier ones (Running before Completed, most often) would only be overwritten.
    last = {e.task_run_id: (e, when, retry_at) for e, when, retry_at in rows}
    c.executemany("UPDATE task_runs SET state = ?, message = ?, retry_at = ?, ended = ? WHERE task_run_id = ?",
                  [(code(e.state), e.message, retry_at, when if e.state in FINAL_STATES else None, e.task_run_id)
                   for e, when, retry_at in last.values()])
    c.executemany(f"INSERT INTO task_states (task, n, state, time, message, retry_at) SELECT id, {_NEXT_STATE}, "
                  "?, ?, ?, ? FROM task_runs WHERE task_run_id = ?",
                  [(code(e.state), when, e.message, retry_at, e.task_run_id) for e, when, retry_at in rows])


def _single(batched: Callable[[sqlite3.Connection, list, Runs], None]) -> Callable[..., None]:
    def write(c: sqlite3.Connection, e: Any, owner: Owner | None, runs: Runs | None = None) -> None:
        batched(c, [e], runs or Runs(c))
    return write


task_run_created = _single(_task_runs_created)
task_state_changed = _single(_task_states_changed)
attempt_started = _single(_attempts_started)
attempt_ended = _single(_attempts_ended)


def run_crashed(c: sqlite3.Connection, run_id: str, reason: str, when: _dt.datetime) -> list[tuple[Any, Any]]:
    """Mark a run in flight Crashed with its open task runs and attempts, and say so in its log;
    returns what changed as (event, what its writer returned) pairs for the journal (none if the run
    had ended already: another process recovered it first)."""
    row = c.execute("SELECT id, attempt FROM runs WHERE run_id = ? AND ended IS NULL", (run_id,)).fetchone()
    if row is None:
        return []
    runs = Runs(c)
    run, base = runs.get(run_id)  # type: ignore[misc]
    at = micros(when) - base
    changes: list = [ev.AttemptEnded(run_id, r[0], r[1], CRASHED, when, reason) for r in c.execute(
        "SELECT t.task_run_id, a.attempt FROM attempts a JOIN task_runs t ON t.id = a.task "
        "WHERE t.run = ? AND a.ended IS NULL", (run,))]
    c.execute("UPDATE attempts SET state = ?, ended = ?, error = ? WHERE ended IS NULL AND task IN "
              "(SELECT id FROM task_runs WHERE run = ?)", (code(CRASHED), at, reason, run))
    if len(changes):
        c.execute("UPDATE runs SET error = ? WHERE id = ? AND error IS NULL", (reason, run))
    open_tasks = c.execute("SELECT id, task_run_id FROM task_runs WHERE run = ? AND ended IS NULL", (run,)).fetchall()
    changes += [ev.TaskStateChanged(run_id, r[1], CRASHED, when, reason) for r in open_tasks]
    c.executemany("INSERT INTO task_states (task, n, state, time, message) VALUES (?, coalesce((SELECT max(n) FROM "
                  "task_states WHERE task = ?), 0) + 1, ?, ?, ?)",
                  [(r[0], r[0], code(CRASHED), at, reason) for r in open_tasks])
    c.execute("UPDATE task_runs SET state = ?, message = ?, ended = ? WHERE run = ? AND ended IS NULL",
              (code(CRASHED), reason, at, run))
    c.execute("UPDATE runs SET state = ?, message = ?, ended = ? WHERE run_id = ?", (CRASHED, reason, iso(when), run_id))
    c.execute("INSERT INTO run_states (run_id, state, time, attempt, message) VALUES (?, ?, ?, ?, ?)",
              (run_id, CRASHED, iso(when), row["attempt"], reason))
    changes.append(ev.FlowStateChanged(run_id, CRASHED, when, row["attempt"], reason))
    said = ev.LogLines(run_id, (ev.LogLine(when, logging.ERROR, f"flow run ended Crashed: {reason}",
                                           logger="flows_tui"),))
    return [(event, None) for event in changes] + [(said, log_lines(c, said, None, runs))]


def write_batch(c: sqlite3.Connection, events: list, owner: Owner) -> list:
    """Write a batch of events; returns what each writer returned, in the batch's order.

    The task runs' events, most of a big run's, go as one statement per kind for the whole
    batch (executemany) rather than one or two per event: a 10,000-task run's batches hold
    thousands of them. A run started in the batch is written first, so its task runs find it;
    then kinds go in an order that keeps every row's changes in sequence: a task run is created
    before its states change, an attempt starts before it ends, and within a kind the batch's
    order holds.
    """
    runs = Runs(c)
    written: list = [None] * len(events)
    by_kind: dict[type, list] = {}
    for index, event in enumerate(events):
        by_kind.setdefault(type(event), []).append(index)
    for index in by_kind.pop(ev.FlowRunStarted, ()):
        flow_run_started(c, events[index], owner, runs=runs)
    for kind in _BATCH_ORDER:
        indices = by_kind.pop(kind, None)
        if indices:
            _BATCHED[kind](c, [events[index] for index in indices], runs)
    for indices in by_kind.values():
        for index in indices:
            written[index] = WRITERS[type(events[index])](c, events[index], owner, runs)
    return written


WRITERS: dict[type, Callable[..., Any]] = {
    ev.FlowRunStarted: flow_run_started,
    ev.FlowStateChanged: flow_state_changed,
    ev.TaskRunCreated: task_run_created,
    ev.TaskStateChanged: task_state_changed,
    ev.AttemptStarted: attempt_started,
    ev.AttemptEnded: attempt_ended,
    ev.LogLines: log_lines,
}

# The task runs' kinds, batched, in this order; what else a batch holds (a flow run's states,
# log lines) is written event by event after them, in the batch's order.
_BATCHED: dict[type, Callable[[sqlite3.Connection, list, Runs], None]] = {
    ev.TaskRunCreated: _task_runs_created,
    ev.AttemptStarted: _attempts_started,
    ev.AttemptEnded: _attempts_ended,
    ev.TaskStateChanged: _task_states_changed,
}
_BATCH_ORDER = (ev.TaskRunCreated, ev.AttemptStarted, ev.AttemptEnded, ev.TaskStateChanged)
