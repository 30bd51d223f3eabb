"""What runs on a Dask worker for one task run: upstream checks, attempts, retries, timeouts.

`run_task` never raises. It returns an `Outcome` envelope (the value, or the error,
or "not run because upstream X failed"), so Dask schedules the whole graph at full
speed while our semantics hold downstream. Progress travels to the client as
batched messages on the run's `log_event` topic.
"""

from __future__ import annotations

import contextvars
import ctypes
import itertools
import logging
import os
import pickle
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from flows_tui.breakpoints import install_breakpoint_hook
from flows_tui.cache import CacheKeyContext, CacheSpec, Lookup, look_up, store
from flows_tui.cache_policies import policy_of
from flows_tui.context import TaskRunContext, run_hook, task_run_var
from flows_tui.record.logs import format_record, install_log_capture, install_print_capture
from flows_tui.states import (CACHED, COMPLETED, FAILED, NOT_RUN, RUNNING, SUCCESS_STATES, TIMED_OUT, State,
                              TaskRunTimedOut, UpstreamFailed, returned_state)
from flows_tui.tracebacks import format_exception

# A retry delay longer than this gives the worker thread back to Dask while it waits.
SECEDE_AFTER_SECONDS = 0.2
# Reports leave the worker in batches at least this often: one message per batch keeps the
# scheduler's work per task small, which is most of what separates a flow from raw Dask.
FLUSH_INTERVAL_SECONDS = 0.05


class Outcome:
    """The envelope a task run returns through Dask: its final state and its value or error."""

    __slots__ = ("state", "value", "exception", "message", "name", "task_run_id")

    def __init__(self, state: str, *, value: Any = None, exception: BaseException | None = None,
                 message: str | None = None, name: str = "", task_run_id: str = "") -> None:
        self.state = state
        self.value = value
        self.exception = exception
        self.message = message
        self.name = name
        self.task_run_id = task_run_id

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
    """Dask's serializer for envelopes: exactly its pickle serializer, plus what to do on failure.

    The value is pickled once, as Dask would (protocol 5, buffers out of band). When it cannot be
    pickled, Dask would send an error in its place that its receiver fails to load: a worker then
    marks the upstream "error" locally, the scheduler ignores that for a key held in memory, and
    the consumer waits forever (dask/distributed#6705); a client raises "Could not serialize
    object of type Outcome". Sent instead: a small UNSENDABLE envelope that says which task's
    value could not be pickled and why. Spilling to disk (no comm context) keeps Dask's own
    handling: the value stays in memory.
    """
    from distributed.protocol.serialize import pickle_dumps

    fields = outcome.__getstate__()
    quiet = _QuietWhileSerializing.active
    was_on = getattr(quiet, "on", False)
    quiet.on = True
    try:
        return pickle_dumps(fields, context)
    except Exception as error:
        if context is None:
            raise
        return pickle_dumps(_unsendable(outcome, error).__getstate__(), context)
    finally:
        quiet.on = was_on


def _deserialize_outcome(header: dict, frames: list) -> Outcome:
    from distributed.protocol.serialize import pickle_loads

    outcome = Outcome.__new__(Outcome)
    outcome.__setstate__(pickle_loads(header, frames))
    return outcome


_serializer_registered = False


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
    logging.getLogger("distributed.protocol.pickle").addFilter(_QuietWhileSerializing())
    _serializer_registered = True


if "distributed" in sys.modules:  # a worker unpickling run_task (or an envelope's type) imports us here
    register_outcome_serializer()


@dataclass(frozen=True)
class Ref:
    """Marks where an upstream result goes in a task's arguments (an index into `deps`)."""

    dep: int
    item: int | None = None  # the element of the upstream's value, when mapping over a future


@dataclass
class TaskCall:
    """Everything the worker needs to run one task run, besides its arguments."""

    run_id: str
    task_run_id: str
    name: str
    map_index: int | None
    topic: str
    task: Any  # the Task; its function travels by value for modules registered with cloudpickle
    allowed_failures: frozenset[int] = frozenset()
    log_prints: bool = False
    log_level: int = logging.INFO
    cache: CacheSpec | None = None  # None: the task has no cache options


class TaskRaisedBaseException(RuntimeError):
    """What the flow body gets for a task that raised SystemExit, KeyboardInterrupt or another BaseException."""


class AttemptTimedOut(BaseException):
    """Injected into a task's thread at its deadline; a BaseException so `except Exception` cannot swallow it."""


# Shipping messages to the client ------------------------------------------------------------

