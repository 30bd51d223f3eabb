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
from flows_tui.states import (CACHED, CANCELLED, COMPLETED, CRASHED, FAILED, FINAL_STATES, NOT_RUN, PENDING, RETRYING, RUNNING,
                              SCHEDULED, SUCCESS_STATES, TIMED_OUT)


@dataclass(slots=True)
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


@dataclass(slots=True)
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
    # Its states with the moment it entered each, oldest first, as one flat tuple (state, time,
    # state, time, ...): a list of pairs took ~170 bytes more per task run, and a big map's
    # model holds one per task run. `history` gives the pairs.
    timeline: tuple = ()
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def history(self) -> list[tuple[str, _dt.datetime]]:
        timeline = self.timeline
        return list(zip(timeline[::2], timeline[1::2]))

    @property
    def started(self) -> _dt.datetime | None:
        return self.attempts[0].started if self.attempts else None

    @property
    def ended(self) -> _dt.datetime | None:
        return self.timeline[-1] if self.state in FINAL_STATES and self.timeline else None

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
    def retries(self) -> int:
        """Attempts after the first (a worker death that made Dask run it again counts too)."""
        return max(0, len(self.attempts) - 1)

    @property
    def error(self) -> str | None:
        """The error a user should read first: the last attempt's, else the state's message.

        The message wins when the task run ended for a reason its last attempt did not give
        (Crashed while waiting to retry, because the scheduler was lost).
        """
        if self.state in FINAL_STATES and self.state not in ("Completed", "Cached"):
            if self.message and self.attempts and self.attempts[-1].state != self.state:
                return self.message
            for attempt in reversed(self.attempts):
                if attempt.error:
                    return attempt.error
            return self.message
        return None


# How a group of task runs reads at a glance: the first state in this list that any run is in.
# Activity first (a group still moving is not done), then the failures a user must see,
# then the quiet outcomes.
_GROUP_STATE_ORDER = (RUNNING, RETRYING, PENDING, SCHEDULED, CRASHED, TIMED_OUT, FAILED, CANCELLED, NOT_RUN,
                      COMPLETED, CACHED)


def group_state(present: Any) -> str:
    """One state for a group whose task runs are in the states `present` (see _GROUP_STATE_ORDER)."""
    return next((state for state in _GROUP_STATE_ORDER if state in present), PENDING)


@dataclass
class TaskGroup:
    """One task of a flow run: its single run, or its mapped children in map_index order."""

    task: str
    runs: list[TaskRun] = field(default_factory=list)

    @property
    def is_mapped(self) -> bool:
        return any(task_run.map_index is not None for task_run in self.runs)

    @property
    def counts(self) -> Counter:
        return Counter(task_run.state for task_run in self.runs)

    @property
    def total(self) -> int:
        return len(self.runs)

    @property
    def done(self) -> int:
        """Runs that ended successfully (Completed or Cached)."""
        return sum(1 for task_run in self.runs if task_run.state in SUCCESS_STATES)

    @property
    def is_final(self) -> bool:
        return all(task_run.is_final for task_run in self.runs)

    @property
    def state(self) -> str:
        """One state for the whole group, for a collapsed row (see _GROUP_STATE_ORDER)."""
        return group_state({task_run.state for task_run in self.runs})

    @property
    def started(self) -> _dt.datetime | None:
        starts = [task_run.started for task_run in self.runs if task_run.started is not None]
        return min(starts) if starts else None

    @property
    def ended(self) -> _dt.datetime | None:
        """When the last run ended; None while any run has not."""
        if not self.runs or not self.is_final:
            return None
        return max(task_run.ended for task_run in self.runs if task_run.ended is not None)

    @property
    def duration(self) -> float | None:
        """Wall time from the first start to the last end; None while running or if nothing started."""
        ended = self.ended  # first: None at once while any run is in progress (a cheap check)
        started = None if ended is None else self.started
        return None if started is None or ended is None else (ended - started).total_seconds()

    @property
    def retries(self) -> int:
        # TaskRun.retries, inlined: the tree folds every group of a 10,000-task run on each redraw.
        return sum(len(task_run.attempts) - 1 for task_run in self.runs if len(task_run.attempts) > 1)


