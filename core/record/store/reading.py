"""Reading the store: the runs, a run's tree rebuilt through the RunModel, its log lines."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

from flows_tui.errors import UsageError
from flows_tui.record import events as ev
from flows_tui.record.model import FlowRun
from flows_tui.states import SUCCESS_STATES

from . import journal
from .journal import JournalRead
from .compact import NAME_SQL, Clock
from .log_json import line_document
from .rows import RunSummary, ScheduleState, StoredLine, parse_time
from .run_rows import build_run, replay_rows


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
            run = build_run(c, run_id)
        if run is None:
            raise UsageError(f"no run {run_id!r} in {self.path}")
        return run

    def open_run(self, run_id: str, *, lazy_over: int | None = None) -> FlowRun:
        """The run as the tree shows it, without building each task run of a big group: an ended run's
        groups of more than `lazy_over` task runs are counted by the store, their task runs read as
        they are asked for (`opened`). A 100,000-task run opens in a tenth of a second."""
        from .opened import LAZY_OVER, open_run  # the UI's: the history commands need none of it

        with self._connection() as c:
            run = open_run(c, run_id, self._connection, LAZY_OVER if lazy_over is None else lazy_over)
        if run is None:
            raise UsageError(f"no run {run_id!r} in {self.path}")
        return run

    def _replay(self, run_id: str) -> Iterator[Any]:
        with self._connection() as c:
            events = replay_rows(c, run_id)
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
                events = [event for run_id in run_ids for event in replay_rows(c, run_id)]
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

    def last_lines(self, run_id: str, count: int, *, task_run_id: str | None = None, task: str | None = None,
                   level: int = 0, search: str = "") -> list[tuple]:
        """The last `count` lines of a run that a logs pane filtered so shows (of one task run, or of every
        run of a task; at `level` or above; holding `search`, ignoring case), oldest first, each as (id, time,
        level, message, task_run_id, attempt, logger, task run's name, task), None for the flow's."""
        query = (f"SELECT l.id, l.time, l.level, l.message, t.task_run_id, l.attempt, "
                 f"(SELECT text FROM names WHERE id = l.logger), {NAME_SQL}, t.task FROM logs l "
                 "LEFT JOIN task_runs t ON t.id = l.task WHERE l.run = ? AND l.level >= ?")
        args: list[Any] = [level]
        if task_run_id is not None:
            query += " AND l.task = (SELECT id FROM task_runs WHERE task_run_id = ?)"
            args.append(task_run_id)
        if task is not None:
            query += " AND t.task = ?"
            args.append(task)
        needle = search.lower()
        if needle and needle.isascii():  # SQLite's lower() folds ASCII only: a line with more is left to str.lower
            query += " AND (instr(lower(l.message), ?) > 0 OR l.message GLOB '*[^ -~]*')"
            args.append(needle)
        query += " ORDER BY l.id DESC" + ("" if search else f" LIMIT {int(count)}")
        with self._connection() as c:
            run = c.execute("SELECT id, started FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if run is None:
                return []
            cursor = c.cursor()
            cursor.row_factory = None
            cursor.execute(query, [run[0], *args])
            found: list = []
            while len(found) < count and (rows := cursor.fetchmany(1000)):
                # A search matches as the pane's own filter does (str.lower, which SQLite's lower() is not).
                found += [row for row in rows if not needle or needle in row[3].lower()]
        at = Clock(run[1]).at
        return [(r[0], at(r[1]), *r[2:]) for r in reversed(found[:count])]

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
