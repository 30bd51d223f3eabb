"""How a worker's reports reach the engine: one execution's start, retries, end and log lines
(`Reports`), batched per topic by the worker's `Shipper` into `log_event` messages.

The reports themselves, and their form on the wire, are `flows_tui.engine.wire`.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable

from flows_tui.record.logs import format_record

from . import attempt_ledger
from .wire import AttemptEndMsg, AttemptRetryMsg, AttemptStartMsg, LogBatchMsg, carry_start

# Reports leave the worker in batches at least this often: one message per batch keeps the
# scheduler's work per task small, which is most of what separates a flow from raw Dask.
FLUSH_INTERVAL_SECONDS = 0.05
# A report after a quiet moment waits this long for what follows it: a short task's start then
# leaves with its end, as one message. A start sent on its own went out just before the task's
# result, and the worker's and the scheduler's streams each send at most one batch every 2 ms:
# the result waited behind it twice (a small flow's result came ~3 ms later than raw Dask's).
# A worker that dies meanwhile still leaves the start on record (`attempt_ledger`).
START_HOLD_SECONDS = 0.01


class Shipper:
    """Batches a worker's reports per topic and sends each batch as one `log_event` message."""

    def __init__(self, worker: Any) -> None:
        self._worker = weakref.ref(worker)
        self._lock = threading.Lock()
        self._pending: dict[str, list[dict]] = {}
        # The log message of each execution still open to more lines, by (task run, execution).
        self._open_logs: dict[tuple[str, str], dict] = {}
        self._generation = 0  # bumped at every flush: tells whether a message has left yet
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._at_task_end = False  # an end to send as the worker tells the scheduler its task ended
        try:
            worker.loop.add_callback(worker.plugins.setdefault, FLUSH_PLUGIN, _FlushAtTaskEnd(self))
        except Exception:  # not a Dask worker we know: ends leave from the shipping thread
            pass

    def send(self, topic: str, message: dict) -> int:
        """Queue `message`; returns the batch it went into (for `end`)."""
        message = _utf8(message)
        with self._lock:
            # Later lines of this execution must follow the message, not join a log message before it.
            self._open_logs.pop((message["tr"], message["x"]), None)
            return self._queue(topic, message)

    def log(self, topic: str, head: LogBatchMsg, line: tuple) -> None:
        """Queue a log line; consecutive lines of one attempt travel as one message.

        A message per line is per-message work for the worker, the scheduler and the client on
        every line. Measured on worker processes, 10,000 lines logged in a tight loop all reached
        the client within 93 ms this way, 138 ms as messages of their own.
        """
        key = (head.task_run_id, head.execution)
        line = _utf8(line)
        with self._lock:
            message = self._open_logs.get(key)
            if message is None or message["a"] != head.attempt:
                message = self._open_logs[key] = LogBatchMsg(head.task_run_id, head.execution, head.attempt).to_wire()
                self._queue(topic, message)
            message["lines"].append(line)

    def _queue(self, topic: str, message: dict) -> int:
        """Append to the current batch (lock held); starts the shipping thread and wakes it."""
        self._pending.setdefault(topic, []).append(message)
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="flows-tui-shipper", daemon=True)
            self._thread.start()
        # Only a message that finds the flag clear needs to wake the loop: one queued while it is
        # still set (before the loop clears it) is in the batch the loop's next flush takes.
        if not self._wake.is_set():
            self._wake.set()
        return self._generation

    def end(self, topic: str, start: dict, start_batch: int, message: dict) -> None:
        """Queue an attempt's end; a start still waiting in the same batch becomes part of it.

        Most tasks start and end within one batch: one message instead of two halves what the
        scheduler relays per task.
        """
        message = _utf8(message)
        with self._lock:
            if start_batch == self._generation:
                carry_start(start, message)
            else:
                self._open_logs.pop((message["tr"], message["x"]), None)
                self._queue(topic, message)
            if self._idle():
                # Nothing else runs or waits here: no burst to batch with, and the run may be
                # waiting for this end alone (a small flow took its whole interval longer). It
                # leaves with the worker's message that the task ended (`_FlushAtTaskEnd`): sent
                # on its own a moment before, it held that message up to 2 ms (the worker's
                # stream sends a batch at most that often), and the task's result with it.
                self._at_task_end = True

    def _idle(self) -> bool:
        """Whether this worker has no task but the one ending, running or ready to run."""
        worker = self._worker()
        state = getattr(worker, "state", None)
        try:
            return state.executing_count <= 1 and not state.ready and not state.constrained
        except AttributeError:  # not a Dask worker's state we know
            return False

    def flush(self) -> None:
        with self._lock:
            self._at_task_end = False
            self._generation += 1
            pending, self._pending = self._pending, {}
            self._open_logs = {}
        worker = self._worker()
        if worker is None:
            return
        for topic, messages in pending.items():
            worker.log_event(topic, messages)

    def _loop(self) -> None:
        last_flush = 0.0
        while self._worker() is not None:
            self._wake.wait()
            # A report after a quiet moment leaves within START_HOLD_SECONDS (an end on an idle
            # worker with its task's end, see `end`), and the UI shows it without delay. Within a
            # burst, reports wait for the rest of the interval and leave together as one message.
            time.sleep(max(last_flush + FLUSH_INTERVAL_SECONDS - time.monotonic(), START_HOLD_SECONDS))
            self._wake.clear()
            last_flush = time.monotonic()
            try:
                self.flush()
            except Exception:  # a closing worker; nothing to deliver to
                return


