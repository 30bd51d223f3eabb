"""Reading the store: the runs, a run's tree rebuilt through the RunModel, its log lines."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

from flows_tui.errors import UsageError
from flows_tui.record import events as ev
from flows_tui.record.model import FlowRun, RunModel
from flows_tui.states import SUCCESS_STATES

from . import journal
from .journal import JournalRead
from .rows import RunSummary, ScheduleState, StoredLine, parse_time


class StoreReading:
    """The store's queries; `Store` gives them its connections."""

    path: Path
    _writer_name: str | None = None  # this process in the journal's `writer` column

    def _connection(self) -> "contextlib.closing[sqlite3.Connection]":
        raise NotImplementedError

    def runs(self, flow: str | None = None, limit: int | None = None) -> list[RunSummary]:
        """Runs newest first, optionally of one flow."""
        # The first failure: the first attempt that ended with an error, else the run's own message.
        query = ("SELECT run_id, flow, state, started, ended, message, owner_host, owner_pid, owner_command, cluster, "
                 "(SELECT error FROM attempts WHERE attempts.run_id = runs.run_id AND error IS NOT NULL "
                 "ORDER BY ended LIMIT 1) AS first_error FROM runs")
        args: list[Any] = []
        if flow is not None:
            query += " WHERE flow = ?"
            args.append(flow)
        query += " ORDER BY started DESC, rowid DESC"
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
        """Rebuild a run's tree by folding its stored history through a RunModel, like a live observer."""
        model = RunModel()
        model.apply_all(self._replay(run_id))
        if run_id not in model.runs:
            raise UsageError(f"no run {run_id!r} in {self.path}")
        return model.runs[run_id]

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
             level: int = 0) -> list[StoredLine]:
        """The run's log lines in order (optionally of one task: a task run's name or a task's name)."""
        query = ("SELECT logs.*, task_runs.name AS task_name FROM logs "
                 "LEFT JOIN task_runs ON task_runs.task_run_id = logs.task_run_id "
                 "WHERE logs.run_id = ? AND logs.id > ? AND logs.level >= ?")
        args: list[Any] = [run_id, after, level]
        if task is not None:
            query += " AND (task_runs.name = ? OR task_runs.task = ?)"
            args += [task, task]
        query += " ORDER BY logs.id"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        with self._connection() as c:
            rows = c.execute(query, args).fetchall()
        return [StoredLine(r["id"], r["run_id"], r["task_name"],
                           ev.LogLine(parse_time(r["time"]), r["level"], r["message"], r["task_run_id"], r["attempt"],
                                      r["logger"], r["id"]))
                for r in rows]


    def schedule_states(self) -> dict[str, ScheduleState]:
        """Per flow: the due time its schedule last fired for, whether it is paused, and its timing then."""
        with self._connection() as c:
            rows = c.execute("SELECT flow, last_due, paused, timing FROM schedules").fetchall()
        return {r["flow"]: ScheduleState(parse_time(r["last_due"]), bool(r["paused"]), r["timing"]) for r in rows}


    def task_names(self, run_id: str) -> set[str]:
        with self._connection() as c:
            rows = c.execute("SELECT name, task FROM task_runs WHERE run_id = ?", (run_id,)).fetchall()
        return {r[0] for r in rows} | {r[1] for r in rows}


def _first_failure(row: sqlite3.Row) -> str | None:
    if row["ended"] is None or row["state"] in SUCCESS_STATES:
        return None
    return row["first_error"] or row["message"]


def _replay_rows(c: sqlite3.Connection, run_id: str) -> list:
    """The events that rebuild a run from its rows, in the order a live observer saw them."""
    run = c.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if run is None:
        return []
    run_states = c.execute("SELECT * FROM run_states WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
    task_runs = c.execute("SELECT * FROM task_runs WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
    task_states = c.execute("SELECT * FROM task_states WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
    attempts = c.execute("SELECT * FROM attempts WHERE run_id = ? ORDER BY task_run_id, attempt",
                         (run_id,)).fetchall()
    events: list = [ev.FlowRunStarted(run_id, run["flow"], json.loads(run["parameters"]), parse_time(run["started"]),
                                      file=run["file"], address=run["address"], cluster=run["cluster"])]
    for index, row in enumerate(run_states):
        last = index == len(run_states) - 1
        events.append(ev.FlowStateChanged(run_id, row["state"], parse_time(row["time"]), row["attempt"],
                                          message=row["message"], traceback=run["traceback"] if last else None))
    for row in task_runs:
        events.append(ev.TaskRunCreated(run_id, row["task_run_id"], row["task"], row["name"],
                                        parse_time(row["created"]), row["map_index"],
                                        tuple(json.loads(row["upstream"])), row["flow_attempt"]))
    for row in attempts:
        events.append(ev.AttemptStarted(run_id, row["task_run_id"], row["attempt"], parse_time(row["started"]),
                                        row["worker"]))
        if row["ended"] is not None:
            events.append(ev.AttemptEnded(run_id, row["task_run_id"], row["attempt"], row["state"],
                                          parse_time(row["ended"]), row["error"], row["traceback"]))
    for row in task_states:
        events.append(ev.TaskStateChanged(run_id, row["task_run_id"], row["state"], parse_time(row["time"]),
                                          message=row["message"], retry_at=parse_time(row["retry_at"])))
    return events
