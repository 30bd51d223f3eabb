"""Reading the store: the runs, a run's tree rebuilt through the RunModel, its log lines."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from flows_tui.errors import UsageError
from flows_tui.record import events as ev
from flows_tui.record.model import Attempt, FlowRun, RunModel, TaskRun
from flows_tui.states import PENDING, RUNNING, SUCCESS_STATES

from . import journal
from .journal import JournalRead
from .compact import NAME_SQL, Clock, state_of
from .log_json import line_document
from .rows import RunSummary, ScheduleState, StoredLine, parse_time


class StoreReading:
    """The store's queries; `Store` gives them its connections."""

    path: Path
    _writer_name: str | None = None  # this process in the journal's `writer` column

    def _connection(self) -> "contextlib.closing[sqlite3.Connection]":
        raise NotImplementedError

    def runs(self, flow: str | None = None, limit: int | None = None) -> list[RunSummary]:
        """Runs newest first, optionally of one flow."""
        # The first failure: the first attempt that ended with an error (kept on the run's row), else its message.
        query = ("SELECT run_id, flow, state, started, ended, message, owner_host, owner_pid, owner_command, cluster, "
                 "error AS first_error FROM runs")
        args: list[Any] = []
        if flow is not None:
            query += " WHERE flow = ?"
            args.append(flow)
        query += " ORDER BY started DESC, id DESC"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        with self._connection() as c:
            rows = c.execute(query, args).fetchall()
        return [RunSummary(r["run_id"], r["flow"], r["state"], parse_time(r["started"]), parse_time(r["ended"]),
                           _first_failure(r), {"host": r["owner_host"], "pid": r["owner_pid"],
                                               "command": r["owner_command"]}, r["cluster"])
                for r in rows]

    def flows(self) -> list[str]:
        with self._connection() as c:
            return [r[0] for r in c.execute("SELECT DISTINCT flow FROM runs ORDER BY flow")]

    def find_run(self, prefix: str) -> str:
        """The full id of the run whose id starts with `prefix` (as git does with commits)."""
        with self._connection() as c:
            rows = c.execute("SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY run_id LIMIT 6",
                             (prefix, prefix + "\uffff")).fetchall()
        if not rows:
            raise UsageError(f"no run {prefix!r} in {self.path} (`flows-tui runs` lists them)")
        if len(rows) > 1 and rows[0][0] != prefix:
            candidates = ", ".join(r[0] for r in rows[:5])
            raise UsageError(f"run id {prefix!r} is ambiguous: {candidates}")
        return rows[0][0]

    def load_run(self, run_id: str) -> FlowRun:
        """Rebuild a run's tree from its rows: the tree a RunModel folding its history holds, as a live
        observer's (`_replay`), built directly (a 100,000-task run is 500,000 events to fold)."""
        with self._connection() as c:
            run = _build_run(c, run_id)
        if run is None:
            raise UsageError(f"no run {run_id!r} in {self.path}")
        return run

    def _replay(self, run_id: str) -> Iterator[Any]:
        with self._connection() as c:
            events = _replay_rows(c, run_id)
        return iter(events)

    def replay_runs(self, run_ids: Iterable[str] | None = None) -> tuple[int, list]:
        """The events that rebuild `run_ids` (None: every run in flight) and the journal's last id, read
        together: a tail that goes on from that id sees each later change once."""
        with self._connection() as c:
            c.execute("BEGIN")  # one snapshot for the journal's head and the runs' tables
            try:
                last = journal.head(c)
                if run_ids is None:
                    run_ids = [r[0] for r in c.execute("SELECT run_id FROM runs WHERE ended IS NULL ORDER BY started")]
                events = [event for run_id in run_ids for event in _replay_rows(c, run_id)]
            finally:
                c.execute("COMMIT")
        return last, events

    def follow(self, after: int, *, limit: int = 2000) -> JournalRead:
        """The events committed after journal row `after` by other processes (this one's bus has its own)."""
        c = self._follower()
        try:
            c.execute("BEGIN")  # the journal rows and the log lines they refer to, from one snapshot
            try:
                return journal.read(c, after, self._writer_name, limit)
            finally:
                c.execute("COMMIT")
        except sqlite3.Error:
            self._followers.connection = None  # the next read opens a fresh one
            raise

    def _follower(self) -> sqlite3.Connection:
        """The calling thread's own connection for `follow`, kept between reads. A tail reads the
        journal 20 times a second; opening a connection for each read took most of its thread's time
        while a run logged 10,000 lines a second (bench/live_tail.py). Opened afresh when the store's
        file was replaced (removed and created again), as a new connection would see it."""
        followers = self.__dict__.get("_followers")
        if followers is None:
            followers = self.__dict__.setdefault("_followers", threading.local())
        try:
            info = os.stat(self.path)
            identity = (info.st_dev, info.st_ino)
        except OSError:
            identity = None
        kept = getattr(followers, "connection", None)
        if kept is not None and identity is not None and getattr(followers, "identity", None) == identity:
            return kept
        if kept is not None:
            kept.close()
        followers.connection, followers.identity = self._connect(), identity
        return followers.connection

    def _connect(self) -> sqlite3.Connection:
        raise NotImplementedError

    def journal_head(self) -> int:
        with self._connection() as c:
            return journal.head(c)

    def is_final(self, run_id: str) -> bool:
        with self._connection() as c:
            row = c.execute("SELECT ended FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row is not None and row[0] is not None

    def logs(self, run_id: str, *, task: str | None = None, after: int = 0, limit: int | None = None,
             level: int = 0, last: int | None = None) -> list[StoredLine]:
        """The run's log lines in order (optionally of one task: a task run's name or a task's name);
        with `last`, only the last that many (what a view that keeps that many shows)."""
        at, rows = self._log_rows(run_id, task, after, limit, level, last)
        return [StoredLine(r[0], run_id, r[6], ev.LogLine(at(r[1]), r[2], r[3], r[5], r[4], r[7], r[0]))
                for r in rows]

    def logs_json(self, run_id: str, *, task: str | None = None, level: int = 0,
                  batch: int = 10_000) -> Iterator[list[str]]:
        """`logs` as `logs --json` prints them (`StoredLine.document`, the same text as `json.dumps` of
        it), in batches as they are read, without building each line's objects: a 100,000-task run's
        lines stream out in well under a second."""
        query, args = _log_query(task, 0, None, level, columns=_JSON_COLUMNS)
        with self._connection() as c:
            run = c.execute("SELECT id, started FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if run is None:
                return
            cursor = c.cursor()
            cursor.row_factory = None
            cursor.execute(query, [run[0], *args])
            document = line_document(Clock(run[1]).base)
            while rows := cursor.fetchmany(batch):
                yield [document(*row) for row in rows]

    def _log_rows(self, run_id: str, task: str | None, after: int, limit: int | None, level: int,
                  last: int | None = None) -> tuple[Any, list]:
        """(the run's clock, its lines' rows: id, time, level, message, attempt, task_run_id, task name, logger)."""
        query, args = _log_query(task, after, limit, level, last)
        with self._connection() as c:
            run = c.execute("SELECT id, started FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if run is None:
                return None, []
            cursor = c.cursor()
            cursor.row_factory = None  # plain tuples: `logs --json` of a big run reads every line
            rows = cursor.execute(query, [run[0], *args]).fetchall()
        if last is not None:
            rows.reverse()
        return Clock(run[1]).at, rows

    def schedule_states(self) -> dict[str, ScheduleState]:
        """Per flow: the due time its schedule last fired for, whether it is paused, and its timing then."""
        with self._connection() as c:
            rows = c.execute("SELECT flow, last_due, paused, timing FROM schedules").fetchall()
        return {r["flow"]: ScheduleState(parse_time(r["last_due"]), bool(r["paused"]), r["timing"]) for r in rows}


    def task_names(self, run_id: str) -> set[str]:
        with self._connection() as c:
            rows = c.execute(f"SELECT {NAME_SQL}, t.task FROM task_runs t JOIN runs ON runs.id = t.run "
                             "WHERE runs.run_id = ?", (run_id,)).fetchall()
        return {r[0] for r in rows} | {r[1] for r in rows}


_LINE_COLUMNS = (f"l.id, l.time, l.level, l.message, l.attempt, t.task_run_id, {NAME_SQL} AS task_name, "
                 "(SELECT text FROM names WHERE id = l.logger) AS logger")
_JSON_COLUMNS = f"l.time, l.level, {NAME_SQL}, t.task_run_id, l.message"  # as `line_document` takes them


def _log_query(task: str | None, after: int, limit: int | None, level: int, last: int | None = None,
               columns: str = _LINE_COLUMNS) -> tuple[str, list]:
    """The query of a run's lines (its id the first argument) and its other arguments; rows: id, time,
    level, message, attempt, task_run_id, task name, logger (or `columns`)."""
    query = (f"SELECT {columns} FROM logs l LEFT JOIN task_runs t ON t.id = l.task "
             "WHERE l.run = ? AND l.id > ? AND l.level >= ?")
    args: list[Any] = [after, level]
    if task is not None:
        query += f" AND ({NAME_SQL} = ? OR t.task = ?)"
        args += [task, task]
    if last is not None:  # the last lines, read from the end (and put back in order by the caller)
        query += " ORDER BY l.id DESC LIMIT ?"
        args.append(last)
    else:
        query += " ORDER BY l.id" + (" LIMIT ?" if limit is not None else "")
        args += [limit] if limit is not None else []
    return query, args


def _first_failure(row: sqlite3.Row) -> str | None:
    if row["ended"] is None or row["state"] in SUCCESS_STATES:
        return None
    return row["first_error"] or row["message"]


class _Rows(NamedTuple):
    run: sqlite3.Row
    at: Callable[[int | None], Any]  # a row's time, as a datetime
    run_states: list
    task_runs: list  # id, task_run_id, task, name, created, map_index, upstream, flow_attempt
    attempts: list  # task, attempt, state, started, ended, error, traceback, worker (by task, attempt)
    task_states: list  # task, state, time, message, retry_at (by task, in order)


def _read_rows(c: sqlite3.Connection, run_id: str) -> _Rows | None:
    run = c.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if run is None:
        return None
    cursor = c.cursor()
    cursor.row_factory = None  # plain tuples: a 100,000-task run is 400,000 rows
    # The joins walk the run's task runs by id, each one's states and attempts in key order: no sort.
    return _Rows(
        run, Clock(run["started"]).at,
        c.execute("SELECT * FROM run_states WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall(),
        cursor.execute(f"SELECT t.id, t.task_run_id, t.task, {NAME_SQL}, t.created, t.map_index, t.upstream, "
                       "t.flow_attempt FROM task_runs t WHERE t.run = ? ORDER BY t.id", (run["id"],)).fetchall(),
        cursor.execute("SELECT a.task, a.attempt, a.state, a.started, a.ended, a.error, a.traceback, n.text "
                       "FROM task_runs t JOIN attempts a ON a.task = t.id LEFT JOIN names n ON n.id = a.worker "
                       "WHERE t.run = ? ORDER BY t.id, a.attempt", (run["id"],)).fetchall(),
        cursor.execute("SELECT s.task, s.state, s.time, s.message, s.retry_at FROM task_runs t "
                       "JOIN task_states s ON s.task = t.id WHERE t.run = ? ORDER BY t.id, s.n",
                       (run["id"],)).fetchall())


def _flow_events(rows: _Rows) -> list:
    run = rows.run
    events: list = [ev.FlowRunStarted(run["run_id"], run["flow"], json.loads(run["parameters"]),
                                      parse_time(run["started"]), file=run["file"], address=run["address"],
                                      cluster=run["cluster"])]
    for index, row in enumerate(rows.run_states):
        last = index == len(rows.run_states) - 1
        events.append(ev.FlowStateChanged(run["run_id"], row["state"], parse_time(row["time"]), row["attempt"],
                                          message=row["message"], traceback=run["traceback"] if last else None))
    return events


def _replay_rows(c: sqlite3.Connection, run_id: str) -> list:
    """The events that rebuild a run from its rows, in the order a live observer saw them."""
    rows = _read_rows(c, run_id)
    if rows is None:
        return []
    at = rows.at
    ids = {row[0]: row[1] for row in rows.task_runs}
    events = _flow_events(rows)
    events += [ev.TaskRunCreated(run_id, r[1], r[2], r[3], at(r[4]), r[5], tuple(json.loads(r[6])) if r[6] else (), r[7])
               for r in rows.task_runs]
    for task, attempt, state, started, ended, error, traceback, worker in rows.attempts:
        task_run_id = ids[task]
        events.append(ev.AttemptStarted(run_id, task_run_id, attempt, at(started), worker))
        if ended is not None:
            events.append(ev.AttemptEnded(run_id, task_run_id, attempt, state_of(state), at(ended), error, traceback))
    events += [ev.TaskStateChanged(run_id, ids[task], state_of(state), at(time), message, at(retry_at))
               for task, state, time, message, retry_at in rows.task_states]
    return events


def _build_run(c: sqlite3.Connection, run_id: str) -> FlowRun | None:
    """The FlowRun a RunModel folding `_replay_rows` would hold, built straight from the rows."""
    rows = _read_rows(c, run_id)
    if rows is None:
        return None
    model = RunModel()
    model.apply_all(_flow_events(rows))
    run, at = model.runs[run_id], rows.at
    # Times inline (`at` is a call per value: 700,000 of them in a 100,000-task run).
    start, delta = at(0), _dt.timedelta
    by_id = {}
    for key, task_run_id, task, name, created, map_index, upstream, flow_attempt in rows.task_runs:
        when = start + delta(0, 0, created)
        by_id[key] = run.task_runs[task_run_id] = TaskRun(
            task_run_id, task, name, when, map_index, tuple(json.loads(upstream)) if upstream else (), flow_attempt,
            history=[(PENDING, when)])
    for task, number, state, started, ended, error, traceback, worker in rows.attempts:
        by_id[task].attempts.append(Attempt(number, RUNNING if ended is None else state_of(state),
                                            start + delta(0, 0, started), at(ended), error, traceback, worker))
    for task, state, time, message, retry_at in rows.task_states:
        task_run = by_id[task]
        task_run.state = state = state_of(state)
        task_run.message = message
        task_run.retry_at = None if retry_at is None else start + delta(0, 0, retry_at)
        task_run.history.append((state, start + delta(0, 0, time)))
    return run