@dataclass
class FlowRun:
    run_id: str
    flow: str
    parameters: dict[str, Any]
    started: _dt.datetime
    file: str | None = None
    address: str | None = None  # where it ran, described (see FlowRunStarted)
    cluster: str | None = None  # which cluster ran it: its profile, class or address
    state: str = PENDING
    attempt: int = 1
    ended: _dt.datetime | None = None
    message: str | None = None
    traceback: str | None = None
    history: list[tuple[str, _dt.datetime]] = field(default_factory=list)
    task_runs: dict[str, TaskRun] = field(default_factory=dict)
    name: str | None = None  # the flow run's name (`flow_run_name`), or its id

    @property
    def id(self) -> str:  # Prefect's name for it, as hooks read it
        return self.run_id

    @property
    def run_count(self) -> int:
        return self.attempt

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else (self.ended - self.started).total_seconds()

    def counts(self) -> Counter:
        return Counter(task_run.state for task_run in self.task_runs.values())

    def current_task_runs(self) -> list[TaskRun]:
        """Task runs of the latest flow-level attempt (earlier attempts stay in history)."""
        return [t for t in self.task_runs.values() if t.flow_attempt == self.attempt]

    def groups(self, flow_attempt: int | None = None) -> list[TaskGroup]:
        """The tree's second level: one group per task, in the order tasks were first created.

        Of the latest flow-level attempt unless `flow_attempt` names an earlier one. Within a
        group, runs of plain calls come first in creation order, then mapped children by
        map_index (stable, so two `.map()` calls of one task interleave by index).
        """
        attempt = self.attempt if flow_attempt is None else flow_attempt
        groups: dict[str, TaskGroup] = {}
        last: dict[str, int] = {}  # task → sort position of its last run (plain calls -1, then map_index)
        unordered: set[str] = set()
        # Dicts keep creation order. A snapshot (one C call, atomic under the GIL): `run`'s live
        # table reads the engine's model while the engine adds task runs to it.
        for task_run in tuple(self.task_runs.values()):
            if task_run.flow_attempt == attempt:
                task = task_run.task
                group = groups.get(task)  # (the UI calls this for every batch: no allocation per run)
                if group is None:
                    group = groups[task] = TaskGroup(task)
                group.runs.append(task_run)
                position = -1 if task_run.map_index is None else task_run.map_index
                if position < last.get(task, -1):
                    unordered.add(task)
                last[task] = position
        for task in unordered:  # usually none: one .map() creates its children in index order
            groups[task].runs.sort(key=lambda t: (t.map_index is not None, t.map_index or 0))
        return list(groups.values())

    @property
    def error(self) -> str | None:
        """Why the run did not complete: its message, else the first failed task run's error."""
        if self.state not in FINAL_STATES or self.state in SUCCESS_STATES:
            return None
        if self.message:
            return self.message
        return next((t.error for t in self.failed_task_runs() if t.error), None)

    def failed_task_runs(self) -> list[TaskRun]:
        """Task runs of the latest flow-level attempt with an error or a traceback to show, in creation
        order: what the run's error and its first failure's traceback are read from."""
        return [t for t in self.current_task_runs() if t.error or any(a.traceback for a in t.attempts)]


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
                                      address=e.address, cluster=e.cluster, history=[(PENDING, e.time)])

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
            flow_attempt=e.flow_attempt, timeline=(PENDING, e.time))

    def _task_state_changed(self, e: ev.TaskStateChanged) -> None:
        task_run = self._task_run(e.run_id, e.task_run_id)
        if task_run is None:
            return
        task_run.state = e.state
        task_run.message = e.message
        task_run.retry_at = e.retry_at
        task_run.timeline += (e.state, e.time)

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