class _Shipper:
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

    def send(self, topic: str, message: dict) -> int:
        """Queue `message`; returns the batch it went into (for `end`)."""
        message = _utf8(message)
        with self._lock:
            # Later lines of this execution must follow the message, not join a log message before it.
            self._open_logs.pop((message["tr"], message["x"]), None)
            return self._queue(topic, message)

    def log(self, topic: str, head: dict, line: tuple) -> None:
        """Queue a log line; consecutive lines of one attempt travel as one message.

        A message per line is per-message work for the worker, the scheduler and the client on
        every line. Measured on worker processes, 10,000 lines logged in a tight loop all reached
        the client within 93 ms this way, 138 ms as messages of their own.
        """
        key = (head["tr"], head["x"])
        line = _utf8(line)
        with self._lock:
            message = self._open_logs.get(key)
            if message is None or message["a"] != head["a"]:
                message = self._open_logs[key] = {**head, "k": "log", "lines": []}
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
                start.update(message, st=start["t"])
                return
        self.send(topic, message)

    def flush(self) -> None:
        with self._lock:
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
            # A report after a quiet moment leaves at once: a task's start is on record before the
            # worker could die under it, and the UI shows it without delay. Within a burst, reports
            # wait for the rest of the interval and leave together as one message.
            wait = last_flush + FLUSH_INTERVAL_SECONDS - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._wake.clear()
            last_flush = time.monotonic()
            try:
                self.flush()
            except Exception:  # a closing worker; nothing to deliver to
                return


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
            mended = _utf8(item)
            if mended is not item:
                value[key] = mended
        return value
    if isinstance(value, (tuple, list)):
        mended = [_utf8(item) for item in value]
        if any(new is not old for new, old in zip(mended, value)):
            return type(value)(mended)
    return value


_shippers: "weakref.WeakKeyDictionary[Any, _Shipper]" = weakref.WeakKeyDictionary()
_shippers_lock = threading.Lock()


def _shipper() -> _Shipper:
    from distributed import get_worker

    worker = get_worker()
    shipper = _shippers.get(worker)
    if shipper is None:
        with _shippers_lock:
            shipper = _shippers.get(worker)
            if shipper is None:
                shipper = _shippers[worker] = _Shipper(worker)
    return shipper


# Arguments --------------------------------------------------------------------------------

def substitute(template: Any, deps: list[Any]) -> Any:
    """Replace each `Ref` in `template` (inside lists, tuples, dicts, sets) with its upstream value."""
    kind = type(template)
    if kind is Ref:
        outcome = deps[template.dep]
        value = outcome.value if outcome.ok else (outcome.exception or UpstreamFailed(outcome.message))
        return value if template.item is None else value[template.item]
    if kind is list:
        return [substitute(v, deps) for v in template]
    if kind is tuple:
        return tuple(substitute(v, deps) for v in template)
    if kind is dict:
        return {k: substitute(v, deps) for k, v in template.items()}
    if kind in (set, frozenset):
        return kind(substitute(v, deps) for v in template)
    return template


# Running --------------------------------------------------------------------------------

