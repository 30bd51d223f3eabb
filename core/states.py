"""Run states, with Prefect 3's names and predicates."""

from __future__ import annotations

import datetime as _dt
import enum
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



class StateType(str, enum.Enum):
    """Prefect's state types; a str, so `state.type == "FAILED"` holds too."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"

    def __str__(self) -> str:
        return self.value


# The state name a state of each type gets when only its type is given (Prefect's defaults).
TYPE_NAMES = {
    StateType.SCHEDULED: SCHEDULED, StateType.PENDING: PENDING, StateType.RUNNING: RUNNING,
    StateType.COMPLETED: COMPLETED, StateType.FAILED: FAILED, StateType.CANCELLED: CANCELLED,
    StateType.CRASHED: CRASHED, StateType.PAUSED: "Paused", StateType.CANCELLING: "Cancelling",
}

# The state type Prefect reports for each of our state names (TimedOut is a Failed, etc.).
STATE_TYPES = {
    PENDING: "PENDING", SCHEDULED: "SCHEDULED", RUNNING: "RUNNING", RETRYING: "SCHEDULED",
    COMPLETED: "COMPLETED", CACHED: "COMPLETED", FAILED: "FAILED", TIMED_OUT: "FAILED",
    CRASHED: "CRASHED", CANCELLED: "CANCELLED", NOT_RUN: "PENDING",
}


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def utc(timestamp: float) -> _dt.datetime:
    """An epoch timestamp (a worker's report) as a moment in UTC."""
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc)


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


@dataclass(eq=False, init=False)
class State(Generic[T]):
    """The state of a task or flow run at one moment.

    Built as flows-tui does, `State("Completed", message)`, or as Prefect does,
    `State(type=StateType.COMPLETED, data=..., message=...)`. `result()` returns the value of
    a successful run and raises the run's exception otherwise, as Prefect's `State.result()`
    does; a Failed state whose `data` is an exception raises that exception.
    """

    name: str
    message: str | None
    timestamp: _dt.datetime

    def __init__(self, name: str | None = None, message: str | None = None, timestamp: _dt.datetime | None = None,
                 _value: Any = None, _exception: BaseException | None = None, _resolver: Any = None, *,
                 type: "StateType | str | None" = None, data: Any = None) -> None:  # noqa: A002 - Prefect's name
        if name is None:
            if type is None:
                raise TypeError("State() needs a name or a type, e.g. State(type=StateType.COMPLETED)")
            name = TYPE_NAMES[StateType(type)]
        elif type is None and name not in STATE_TYPES:
            raise ValueError(f"unknown state {name!r}; one of {', '.join(ALL_STATES)}")
        self.name = name
        self._type = StateType(type) if type is not None else StateType(STATE_TYPES[name])
        self.message = message
        self.timestamp = timestamp or now()
        if data is not None:
            if isinstance(data, BaseException) and self._type != StateType.COMPLETED:
                _exception = _exception or data
            else:
                _value = data
        # Kept private so a State can travel without dragging large values along.
        self._value = _value
        self._exception = _exception
        self._resolver = _resolver  # a callable fetching the value lazily (a task on the cluster)

    @property
    def type(self) -> StateType:
        return self._type

    @property
    def data(self) -> Any:
        """The run's value (Completed) or exception (Failed), as Prefect's `State.data`."""
        if self.is_completed():
            return self.result()
        return self._exception if self._exception is not None else self._value

    def is_pending(self) -> bool:
        return self.type == StateType.PENDING

    def is_scheduled(self) -> bool:
        return self.type == StateType.SCHEDULED

    def is_running(self) -> bool:
        return self.type == StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type == StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type == StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type == StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type == StateType.CANCELLED

    def is_paused(self) -> bool:
        return self.type == StateType.PAUSED

    def is_final(self) -> bool:
        return self.name in FINAL_STATES or self._type.value in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")

    def result(self, raise_on_failure: bool = True) -> T:
        if self.is_completed():
            if self._resolver is not None:
                self._value = self._resolver()
                self._resolver = None
            return self._value
        error = self._exception or _exception_for(self)
        if raise_on_failure:
            raise error
        # Prefect gives a failed state's data: its exception, or the states it was made from.
        return self._value if self._value is not None else error  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        # By value, as Prefect's states (pydantic models) compare: a task run's value is fetched only
        # when everything else is equal.
        if not isinstance(other, State):
            return NotImplemented
        return (self.name, self.message, self.timestamp, self._exception) == (
            other.name, other.message, other.timestamp, other._exception) and self._data() == other._data()

    __hash__ = object.__hash__

    def _data(self) -> Any:
        if self._resolver is not None and self.is_completed():
            return self.result()
        return self._value

    def __repr__(self) -> str:
        return f"{self.name}(message={self.message!r}, type={self.type.value})" if self.message else \
            f"{self.name}(type={self.type.value})"


