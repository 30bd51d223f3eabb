"""What a task run returns through Dask: the `Outcome` envelope, and Dask's serializer for it.

`run_task` never raises: it returns an envelope (the value, or the error, or "not run because
upstream X failed"), so Dask schedules the whole graph at full speed while our semantics hold
downstream. An envelope whose value cannot be pickled travels as a small UNSENDABLE one instead.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from typing import Any

from flows_tui.states import COMPLETED, SUCCESS_STATES, UpstreamFailed


class Outcome:
    """The envelope a task run returns through Dask: its final state and its value or error."""

    __slots__ = ("state", "value", "exception", "message", "name", "task_run_id", "in_process")

    def __init__(self, state: str, *, value: Any = None, exception: BaseException | None = None,
                 message: str | None = None, name: str = "", task_run_id: str = "") -> None:
        self.state = state
        self.value = value
        self.exception = exception
        self.message = message
        self.name = name
        self.task_run_id = task_run_id
        # True when the task ran in the process driving its flow (a LocalCluster of threads): its value
        # then goes to the flow and to other tasks as the object itself, as in Prefect's thread pool.
        self.in_process = False

    @property
    def ok(self) -> bool:
        return self.state in SUCCESS_STATES

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, slot) for slot in self.__slots__)

    def __setstate__(self, state: tuple) -> None:
        for slot, value in zip(self.__slots__, state):
            setattr(self, slot, value)

    def __repr__(self) -> str:
        return f"Outcome({self.state}, {self.name})"


# Values that cannot leave their worker ---------------------------------------------------------

# The state of the stand-in envelope that travels instead of one whose value cannot be pickled.
# It exists only in transit: the receiver (run_task, the engine) turns it into a Failed task run
# or an exception for the body. The task that made the value did complete.
UNSENDABLE = "Unsendable"


class ResultNotSerializable(Exception):
    """A task's value cannot be pickled, so it cannot leave the worker that holds it."""

    def __init__(self, task: str, reason: str, destination: str = "from its worker") -> None:
        super().__init__(task, reason, destination)

    def __str__(self) -> str:
        task, reason, destination = self.args
        return f"the result of {task} could not be sent {destination}: {reason}"

    def sent(self, destination: str) -> "ResultNotSerializable":
        """The same problem, told from where the value was needed ("to another worker", "to the flow")."""
        return ResultNotSerializable(self.args[0], self.args[1], destination)


def _unsendable(outcome: Outcome, error: BaseException) -> Outcome:
    reason = str(error) or type(error).__name__
    if len(reason) > 500:
        reason = reason[:500] + "…"
    kind = type(outcome.value).__qualname__
    if f"'{kind}'" not in reason and f".{kind}'" not in reason:  # name the value's type unless the error does
        reason = f"{reason} (the value is a {kind})"
    problem = ResultNotSerializable(outcome.name, reason)
    return Outcome(UNSENDABLE, exception=problem, message=str(problem), name=outcome.name,
                   task_run_id=outcome.task_run_id)


class _QuietWhileSerializing(logging.Filter):
    """Drops Dask's "Failed to serialize" traceback for an envelope whose failure we report ourselves."""

    active = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.active, "on", False)


