"""RunModel: a pure fold of run events into the tree flow → task runs → attempts.

No Dask and no Textual here: the engine, the headless progress, the store and the
UI each fold the same events into their own model and agree on what happened.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import events as ev
from .states import FINAL_STATES, PENDING, RUNNING


@dataclass
class Attempt:
    number: int
    state: str
    started: _dt.datetime
    ended: _dt.datetime | None = None
    error: str | None = None
    traceback: str | None = None
    worker: str | None = None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else (self.ended - self.started).total_seconds()


@dataclass
class TaskRun:
    id: str
    task: str
    name: str
    created: _dt.datetime
    map_index: int | None = None
    upstream: tuple[str, ...] = ()
    flow_attempt: int = 1
    state: str = PENDING
    message: str | None = None
    retry_at: _dt.datetime | None = None
    history: list[tuple[str, _dt.datetime]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def started(self) -> _dt.datetime | None:
        return self.attempts[0].started if self.attempts else None

    @property
    def ended(self) -> _dt.datetime | None:
        return self.history[-1][1] if self.state in FINAL_STATES and self.history else None

    @property
    def duration(self) -> float | None:
        start = self.started
        if start is None:
            return None
        end = self.ended
        return None if end is None else (end - start).total_seconds()

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def error(self) -> str | None:
        """The error a user should read first: the last attempt's, else the state's message."""
        if self.state in FINAL_STATES and self.state not in ("Completed", "Cached"):
            for attempt in reversed(self.attempts):
                if attempt.error:
                    return attempt.error
            return self.message
        return None


@dataclass
class FlowRun:
    run_id: str
    flow: str
    parameters: dict[str, Any]
    started: _dt.datetime
    file: str | None = None
    address: str | None = None
    state: str = PENDING
    attempt: int = 1
    ended: _dt.datetime | None = None
    message: str | None = None
    traceback: str | None = None
    history: list[tuple[str, _dt.datetime]] = field(default_factory=list)
    task_runs: dict[str, TaskRun] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else (self.ended - self.started).total_seconds()

    def counts(self) -> Counter:
        return Counter(task_run.state for task_run in self.task_runs.values())

    def current_task_runs(self) -> list[TaskRun]:
        """Task runs of the latest flow-level attempt (earlier attempts stay in history)."""
        return [t for t in self.task_runs.values() if t.flow_attempt == self.attempt]


class RunModel:
    """Folds events into `FlowRun`s. Not thread-safe: each owner folds on one thread or under its lock."""

    def __init__(self) -> None:
        self.runs: dict[str, FlowRun] = {}

    def apply_all(self, events: Iterable[Any]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: Any) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _flow_run_started(self, e: ev.FlowRunStarted) -> None:
        self.runs[e.run_id] = FlowRun(e.run_id, e.flow, dict(e.parameters), e.time, file=e.file,
                                      address=e.address, history=[(PENDING, e.time)])

    def _flow_state_changed(self, e: ev.FlowStateChanged) -> None:
        run = self.runs.get(e.run_id)
        if run is None:
            return
        run.state = e.state
        run.attempt = e.attempt
        run.message = e.message
        run.traceback = e.traceback
        run.history.append((e.state, e.time))
        run.ended = e.time if e.state in FINAL_STATES else None

    def _task_run_created(self, e: ev.TaskRunCreated) -> None:
        run = self.runs.get(e.run_id)
        if run is None:
            return
        run.task_runs[e.task_run_id] = TaskRun(
            e.task_run_id, e.task, e.name, e.time, map_index=e.map_index, upstream=e.upstream,
            flow_attempt=e.flow_attempt, history=[(PENDING, e.time)])

    def _task_state_changed(self, e: ev.TaskStateChanged) -> None:
        task_run = self._task_run(e.run_id, e.task_run_id)
        if task_run is None:
            return
        task_run.state = e.state
        task_run.message = e.message
        task_run.retry_at = e.retry_at
        task_run.history.append((e.state, e.time))

    def _attempt_started(self, e: ev.AttemptStarted) -> None:
        task_run = self._task_run(e.run_id, e.task_run_id)
        if task_run is None:
            return
        task_run.attempts.append(Attempt(e.attempt, RUNNING, e.time, worker=e.worker))

    def _attempt_ended(self, e: ev.AttemptEnded) -> None:
        task_run = self._task_run(e.run_id, e.task_run_id)
        if task_run is None:
            return
        for attempt in reversed(task_run.attempts):
            if attempt.number == e.attempt:
                attempt.state = e.state
                attempt.ended = e.time
                attempt.error = e.error
                attempt.traceback = e.traceback
                return

    def _task_run(self, run_id: str, task_run_id: str) -> TaskRun | None:
        run = self.runs.get(run_id)
        return None if run is None else run.task_runs.get(task_run_id)


_HANDLERS = {
    ev.FlowRunStarted: RunModel._flow_run_started,
    ev.FlowStateChanged: RunModel._flow_state_changed,
    ev.TaskRunCreated: RunModel._task_run_created,
    ev.TaskStateChanged: RunModel._task_state_changed,
    ev.AttemptStarted: RunModel._attempt_started,
    ev.AttemptEnded: RunModel._attempt_ended,
}