def exception_for(name: str, message: str, *, failed: type[Exception] = FailedRun) -> BaseException:
    """The exception a run that ended in state `name` stands for, as `.result()` raises it: one
    mapping for the states of flow runs and task runs and for the states users make."""
    if name == NOT_RUN:
        return UpstreamFailed(message)
    if name == TIMED_OUT:
        return TaskRunTimedOut(message)
    if name == CRASHED:
        return CrashedRun(message)
    if name == CANCELLED:
        return CancelledRun(message)
    if name in FINAL_STATES:
        return failed(message)
    return RuntimeError(f"run is still {name}; it has no result yet")


def _exception_for(state: State) -> BaseException:
    return exception_for(state.name, state.message or f"run ended {state.name}")


def _state(name: str, args: tuple, kwargs: dict) -> State:
    """Prefect's constructors take keywords (`message=`, `data=`, `name=`); ours took (value/message) too."""
    kwargs.pop("cls", None)
    kwargs.pop("state_details", None)
    return State(kwargs.pop("name", None) or name, *args, **kwargs)


def Completed(value: Any = None, message: str | None = None, **kwargs: Any) -> State:
    if value is not None:
        kwargs.setdefault("data", value)
    return _state(COMPLETED, (message,), kwargs)


def Failed(message: str | None = None, exception: BaseException | None = None, **kwargs: Any) -> State:
    if exception is not None:
        kwargs.setdefault("data", exception)
    return _state(FAILED, (message,), kwargs)


def Crashed(message: str | None = None, **kwargs: Any) -> State:
    return _state(CRASHED, (message,), kwargs)


def Cancelled(message: str | None = None, **kwargs: Any) -> State:
    return _state(CANCELLED, (message,), kwargs)


def Pending(message: str | None = None, **kwargs: Any) -> State:
    return _state(PENDING, (message,), kwargs)


def Running(message: str | None = None, **kwargs: Any) -> State:
    return _state(RUNNING, (message,), kwargs)


def Scheduled(message: str | None = None, **kwargs: Any) -> State:
    kwargs.pop("scheduled_time", None)
    return _state(SCHEDULED, (message,), kwargs)


def raise_state_exception(state: State) -> None:
    """Raise the exception of a state that did not complete; nothing for a completed one (Prefect's)."""
    if not state.is_completed():
        state.result(raise_on_failure=True)


def returned_state(value: Any) -> State:
    """The state of a run whose function returned `value`: Completed, or the State it returned (Prefect's rule).

    A returned Failed/Crashed/Cancelled state carries its exception (its `data`), or one made from
    its message, so that `.result()` raises it.
    """
    if not isinstance(value, State):
        return State(COMPLETED, _value=value)
    if value.is_completed():
        return State(COMPLETED, value.message, _value=value.result())
    # A run that returns Cancelling ends Cancelled, as Prefect's engine takes it there.
    name = {StateType.CANCELLED: CANCELLED, StateType.CANCELLING: CANCELLED, StateType.CRASHED: CRASHED}.get(
        value.type, value.name if value.name in (FAILED, TIMED_OUT) else FAILED)
    error = value._exception or _exception_for(State(name, value.message or f"the run returned {value!r}"))
    return State(name, value.message, _exception=error)


def is_state_iterable(value: Any) -> bool:
    """A non-empty list, tuple or set of states only (Prefect's rule for what aggregates)."""
    return isinstance(value, (list, tuple, set)) and bool(value) and all(isinstance(v, State) for v in value)


def from_a_run(state: State) -> bool:
    """Whether a state is some run's (a task's or subflow's), not one the user's code made."""
    return bool(getattr(state, "_task_run_id", None) or getattr(state, "_run", False))


def state_from_return(value: Any) -> State:
    """The state a flow run ends in, from what its body returned (futures already turned into their
    states): Prefect 3's "final state determination".

    - a State the body made itself (`return Cancelled()`) is the run's state;
    - a run's state, or a list/tuple/set of states: Completed when all completed ("All states
      completed."), else Cancelled when any was cancelled ("1/3 states cancelled."), else Failed
      ("1/2 states failed."), the value being the state(s) returned, the exception the first
      failure's;
    - anything else: Completed with that value.
    """
    from .futures import quote

    if isinstance(value, quote):
        return State(COMPLETED, _value=value.unquote())
    if isinstance(value, State) and not from_a_run(value):
        return returned_state(value)
    if not (isinstance(value, State) or is_state_iterable(value)):
        return State(COMPLETED, _value=value)
    states = [value] if isinstance(value, State) else list(value)
    total = len(states)
    failures = [st for st in states if st.type in (StateType.FAILED, StateType.CRASHED)]
    cancelled = [st for st in states if st.type == StateType.CANCELLED]
    if all(st.is_completed() for st in states):
        return State(COMPLETED, "All states completed.", _value=value)
    if cancelled:
        name, message = CANCELLED, f"{len(cancelled)}/{total} states cancelled."
    else:
        unfinished = total - sum(st.is_final() and st.name != NOT_RUN for st in states)
        name = FAILED
        message = f"{len(failures)}/{total} states failed." if failures else \
            f"{unfinished}/{total} states are not final."
    first = next(st for st in states if not st.is_completed())
    error = first._exception or _exception_for(first)
    return State(name, message, _value=value, _exception=error)