def _serialize_outcome(outcome: Outcome, context: dict | None = None) -> tuple[dict, list]:
    """Dask's serializer for envelopes: the value goes as Dask sends a task's value, the rest pickled.

    The value is serialized by Dask's own `serialize` (its per-type serializers, then pickle with
    buffers out of band), apart from the envelope's few small fields: bytes, arrays and frames
    travel as the same zero-copy frames as raw Dask's. Pickled inside the envelope, a value was
    copied into the pickle on the worker and out of it here (10 MB took 2x raw Dask's time).
    When the value cannot be serialized, Dask would send an error in its place that its receiver
    fails to load: a worker then marks the upstream "error" locally, the scheduler ignores that
    for a key held in memory, and the consumer waits forever (dask/distributed#6705); a client
    raises "Could not serialize object of type Outcome". Sent instead: a small UNSENDABLE
    envelope that says which task's value could not be pickled and why. Spilling to disk (no
    comm context) keeps Dask's own handling: the value stays in memory.
    """
    from distributed.protocol.serialize import pickle_dumps, serialize

    fields = outcome.__getstate__()
    value = fields[1]
    if outcome.in_process and value is not None and context is not None:
        # Every receiver lives in this process (a LocalCluster of threads): the value itself, uncopied.
        from .in_process import send_along

        value = _InTransit(send_along(value))
    quiet = _QuietWhileSerializing.active
    was_on = getattr(quiet, "on", False)
    quiet.on = True
    try:
        value_header, value_frames = serialize(value, on_error="raise", context=context)
    except Exception as error:
        if context is None:
            raise
        # Dask's "Could not serialize object of type X" wraps the pickling error that says why.
        return pickle_dumps(_unsendable(outcome, error.__cause__ or error).__getstate__(), context)
    finally:
        quiet.on = was_on
    header, frames = pickle_dumps((fields[0], None, *fields[2:]), context)
    return {"envelope": header, "value": value_header, "envelope-frames": len(frames)}, frames + list(value_frames)


def _deserialize_outcome(header: dict, frames: list) -> Outcome:
    from distributed.protocol.serialize import deserialize, pickle_loads

    outcome = Outcome.__new__(Outcome)
    outcome.in_process = False
    if "envelope" not in header:  # a small envelope pickled whole (UNSENDABLE)
        outcome.__setstate__(pickle_loads(header, frames))
        return outcome
    count = header["envelope-frames"]
    outcome.__setstate__(pickle_loads(header["envelope"], frames[:count]))
    outcome.value = deserialize(header["value"], frames[count:])
    if type(outcome.value) is _InTransit:
        from .in_process import receive

        outcome.value = receive(outcome.value.token)
    return outcome


@dataclass(frozen=True)
class _InTransit:
    """Stands for an envelope's value on a comm inside one process (`in_process.send_along`)."""

    token: int


_serializer_registered = False


def _register_outcome_size() -> None:
    """Dask sizes an envelope by its value: its memory accounting (spilling, the scheduler's
    `nbytes`, how much the engine fetches ahead) would otherwise see ~100 bytes for any result."""
    from dask.sizeof import sizeof

    @sizeof.register(Outcome)
    def _size_of_outcome(outcome: Outcome) -> int:
        return 100 + sizeof(outcome.value)


def register_outcome_serializer() -> None:
    """Register the envelope's Dask serializer; every process that sends or receives envelopes needs it.

    Workers have Dask loaded when they import this module; the client registers when a run starts.
    """
    global _serializer_registered
    if _serializer_registered:
        return
    from distributed.protocol.serialize import dask_deserialize, dask_serialize

    dask_serialize.register(Outcome, _serialize_outcome)
    dask_deserialize.register(Outcome, _deserialize_outcome)
    _register_outcome_size()
    logging.getLogger("distributed.protocol.pickle").addFilter(_QuietWhileSerializing())
    _serializer_registered = True


if "distributed" in sys.modules:  # a worker unpickling run_task (or an envelope's type) imports us here
    register_outcome_serializer()


@dataclass(frozen=True, slots=True)
class Ref:
    """Marks where an upstream result goes in a task's arguments (an index into `deps`).

    Slots: each element of a map over a future carries one in the graph the scheduler keeps
    (48 bytes, not 200 with a `__dict__`)."""

    dep: int
    item: int | None = None  # the element of the upstream's value, when mapping over a future


def outcome_length(outcome: Outcome) -> int:
    """Run on the cluster to learn how many elements a mapped-over upstream has, without moving it."""
    if not outcome.ok:
        raise UpstreamFailed(outcome.message or f"upstream ended {outcome.state}")
    return len(outcome.value)


def outcome_summary(outcome: Outcome) -> tuple[str, str | None]:
    if outcome.state == UNSENDABLE:  # it came from another worker: the task completed, its value stays there
        return COMPLETED, None
    return outcome.state, outcome.message
