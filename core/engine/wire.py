"""The reports a task's worker sends the engine of its flow run, and their form on the wire.

A worker reports on a Dask `log_event` topic that the run's client subscribes to: when an
attempt starts, retries and ends, and the log lines it writes. Every task run sends at
least one report and the scheduler relays them all, so on the wire a report is a small
dict with short keys; it is made (`to_wire()`) and read (`from_wire()`) only here, as
distributed names its messages (`TaskFinishedMsg` with `to_dict()`).

A report is not an event of the run (`record/events`), though they look alike: it is what
one execution saw on its worker (its own attempt count, the worker's clock, no run id).
`task_reports` is the one place reports become events: it numbers attempts across
executions (start → AttemptStarted; retry → AttemptEnded and Retrying; end → AttemptEnded
and the task run's end; log → LogLines) and records a report that comes after its task run
was ended from the cluster without reopening it.

    k          which report: "start", "retry", "end", "log"
    tr, x      the task run, and the execution: one Dask execution of the task, unique on
               the cluster (Dask runs a task again when the worker running it died)
    a          the attempt within the execution (0: it ended before any attempt ran)
    t          when, epoch seconds on the worker's clock
    w          the worker's name
    s, err, tb the state reached, its message, its traceback
    d          seconds until the next attempt (retry)
    st         when the attempt started, on an end that carries its start: an attempt that
               started and ended within one batch travels as one message
    lines      (created, level, message, logger name) of each line (log)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from sys import intern
from typing import Any, ClassVar, Union


@dataclass(frozen=True)
class AttemptStartMsg:
    op: ClassVar[str] = "start"

    task_run_id: str
    execution: str
    attempt: int
    time: float
    worker: str | None = None
    # Set when the start comes from the ledger of a worker that died before sending it: that
    # worker's address (the attempt ended with it). See attempt_ledger and nanny_ledger.
    died: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire = {"k": self.op, "tr": self.task_run_id, "x": self.execution, "a": self.attempt, "t": self.time,
                "w": self.worker}
        if self.died is not None:
            wire["died"] = self.died
        return wire


@dataclass(frozen=True)
class AttemptRetryMsg:
    op: ClassVar[str] = "retry"

    task_run_id: str
    execution: str
    attempt: int
    time: float
    state: str
    error: str | None = None
    traceback: str | None = None
    delay: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        return {"k": self.op, "tr": self.task_run_id, "x": self.execution, "a": self.attempt, "t": self.time,
                "s": self.state, "err": self.error, "tb": self.traceback, "d": self.delay}


@dataclass(frozen=True)
class AttemptEndMsg:
    op: ClassVar[str] = "end"

    task_run_id: str
    execution: str
    attempt: int
    time: float
    state: str
    error: str | None = None
    traceback: str | None = None
    started: float | None = None  # set when the attempt's start travels in this message
    worker: str | None = None  # the start's, with it

    def to_wire(self) -> dict[str, Any]:
        wire = {"k": self.op, "tr": self.task_run_id, "x": self.execution, "a": self.attempt, "t": self.time,
                "s": self.state}
        if self.error is not None:
            wire["err"] = self.error
        if self.traceback is not None:
            wire["tb"] = self.traceback
        return wire

    def start(self) -> AttemptStartMsg | None:
        """The attempt's start, when it travelled in this message."""
        if self.started is None:
            return None
        return AttemptStartMsg(self.task_run_id, self.execution, self.attempt, self.started, self.worker)


@dataclass(frozen=True)
class LogBatchMsg:
    op: ClassVar[str] = "log"

    task_run_id: str
    execution: str
    attempt: int
    lines: list[tuple[float, int, str, str]] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        # The list itself, not a copy: the shipper adds the attempt's next lines to the queued message.
        return {"k": self.op, "tr": self.task_run_id, "x": self.execution, "a": self.attempt, "lines": self.lines}


Report = Union[AttemptStartMsg, AttemptRetryMsg, AttemptEndMsg, LogBatchMsg]


def carry_start(start: dict[str, Any], end: dict[str, Any]) -> None:
    """Make a queued start's wire form (`start`) carry the attempt's end too: one message."""
    start.update(end, st=start["t"])


def from_wire(m: dict[str, Any]) -> Report:
    """The report a wire dict carries. Its state and worker come back as one shared string each
    (`sys.intern`), not a copy per report: the run's record keeps them for every task run."""
    kind = m["k"]
    if kind == "log":
        return LogBatchMsg(m["tr"], m["x"], m["a"], m["lines"])
    if kind == "start":
        return AttemptStartMsg(m["tr"], m["x"], m["a"], m["t"], shared_text(m.get("w")), m.get("died"))
    if kind == "retry":
        return AttemptRetryMsg(m["tr"], m["x"], m["a"], m["t"], intern(m["s"]), m.get("err"), m.get("tb"),
                               float(m.get("d") or 0))
    if kind == "end":
        return AttemptEndMsg(m["tr"], m["x"], m["a"], m["t"], intern(m["s"]), m.get("err"), m.get("tb"), m.get("st"),
                             shared_text(m.get("w")))
    raise ValueError(f"unknown worker report {kind!r}")


def shared_text(text: str | None) -> str | None:
    return None if text is None else intern(text)