def _portable_exception(error: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a stand-in with the same text.

    A task's SystemExit or KeyboardInterrupt raised again in the flow body (a direct call,
    `.result()`) would stop the process driving the flow: the body gets an ordinary error.
    """
    if not isinstance(error, Exception):
        return TaskRaisedBaseException(f"the task raised {_describe(error)}")
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _format_traceback(error: BaseException) -> str:
    return format_exception(error)


def _call_with_deadline(fn: Any, args: tuple, kwargs: dict, seconds: float) -> Any:
    """Run `fn` in its own thread; at the deadline interrupt it and raise TaskRunTimedOut here.

    A thread of its own lets the attempt end on time even when the code is stuck in a C call
    (time.sleep, a socket read) that an injected exception cannot interrupt until it returns:
    that thread is then abandoned and stops at its next Python instruction.
    """
    box: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(fn, *args, **kwargs)
        except AttemptTimedOut:
            pass
        except BaseException as error:  # handed to the attempt as its own failure
            box["error"] = error
        finally:
            done.set()

    thread = threading.Thread(target=target, name="flows-tui-attempt", daemon=True)
    thread.start()
    if not done.wait(seconds):
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(AttemptTimedOut))
        raise TaskRunTimedOut(f"timed out after {seconds:g}s (timeout_seconds={seconds:g})")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _wait_before_retry(delay: float) -> None:
    if delay <= 0:
        return
    if delay < SECEDE_AFTER_SECONDS:
        time.sleep(delay)
        return
    from distributed import rejoin, secede

    try:
        secede()
    except Exception:  # not on a Dask executor thread (e.g. a timed attempt's own thread)
        time.sleep(delay)
        return
    try:
        time.sleep(delay)
    finally:
        rejoin()


def _run_hooks(hooks: list, task: Any, task_run: Any, state: State, log: Any) -> None:
    for hook in hooks:
        try:
            run_hook(hook, task, task_run, state)
        except Exception as error:
            log(logging.ERROR, f"hook {getattr(hook, '__name__', hook)!r} failed: {_describe(error)}\n"
                               f"{_format_traceback(error)}")


class TaskRunInfo:
    """The `task_run` object given to hooks and `retry_condition_fn` (Prefect passes a TaskRun)."""

    def __init__(self, call: TaskCall, attempt: int) -> None:
        self.id = call.task_run_id
        self.name = call.name
        self.flow_run_id = call.run_id
        self.map_index = call.map_index
        self.run_count = attempt
        self.task_key = call.task.name

    def __repr__(self) -> str:
        return f"TaskRun(name={self.name!r}, run_count={self.run_count})"


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


def run_task(call: TaskCall, args: tuple, kwargs: dict, deps: list) -> Outcome:
    shipper = _shipper()
    execution = _execution_id()
    topic = call.topic
    base = {"tr": call.task_run_id, "x": execution}

    unsendable = None
    for index, upstream in enumerate(deps):
        if upstream.state == UNSENDABLE:  # the upstream completed, but its value could not come here
            unsendable = unsendable or upstream
            continue
        if not upstream.ok and index not in call.allowed_failures:
            # Name the task that actually failed, not the NotRun ones between it and here.
            message = upstream.message if upstream.state == NOT_RUN and upstream.message else \
                f"upstream task {upstream.name!r} ended {upstream.state}"
            shipper.send(topic, {**base, "k": "end", "a": 0, "t": time.time(), "s": NOT_RUN, "err": message})
            return Outcome(NOT_RUN, message=message, name=call.name, task_run_id=call.task_run_id,
                           exception=UpstreamFailed(message))
    if unsendable is not None:
        return _missing_input(call, shipper, base, unsendable)
    if deps:
        args = substitute(args, deps)
        kwargs = substitute(kwargs, deps)

    task = call.task
    lookup = None
    if call.cache is not None:
        lookup = _look_up(call, args, kwargs)
        if lookup.hit:
            return _cached(call, shipper, base, lookup)
    attempt = 0
    install_log_capture()
    install_breakpoint_hook()
    if call.log_prints:
        install_print_capture()
    while True:
        attempt += 1
        batch_log = _attempt_logger(shipper, topic, base, attempt)
        context = TaskRunContext(call.run_id, call.task_run_id, task.name, call.name, call.map_index,
                                 attempt, call.log_prints, batch_log, call.log_level)
        start = {**base, "k": "start", "a": attempt, "t": time.time(), "w": _worker_name()}
        start_batch = shipper.send(topic, start)
        if attempt == 1 and lookup is not None and lookup.warning:
            _hook_logger(batch_log, "flows_tui.cache")(logging.WARNING, lookup.warning)
        if getattr(task, "on_running_hooks", None):
            _run_hooks(task.on_running_hooks, task, TaskRunInfo(call, attempt), State(RUNNING),
                       _hook_logger(batch_log))
        token = task_run_var.set(context)
        try:
            if task.timeout_seconds:
                value = _call_with_deadline(task.run_fn, args, kwargs, task.timeout_seconds)
            else:
                value = task.run_fn(*args, **kwargs)
            state = returned_state(value)  # a task that returns a State ends in it, as in Prefect
            error = state._exception
        except TaskRunTimedOut as timeout:
            state, error = State(TIMED_OUT, str(timeout), _exception=timeout), timeout
        except AttemptTimedOut:  # only if the deadline fired as the call returned
            error = TaskRunTimedOut(f"timed out after {task.timeout_seconds:g}s")
            state = State(TIMED_OUT, str(error), _exception=error)
        except BaseException as failure:
            # A task's SystemExit, KeyboardInterrupt, asyncio.CancelledError or own BaseException
            # ends its attempt like any error. Let out, it killed the worker process (three times,
            # then KilledWorker), or Dask took it for the worker's death, or the run hung.
            state, error = State(FAILED, _describe(failure), _exception=failure), failure
        finally:
            task_run_var.reset(token)

        task_run = TaskRunInfo(call, attempt)
        log = _hook_logger(batch_log)
        if error is None:
            if lookup is not None and lookup.path is not None:
                problem = store(lookup, state._value)
                if problem:
                    _hook_logger(batch_log, "flows_tui.cache")(logging.WARNING, problem)
            shipper.end(topic, start, start_batch, {**base, "k": "end", "a": attempt, "t": time.time(), "s": COMPLETED})
            _run_hooks(task.on_completion_hooks, task, task_run, state, log)
            return Outcome(COMPLETED, value=state._value, name=call.name, task_run_id=call.task_run_id)

        tb = _format_traceback(error)
        if attempt <= task.retries and _should_retry(task, task_run, state, log):
            delay = task.retry_delay(attempt)
            shipper.send(topic, {**base, "k": "retry", "a": attempt, "t": time.time(), "s": state.name,
                                 "err": state.message, "tb": tb, "d": delay})
            _wait_before_retry(delay)
            continue
        shipper.end(topic, start, start_batch, {**base, "k": "end", "a": attempt, "t": time.time(), "s": state.name,
                             "err": state.message, "tb": tb})
        _run_hooks(task.on_failure_hooks, task, task_run, state, log)
        return Outcome(state.name, exception=_portable_exception(error), message=state.message, name=call.name,
                       task_run_id=call.task_run_id)


def _look_up(call: TaskCall, args: tuple, kwargs: dict) -> Lookup:
    """The task run's cache key from its arguments (upstream values already in place), and its entry."""
    task = call.task
    try:
        bound = task.signature.bind(*args, **kwargs)
    except TypeError as error:  # the call itself will fail the same way, with the user's traceback
        return Lookup(warning=f"not cached: {error}")
    bound.apply_defaults()  # f(1) and f(1, b=<its default>) are the same call
    context = CacheKeyContext(task, TaskRunInfo(call, 0), dict(bound.arguments), call.cache.task_source)
    return look_up(call.cache, policy_of(task), context)


