"""A run's rows read back: as the events that rebuild it, or straight as its tree (a FlowRun).

The task runs can be read all at once or a selection of them (`read_task_rows` takes a condition
on the `task_runs` row `t`): a past run opened in the UI reads its big groups' task runs only as
they are shown (see `opened`)."""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from typing import Any, Callable, NamedTuple

from flows_tui.record import events as ev
from flows_tui.record.model import Attempt, FlowRun, RunModel, TaskRun
from flows_tui.states import PENDING, RUNNING

from .compact import NAME_SQL, Clock, state_of
from .rows import parse_time


class RunRows(NamedTuple):
    run: sqlite3.Row
    at: Callable[[int | None], Any]  # a row's time, as a datetime
    run_states: list


class TaskRows(NamedTuple):
    task_runs: list  # id, task_run_id, task, name, created, map_index, upstream, flow_attempt (by id)
    attempts: list  # task, attempt, state, started, ended, error, traceback, worker (by task, attempt)
    task_states: list  # task, state, time, message, retry_at (by task, in order)


def read_run(c: sqlite3.Connection, run_id: str) -> RunRows | None:
    run = c.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if run is None:
        return None
    return RunRows(run, Clock(run["started"]).at,
                   c.execute("SELECT * FROM run_states WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall())


def read_task_rows(c: sqlite3.Connection, where: str, args: Any) -> TaskRows:
    """The rows of the task runs `where` says (a condition on `t`), with their attempts and states."""
    cursor = c.cursor()
    cursor.row_factory = None  # plain tuples: a 100,000-task run is 400,000 rows
    # By the run: the joins walk its task runs by id, each one's states and attempts in key order, no sort.
    return TaskRows(
        cursor.execute(f"SELECT t.id, t.task_run_id, t.task, {NAME_SQL}, t.created, t.map_index, t.upstream, "
                       f"t.flow_attempt FROM task_runs t WHERE {where} ORDER BY t.id", args).fetchall(),
        cursor.execute("SELECT a.task, a.attempt, a.state, a.started, a.ended, a.error, a.traceback, n.text "
                       "FROM task_runs t JOIN attempts a ON a.task = t.id LEFT JOIN names n ON n.id = a.worker "
                       f"WHERE {where} ORDER BY t.id, a.attempt", args).fetchall(),
        cursor.execute("SELECT s.task, s.state, s.time, s.message, s.retry_at FROM task_runs t "
                       f"JOIN task_states s ON s.task = t.id WHERE {where} ORDER BY t.id, s.n", args).fetchall())


def flow_run(rows: RunRows) -> FlowRun:
    """The run itself, without its task runs, as a RunModel folding its flow's events holds it."""
    model = RunModel()
    model.apply_all(flow_events(rows))
    return model.runs[rows.run["run_id"]]


def flow_events(rows: RunRows) -> list:
    run = rows.run
    events: list = [ev.FlowRunStarted(run["run_id"], run["flow"], json.loads(run["parameters"]),
                                      parse_time(run["started"]), file=run["file"], address=run["address"],
                                      cluster=run["cluster"])]
    for index, row in enumerate(rows.run_states):
        last = index == len(rows.run_states) - 1
        events.append(ev.FlowStateChanged(run["run_id"], row["state"], parse_time(row["time"]), row["attempt"],
                                          message=row["message"], traceback=run["traceback"] if last else None))
    return events


def replay_rows(c: sqlite3.Connection, run_id: str) -> list:
    """The events that rebuild a run from its rows, in the order a live observer saw them."""
    rows = read_run(c, run_id)
    if rows is None:
        return []
    tasks = read_task_rows(c, "t.run = ?", (rows.run["id"],))
    at = rows.at
    ids = {row[0]: row[1] for row in tasks.task_runs}
    events = flow_events(rows)
    events += [ev.TaskRunCreated(run_id, r[1], r[2], r[3], at(r[4]), r[5], tuple(json.loads(r[6])) if r[6] else (), r[7])
               for r in tasks.task_runs]
    for task, attempt, state, started, ended, error, traceback, worker in tasks.attempts:
        task_run_id = ids[task]
        events.append(ev.AttemptStarted(run_id, task_run_id, attempt, at(started), worker))
        if ended is not None:
            events.append(ev.AttemptEnded(run_id, task_run_id, attempt, state_of(state), at(ended), error, traceback))
    events += [ev.TaskStateChanged(run_id, ids[task], state_of(state), at(time), message, at(retry_at))
               for task, state, time, message, retry_at in tasks.task_states]
    return events


def build_run(c: sqlite3.Connection, run_id: str) -> FlowRun | None:
    """The FlowRun a RunModel folding `replay_rows` would hold, built straight from the rows."""
    rows = read_run(c, run_id)
    if rows is None:
        return None
    run = flow_run(rows)
    for task_run in build_task_runs(read_task_rows(c, "t.run = ?", (rows.run["id"],)), rows.at(0)).values():
        run.task_runs[task_run.id] = task_run
    return run


def build_task_runs(rows: TaskRows, start: _dt.datetime) -> dict[int, TaskRun]:
    """The task runs of `rows` by their row ids, in order, each as a RunModel folding its events
    holds it; `start` is the run's (their times count from it)."""
    # Times inline (a call per value is 700,000 calls in a 100,000-task run).
    delta = _dt.timedelta
    by_id: dict[int, TaskRun] = {}
    for key, task_run_id, task, name, created, map_index, upstream, flow_attempt in rows.task_runs:
        when = start + delta(0, 0, created)
        by_id[key] = TaskRun(task_run_id, task, name, when, map_index, tuple(json.loads(upstream)) if upstream else (),
                             flow_attempt, timeline=(PENDING, when))
    for task, number, state, started, ended, error, traceback, worker in rows.attempts:
        by_id[task].attempts.append(Attempt(number, RUNNING if ended is None else state_of(state),
                                            start + delta(0, 0, started),
                                            None if ended is None else start + delta(0, 0, ended), error, traceback,
                                            worker))
    for task, state, time, message, retry_at in rows.task_states:
        task_run = by_id[task]
        task_run.state = state = state_of(state)
        task_run.message = message
        task_run.retry_at = None if retry_at is None else start + delta(0, 0, retry_at)
        task_run.timeline += (state, start + delta(0, 0, time))
    return by_id
