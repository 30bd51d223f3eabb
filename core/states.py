"""Run states, with Prefect 3's names and predicates."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PENDING = "Pending"
SCHEDULED = "Scheduled"
RUNNING = "Running"
RETRYING = "Retrying"
COMPLETED = "Completed"
CACHED = "Cached"
FAILED = "Failed"
TIMED_OUT = "TimedOut"
CRASHED = "Crashed"
CANCELLED = "Cancelled"
NOT_RUN = "NotRun"

ALL_STATES = (PENDING, SCHEDULED, RUNNING, RETRYING, COMPLETED, CACHED, FAILED, TIMED_OUT,
              CRASHED, CANCELLED, NOT_RUN)
FINAL_STATES = frozenset({COMPLETED, CACHED, FAILED, TIMED_OUT, CRASHED, CANCELLED, NOT_RUN})
SUCCESS_STATES = frozenset({COMPLETED, CACHED})
# States that fail a flow run unless something handled them (SPEC: the flow-state rule).
FAILURE_STATES = frozenset({FAILED, TIMED_OUT, CRASHED})

# The state type Prefect reports for each of our state names (TimedOut is a Failed, etc.).
STATE_TYPES = {
    PENDING: "PENDING", SCHEDULED: "SCHEDULED", RUNNING: "RUNNING", RETRYING: "SCHEDULED",
    COMPLETED: "COMPLETED", CACHED: "COMPLETED", FAILED: "FAILED", TIMED_OUT: "FAILED",
    CRASHED: "CRASHED", CANCELLED: "CANCELLED", NOT_RUN: "PENDING",
}


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class UpstreamFailed(Exception):
    """Raised for a task that did not run because an upstream task failed."""


class TaskRunTimedOut(TimeoutError):
    """A task or flow run passed its `timeout_seconds`."""


class CrashedRun(Exception):
    """The worker running a task died, or the cluster went away."""


class CancelledRun(Exception):
    """The run was cancelled."""


class FailedRun(Exception):
    """A run failed; raised by `State.result()` when no exception object is available."""


@dataclass(eq=False)
class State(Generic[T]):
    """The state of a task or flow run at one moment.

    `result()` returns the value of a successful run and raises the run's exception
    otherwise, as Prefect's `State.result()` does.
    """

    name: str
    message: str | None = None
    timestamp: _dt.datetime = field(default_factory=now)
    # Kept private so a State can travel without dragging large values along.
    _value: Any = None
    _exception: BaseException | None = None
    _resolver: Any = None  # a callable fetching the value lazily (a task on the cluster)

    @property
    def type(self) -> str:
        return STATE_TYPES[self.name]

    def is_pending(self) -> bool:
        return self.name in (PENDING, NOT_RUN)

    def is_scheduled(self) -> bool:
        return self.name in (SCHEDULED, RETRYING)

    def is_running(self) -> bool:
        return self.name == RUNNING

    def is_completed(self) -> bool:
        return self.name in SUCCESS_STATES

    def is_failed(self) -> bool:
        return self.name in (FAILED, TIMED_OUT)

    def is_crashed(self) -> bool:
        return self.name == CRASHED

    def is_cancelled(self) -> bool:
        return self.name == CANCELLED

    def is_final(self) -> bool:
        return self.name in FINAL_STATES

    def result(self, raise_on_failure: bool = True) -> T:
        if self.name in SUCCESS_STATES:
            if self._resolver is not None:
                self._value = self._resolver()
                self._resolver = None
            return self._value
        error = self._exception or _exception_for(self)
        if raise_on_failure:
            raise error
        return error  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"{self.name}(message={self.message!r})" if self.message else f"{self.name}()"


def _exception_for(state: State) -> BaseException:
    message = state.message or f"run ended {state.name}"
    if state.name == NOT_RUN:
        return UpstreamFailed(message)
    if state.name == TIMED_OUT:
        return TaskRunTimedOut(message)
    if state.name == CRASHED:
        return CrashedRun(message)
    if state.name == CANCELLED:
        return CancelledRun(message)
    if state.name in FINAL_STATES:
        return FailedRun(message)
    return RuntimeError(f"run is still {state.name}; it has no result yet")


def Completed(value: Any = None, message: str | None = None) -> State:
    return State(COMPLETED, message, _value=value)


def Failed(message: str | None = None, exception: BaseException | None = None) -> State:
    return State(FAILED, message, _exception=exception)


def Crashed(message: str | None = None) -> State:
    return State(CRASHED, message)


def Cancelled(message: str | None = None) -> State:
    return State(CANCELLED, message)