def _missing_input(call: TaskCall, shipper: _Shipper, base: dict, upstream: Outcome) -> Outcome:
    """An upstream's value could not be pickled to reach this worker: this task run fails, without an attempt.

    Failed even under `allow_failure`: the upstream did not fail, its value exists and cannot be
    delivered. No retry: the same value would fail the same way.
    """
    error = upstream.exception.sent("to another worker")
    message = str(error)
    shipper.send(call.topic, {**base, "k": "end", "a": 0, "t": time.time(), "s": FAILED, "err": message})
    state = State(FAILED, message, _exception=error)
    log = _hook_logger(_attempt_logger(shipper, call.topic, base, 0))
    _run_hooks(call.task.on_failure_hooks, call.task, TaskRunInfo(call, 0), state, log)
    return Outcome(FAILED, exception=error, message=message, name=call.name, task_run_id=call.task_run_id)


def _cached(call: TaskCall, shipper: _Shipper, base: dict, lookup: Lookup) -> Outcome:
    """A cache hit: the task's function does not run; the task run ends Cached with the stored value."""
    shipper.send(call.topic, {**base, "k": "end", "a": 0, "t": time.time(), "s": CACHED,
                              "err": lookup.describe_hit()})
    # As in Prefect 3, Cached is a Completed state: on_completion hooks run.
    state = State(CACHED, _value=lookup.value)
    log = _hook_logger(_attempt_logger(shipper, call.topic, base, 0))
    _run_hooks(call.task.on_completion_hooks, call.task, TaskRunInfo(call, 0), state, log)
    return Outcome(CACHED, value=lookup.value, name=call.name, task_run_id=call.task_run_id)


def _should_retry(task: Any, task_run: TaskRunInfo, state: State, log: Any) -> bool:
    if task.retry_condition_fn is None:
        return True
    try:
        return bool(task.retry_condition_fn(task, task_run, state))
    except Exception as error:
        log(logging.ERROR, f"retry_condition_fn failed, not retrying: {_describe(error)}")
        return False


def _attempt_logger(shipper: _Shipper, topic: str, base: dict, attempt: int):
    head = {**base, "a": attempt}

    def emit(record: logging.LogRecord) -> None:
        shipper.log(topic, head, (record.created, record.levelno, format_record(record), record.name))

    return emit


def _hook_logger(emit: Any, name: str = "flows_tui.hooks"):
    def log(level: int, message: str) -> None:
        emit(logging.LogRecord(name, level, "", 0, message, None, None))

    return log


def _worker_name() -> str | None:
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return None
    return str(worker.name) if worker.name is not None else worker.address


def outcome_length(outcome: Outcome) -> int:
    """Run on the cluster to learn how many elements a mapped-over upstream has, without moving it."""
    if not outcome.ok:
        raise UpstreamFailed(outcome.message or f"upstream ended {outcome.state}")
    return len(outcome.value)


def outcome_summary(outcome: Outcome) -> tuple[str, str | None]:
    if outcome.state == UNSENDABLE:  # it came from another worker: the task completed, its value stays there
        return COMPLETED, None
    return outcome.state, outcome.message

