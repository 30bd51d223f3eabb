"""The run's table of task runs, as the engine keeps it: each task run's Dask future, its
executions and attempts, who consumes it, whether it is final (`_Tracking`), and the waits
and results the flow body asks for. A task run's final state is recorded in one place,
`_end_task_run`."""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any

from flows_tui.futures import TaskFuture
from flows_tui.record import events as ev
from flows_tui.states import NOT_RUN, SUCCESS_STATES, State, exception_for
from flows_tui.states import now as _now

from .outcome import UNSENDABLE, Outcome

logger = logging.getLogger("flows_tui.engine")


# How a task run's result is used by later task calls (`_Tracking.consumed`).
UNUSED, ALLOWED, NEEDED = 0, 1, 2  # by none; only through allow_failure; by one that needs it to succeed


@dataclass(slots=True)
class _Tracking:
    """What the engine keeps per task run besides the model: its Dask future and who used it.

    Whether it is open or final is not kept here: the run's `_open_ids` is the one answer.
    Kept small (a 100,000-task run keeps 100,000 of them): what most task runs never need is None
    until they do.
    """

    key: str
    future: Any = None
    # The attempt number of each (execution, attempt) the worker reported: None, one as the tuple
    # (execution, attempt, number), or a dict for several (retries, a run again after a worker died).
    executions: Any = None
    open_attempt: int | None = None
    consumed: int = UNUSED
    seen_by_body: bool = False
    finished_seen: float | None = None  # when Dask first said finished without a report
    lineage: str | None = None  # its key in the session (None: no session, or not reusable)
    reused_from: str | None = None  # the run whose held result it reused
    call: tuple | None = None  # (task, args template, kwargs template, upstream futures, allowed), for a session
    siblings: list[str] | None = None  # the task run ids of its map, shared by them all (None: not mapped)
    position: int = 0  # its place in `siblings`
    outcome_from_cluster: bool = False  # ended with its outcome's state: its worker's report did not come
    body_ref: Any = None  # a weak reference to its TaskFuture, while the body may hold it (`_BodyRef`)
    dropped: bool = False  # the body dropped its TaskFuture: nothing can ask for its result any more
    pinned: bool = False  # a State of it went to the body: a later call may take it as an upstream

    def attempt_number(self, execution: str, attempt: int) -> int | None:
        """The run's number for `attempt` of `execution`, if it was reported."""
        known = self.executions
        if known is None:
            return None
        if type(known) is tuple:
            return known[2] if known[0] == execution and known[1] == attempt else None
        return known.get((execution, attempt))

    def number_attempt(self, execution: str, attempt: int, number: int) -> None:
        known = self.executions
        if known is None:
            self.executions = (execution, attempt, number)
            return
        if type(known) is tuple:
            known = self.executions = {(known[0], known[1]): known[2]}
        known[(execution, attempt)] = number


class _BodyRef(weakref.ref):
    """A weak reference to a TaskFuture the body got, naming its task run."""

    __slots__ = ("task_run_id",)