FLUSH_PLUGIN = "flows-tui-flush-reports"


class _FlushAtTaskEnd:
    """A Dask worker plugin (added to the worker's plugins by its shipper, on its event loop):
    an attempt's end goes into the same batch as the worker's message that the task ended.

    Dask calls `transition` on the event loop and sends the transition's messages to the
    scheduler right after: the end, sent from here, joins the batch they go in.
    """

    def __init__(self, shipper: Shipper) -> None:
        self.shipper = shipper

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if start == "executing" and self.shipper._at_task_end:  # flush() clears the flag
            self.shipper.flush()


def _utf8(value: Any) -> Any:
    """`value` with every string UTF-8 can encode: a lone surrogate (a latin-1 file name from
    `os.listdir`) written as `\\udce9`. Dask sends reports as msgpack, which fails on one and
    takes the worker's connection down with it: the run then waited forever.

    A report (a dict) is mended in place, since a queued start is updated later by its end;
    anything else comes back as it was unless it had to change.
    """
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        for key, item in value.items():
            kind = type(item)
            if (kind is str and item.isascii()) or kind is int or kind is float or item is None:
                continue  # most of a report: nothing to mend, and no call to find that out
            mended = _utf8(item)
            if mended is not item:
                value[key] = mended
        return value
    if isinstance(value, (tuple, list)):
        mended = [_utf8(item) for item in value]
        if any(new is not old for new, old in zip(mended, value)):
            return type(value)(mended)
    return value


_shippers: "weakref.WeakKeyDictionary[Any, Shipper]" = weakref.WeakKeyDictionary()
_shippers_lock = threading.Lock()


def shipper() -> Shipper:
    from distributed import get_worker

    worker = get_worker()
    shipper = _shippers.get(worker)
    if shipper is None:
        with _shippers_lock:
            shipper = _shippers.get(worker)
            if shipper is None:
                shipper = _shippers[worker] = Shipper(worker)
    return shipper


_process_tag = os.urandom(5).hex()
_executions = itertools.count()


def _new_process_tag() -> None:
    global _process_tag
    _process_tag = os.urandom(5).hex()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_new_process_tag)  # a forked worker must not repeat its parent's ids


def _execution_id() -> str:
    """Unique per execution across the cluster's processes: a random tag per process and a count.

    uuid4 would cost a system call per task run (and the GIL, to the worker's own event loop).
    """
    return f"{_process_tag}{next(_executions):x}"


def _worker() -> tuple[str | None, str | None]:
    """The worker's label for attempts, and its address (None, None outside a worker)."""
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return None, None
    return worker_label(worker.name, worker.address), worker.address


def worker_label(name: Any, address: str) -> str:
    """How an attempt names its worker: its own name, or where it listens when the name is only a
    LocalCluster's number ("0" says nothing next to Dask's dashboard, "127.0.0.1:40123" does)."""
    text = "" if name is None else str(name)
    if text and not text.isdigit():
        return text
    return address.split("://", 1)[-1]


class Reports:
    """The reports of one execution of a task run, on its run's topic."""

    def __init__(self, topic: str, task_run_id: str) -> None:
        self.shipper = shipper()
        self.topic = topic
        self.task_run_id = task_run_id
        self.execution = _execution_id()
        self._start: dict[str, Any] | None = None  # the open attempt's start, as queued
        self._start_batch = -1
        self._in_ledger = False

    def start(self, attempt: int) -> None:
        label, address = _worker()
        wire = AttemptStartMsg(self.task_run_id, self.execution, attempt, time.time(), label).to_wire()
        # Also where the engine can read it if this process dies before the report leaves it.
        self._in_ledger = attempt_ledger.started(address, self.topic, dict(wire))
        self._start, self._start_batch = wire, self.shipper.send(self.topic, wire)

    def retry(self, attempt: int, state: str, error: str | None, traceback: str | None, delay: float) -> None:
        self._start = None
        if self._in_ledger:
            attempt_ledger.ended()
        self.shipper.send(self.topic, AttemptRetryMsg(self.task_run_id, self.execution, attempt, time.time(), state,
                                                      error, traceback, delay).to_wire())

    def end(self, attempt: int, state: str, error: str | None = None, traceback: str | None = None,
            when: float | None = None) -> None:
        """The attempt's (or, with attempt 0, the task run's) end, at `when` (epoch seconds; default
        now); it carries the start still waiting in its batch."""
        wire = AttemptEndMsg(self.task_run_id, self.execution, attempt, time.time() if when is None else when, state,
                             error, traceback).to_wire()
        start, self._start = self._start, None
        if self._in_ledger:
            attempt_ledger.ended()
            self._in_ledger = False
        if start is not None:
            self.shipper.end(self.topic, start, self._start_batch, wire)
        else:
            self.shipper.send(self.topic, wire)

    def logger(self, attempt: int) -> Callable[[logging.LogRecord], None]:
        """What the attempt's captured log records and prints go to."""
        head = LogBatchMsg(self.task_run_id, self.execution, attempt)

        def emit(record: logging.LogRecord) -> None:
            self.shipper.log(self.topic, head, (record.created, record.levelno, format_record(record), record.name))

        return emit