class TaskRuns:
    """The engine's part that keeps the task runs (a mixin of FlowRunEngine, sharing its lock).

    `_tracking` holds every task run of the run; `_open_ids` those not final yet: a task run
    enters it when it is created (and again when Dask runs it once more after a worker died)
    and leaves it only through `_end_task_run`, which records the final state. Every "is it
    over?" in the engine asks `_open_ids`; the model is the record of what happened.
    """

    def _open_task_runs(self) -> list[str]:
        """The task runs of this run that have not ended, in the order they were created (lock held)."""
        return [trid for trid in self._tracking if trid in self._open_ids]

    def _task_run_of_key(self, key: Any) -> str | None:
        """The task run of this run whose Dask key is `key` (`{task}-{run id}-{number}`), if any."""
        if not isinstance(key, str):
            return None
        head, _, number = key.rpartition("-")
        if not number.isdigit() or not head.endswith(f"-{self.run_id}"):
            return None
        index = int(number) - 1
        return self._by_sequence[index] if index < len(self._by_sequence) else None

    def _handled(self, task_run_id: str) -> bool:
        track = self._tracking[task_run_id]
        if track.seen_by_body:
            return True
        return track.consumed == ALLOWED

    def _end_task_run(self, task_run_id: str, state: str, message: str | None, when: _dt.datetime | None = None) -> None:
        """Record a final state (lock held)."""
        if task_run_id not in self._open_ids:
            return
        track = self._tracking[task_run_id]
        when = when or _now()
        if track.open_attempt is not None:
            self._emit(ev.AttemptEnded(self.run_id, task_run_id, track.open_attempt, state, when, message))
            track.open_attempt = None
        self._emit(ev.TaskStateChanged(self.run_id, task_run_id, state, when, message=message))
        self._open_ids.discard(task_run_id)
        self._ended.append(task_run_id)
        if self._dropped:
            self._let_go_of_dropped()
        if track.dropped:
            self._let_go_of(task_run_id, track)
        self._changed.notify_all()

    # Letting go of what nothing can ask for --------------------------------------------------------

    def _watch_body_ref(self, future: TaskFuture, track: _Tracking) -> None:
        """Note when the body lets go of `future` (lock held): once its task run has ended too, the
        run drops its Dask future, as raw Dask drops a map's futures that only fed the next map, and
        Dask frees what the workers and the scheduler keep for it once its dependents have run."""
        ref = track.body_ref = _BodyRef(future, self._body_let_go)
        ref.task_run_id = future.task_run_id

    def _body_let_go(self, ref: _BodyRef) -> None:
        # Called by the garbage collector, in whatever thread let go of the TaskFuture, holding
        # whatever locks that thread holds: no lock taken here; the next task run's end handles it.
        self._dropped.append(ref.task_run_id)

    def _let_go_of_dropped(self) -> None:
        """Take the TaskFutures the body let go of since last time (lock held)."""
        dropped = self._dropped
        while dropped:
            task_run_id = dropped.popleft()
            track = self._tracking.get(task_run_id)
            if track is None:
                continue
            track.dropped, track.body_ref = True, None
            self._let_go_of(task_run_id, track)

    def _let_go_of(self, task_run_id: str, track: _Tracking) -> None:
        """Drop the Dask future of a task run that ended and that nothing can ask for (lock held)."""
        if track.pinned or track.future is None or task_run_id in self._open_ids:
            return
        track.future = None

    # Waiting and results, for the body ----------------------------------------------------------

    def _wait_final(self, task_run_id: str, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._driver_waiting = True
            try:
                while task_run_id in self._open_ids:
                    self._check_abort()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"task run {self.flow_run.task_runs[task_run_id].name!r} did not "
                                           f"finish within {timeout:g}s")
                    self._changed.wait(0.5 if remaining is None else min(0.5, remaining))
            finally:
                self._driver_waiting = False

    def wait(self, future: TaskFuture, timeout: float | None = None) -> None:
        self._wait_final(future.task_run_id, timeout)

    def wait_for_change(self, timeout: float) -> None:
        """Until some task run of this run changes, or `timeout` s pass (futures' `wait`, `as_completed`)."""
        with self._lock:
            self._changed.wait(timeout)

    def final_state(self, future: TaskFuture, *, seen_by_body: bool) -> State:
        self._wait_final(future.task_run_id, None)
        if seen_by_body:
            self._tracking[future.task_run_id].seen_by_body = True
        return self.state_of(future)

    def result(self, future: TaskFuture, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        return self.result_of(future.task_run_id, timeout=timeout, raise_on_failure=raise_on_failure)

    def result_of(self, task_run_id: str, *, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        """The task's value, straight from its envelope: no waiting for the worker's report."""
        track = self._tracking[task_run_id]
        outcome = self._take_fetched(task_run_id)
        if outcome is None:
            outcome = self._outcome(track, timeout)
        if outcome is not None and outcome.ok:
            if self.session is not None:
                self._remember_received(outcome.value, task_run_id)
            return outcome.value
        # The body sees this failure: handled if it catches it (SPEC's flow-state rule).
        track.seen_by_body = True
        if outcome is not None and outcome.state == NOT_RUN:
            with self._lock:
                self._mark_root_causes_seen(task_run_id)
        if outcome is not None and outcome.exception is not None:
            error = outcome.exception
            if outcome.state == UNSENDABLE:  # the task completed; its value could not be pickled to come here
                error = error.sent("to the flow")
        else:
            self._wait_final(task_run_id, None)
            error = self._exception_from_record(self.flow_run.task_runs[task_run_id])
        if raise_on_failure:
            raise error
        return error

    def _outcome(self, track: _Tracking, timeout: float | None) -> Outcome | None:
        """Wait for the task's envelope; None if Dask lost or failed the task itself (a crash)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        hiccups = 0
        while True:
            self._check_abort()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"task run {track.key!r} did not finish within {timeout:g}s")
            moment = 0.2 if remaining is None else min(0.2, remaining)
            try:
                # Wait for the task to end on the cluster, then fetch its result once: a result
                # fetched with a timeout started its transfer over at every timeout, and a 100 MB
                # result never arrived (the run failed after ~30 s; raw Dask took 2 s).
                if track.siblings is None:  # nothing to fetch with it: both in one trip
                    return self._wait_and_fetch(track.future, moment)
                self._wait_on_cluster([track.future], moment)
            except (TimeoutError, asyncio.TimeoutError):
                continue
            except Exception:  # cancelled or lost: result() says which
                pass
            try:
                return self._fetch_with(track, self._siblings_to_fetch(track))
            except Exception:  # KilledWorker, cancelled: the watcher records it as Crashed/Cancelled
                if track.future.status in ("pending", "finished") and hiccups < 10:
                    # A timed result() can fail with no failure behind it when the client's loop is
                    # busy (UnboundLocalError, dask/distributed#8514; seen under the UI's load):
                    # the task is fine, ask again.
                    hiccups += 1
                    continue
                return None

    def _exception_from_record(self, task_run: Any) -> BaseException:
        """What the body gets for a task run whose envelope is gone (it crashed): from its recorded state."""
        message = task_run.error or task_run.message or f"task run ended {task_run.state}"
        return exception_for(task_run.state, message, failed=RuntimeError)

    def _mark_root_causes_seen(self, task_run_id: str) -> None:
        """A NotRun's exception reached the body: the failures that caused it were seen too."""
        for upstream in self.flow_run.task_runs[task_run_id].upstream:
            track = self._tracking[upstream]
            if not track.seen_by_body:
                track.seen_by_body = True
                self._mark_root_causes_seen(upstream)

    def state_of(self, future: TaskFuture) -> State:
        with self._lock:
            task_run = self.flow_run.task_runs[future.task_run_id]
            name, message = task_run.state, task_run.error or task_run.message
            final = task_run.is_final
            # A final state carries the moment the worker recorded it, which is its hooks' state's.
            when = task_run.ended if final else None
        state = State(name, message, when)
        state._task_run_id = future.task_run_id  # type: ignore[attr-defined]
        self._tracking[future.task_run_id].pinned = True  # the State may go to a later call as its upstream
        if final:
            self._tracking[future.task_run_id].seen_by_body = True
            if name in SUCCESS_STATES:
                state._resolver = lambda: self.result_of(future.task_run_id)
            else:
                state._resolver = None
                state._exception = self.result_of(future.task_run_id, raise_on_failure=False)
        return state

    def dask_future(self, future: TaskFuture) -> Any:
        return self._tracking[future.task_run_id].future

    def state_name(self, future: TaskFuture) -> str:
        return self.flow_run.task_runs[future.task_run_id].state

    def is_final(self, future: TaskFuture) -> bool:
        return future.task_run_id not in self._open_ids
