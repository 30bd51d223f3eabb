"""One flow run: the driver thread running the flow body, task calls → Dask futures, final states.

The body is ordinary synchronous code. Every task call is submitted to Dask at once
with upstream futures as arguments, so Dask orders the work and moves data worker
to worker; the driver waits only where the body asks for a value. Workers report
each attempt on the run's topic; the engine turns those reports into events, folds
them into its own `RunModel` and publishes them on the bus for everyone else.
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime as _dt
import functools
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from flows_tui.record import events as ev
from flows_tui.cache import CacheSpec
from flows_tui.cache_policies import FlowParameters, TaskSource, policy_of, reads
from .cluster import scheduler_lost
from flows_tui.context import flow_run_var, run_hook, using
from flows_tui.futures import TaskFuture, TaskFutureList, allow_failure, opaque, quote, unmapped
from flows_tui.record.logs import format_record, install_log_capture, install_print_capture
from flows_tui.record.model import RunModel
from flows_tui.user_code.pickling import user_sources
from .session import Held, HeldCall, NotReusable, lineage_key
from flows_tui.states import (CACHED, CANCELLED, COMPLETED, CRASHED, FAILED, FAILURE_STATES, FINAL_STATES, NOT_RUN,
                              PENDING, RETRYING, RUNNING, SUCCESS_STATES, TIMED_OUT, CancelledRun, CrashedRun,
                              State, TaskRunTimedOut, UpstreamFailed, state_from_return)
from flows_tui.user_code.task_source import task_source
from flows_tui.tracebacks import format_exception, share_sources
from .worker import (UNSENDABLE, Outcome, Ref, TaskCall, outcome_length, outcome_summary,
                     register_outcome_serializer, run_task)

if TYPE_CHECKING:
    import distributed

    from flows_tui.flows import Flow
    from .session import Session
    from flows_tui.tasks import Task

logger = logging.getLogger("flows_tui.engine")

# How long a finished Dask future may wait for its worker's final report before the engine asks
# the cluster for the outcome itself (reports and results travel the same ordered streams, so
# this is a safety net, not a path taken in normal runs).
REPORT_GRACE_SECONDS = 2.0
# How often the watcher looks at the run's Dask futures for crashes and lost reports.
WATCH_INTERVAL_SECONDS = 0.5
# How long an interrupted flow body gets to stop before the run ends without it.
DRIVER_STOP_SECONDS = 5.0


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _utc(timestamp: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Abort(BaseException):
    """Injected into the driver thread when the flow run is cancelled or times out."""


class _Flag:
    """Whether a task run has reached a final state: `threading.Event`'s is_set/set/clear, without its lock.

    Changed only with the engine's lock held, and nobody waits on it (waiters use the engine's
    condition, which `_end_task_run` notifies), so a Condition per task run would only cost time.
    """

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False


@dataclass
class _Tracking:
    """What the engine keeps per task run besides the model: its Dask future and who used it."""

    key: str
    future: Any = None
    executions: dict[tuple[str, int], int] = field(default_factory=dict)
    open_attempt: int | None = None
    consumers: list[tuple[str, bool]] = field(default_factory=list)  # (task run id, via allow_failure)
    seen_by_body: bool = False
    finished_seen: float | None = None  # when Dask first said finished without a report
    done: _Flag = field(default_factory=_Flag)
    lineage: str | None = None  # its key in the session (None: no session, or not reusable)
    reused_from: str | None = None  # the run whose held result it reused
    call: tuple | None = None  # (task, args template, kwargs template, upstream futures, allowed) as submitted


class _Dependencies:
    """Collects the upstream futures of one task call and turns its arguments into a template."""

    def __init__(self, engine: "FlowRunEngine") -> None:
        self.engine = engine
        self.task_run_ids: list[str] = []
        self.futures: list[Any] = []
        self.strict: set[int] = set()  # indices passed at least once without allow_failure
        self._index: dict[str, int] = {}

    def ref(self, task_run_id: str, allowed: bool, item: int | None = None) -> Ref:
        index = self._index.get(task_run_id)
        if index is None:
            index = self._index[task_run_id] = len(self.task_run_ids)
            self.task_run_ids.append(task_run_id)
            self.futures.append(self.engine._tracking[task_run_id].future)
        if not allowed:
            self.strict.add(index)
        return Ref(index, item)

    def template(self, value: Any, allowed: bool = False) -> Any:
        kind = type(value)
        if kind is TaskFuture:
            if value.engine is not self.engine:
                raise ValueError(f"future {value.name!r} belongs to another flow run")
            return self.ref(value.task_run_id, allowed)
        if kind is allow_failure:
            return self.template(value.value, True)
        if kind is unmapped:
            return self.template(value.value, allowed)
        if kind is quote:  # as it is: nothing inside is resolved
            return value.value
        if kind is opaque:  # the future itself is resolved, what its value holds is not searched
            inner = value.value
            return self.template(inner, allowed) if type(inner) in (TaskFuture, State) else inner
        if kind is State and getattr(value, "_task_run_id", None):
            return self.ref(value._task_run_id, allowed)
        if isinstance(value, (list, set, frozenset)):
            items = [self.template(v, allowed) for v in value]
            return items if isinstance(value, list) else type(value)(items) if kind in (set, frozenset) else set(items)
        if isinstance(value, tuple):
            items = [self.template(v, allowed) for v in value]
            return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
        if isinstance(value, dict):
            return {k: self.template(v, allowed) for k, v in value.items()}
        return value

    @property
    def allowed(self) -> frozenset[int]:
        return frozenset(set(range(len(self.task_run_ids))) - self.strict)


class FlowRunEngine:
    """Runs one flow: the body in a driver thread, its tasks on Dask, its states as events."""

    def __init__(self, flow: "Flow", parameters: dict[str, Any], *, client: "distributed.Client",
                 bus: ev.EventBus | None = None, run_id: str | None = None, file: str | None = None,
                 address: str | None = None, log_level: int = logging.INFO,
                 cache_dir: Path | None = None, session: "Session | None" = None, reuse: bool = False) -> None:
        self.flow = flow
        self.parameters = dict(parameters)
        self.client = client
        self.bus = bus or ev.EventBus()
        self.run_id = run_id or new_run_id()
        self.topic = f"flows-tui-{self.run_id}"
        self.file = file
        self.address = address
        self.log_prints = bool(flow.log_prints)
        self.log_level = log_level  # records below it, in the body and in tasks, are not captured
        self.cache_dir = cache_dir  # where cached task results live (state_dir/cache); None: no caching
        self._cache_specs: dict["Task", CacheSpec | None] = {}
        # The session's futures live on its own client's cluster: on another client they mean nothing.
        self.session = session if session is not None and session.client is client else None
        self.reuse = reuse  # look task calls up in the session; without it the run only leaves results there
        self._not_reusable: set[str] = set()  # tasks already reported as not reusable in this run
        self._received: dict[int, tuple[Any, str]] = {}  # values the body got from task runs: id → (value, id)
        self.model = RunModel()
        self.flow_attempt = 1
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._tracking: dict[str, _Tracking] = {}
        self._by_key: dict[str, str] = {}
        self._names: dict[str, int] = defaultdict(int)
        self._open_ids: set[str] = set()  # task runs not final yet
        self._batch: list | None = None  # events held back to publish as one batch
        self._watch_stop = threading.Event()
        self._sequence = 0
        self._abort: BaseException | None = None
        self._driver: threading.Thread | None = None
        self._driver_waiting = False
        self.return_value: Any = None
        self.final: State | None = None
        # `flows-tui debug`: sees each task call before it is submitted, and may end the body there.
        self.intercept: Callable[["Task", list[tuple]], None] | None = None

    # Events -----------------------------------------------------------------------------------

    def _emit(self, *events: Any) -> None:
        """Fold into our model and publish; call with the lock held."""
        for event in events:
            self.model.apply(event)
        if self._batch is not None:
            self._batch.extend(events)
        else:
            self.bus.publish_many(events)

    @property
    def flow_run(self):
        return self.model.runs[self.run_id]

    def emit_log(self, record: logging.LogRecord) -> None:
        line = ev.LogLine(_utc(record.created), record.levelno, format_record(record), logger=record.name)
        self.bus.publish(ev.LogLines(self.run_id, (line,)))

    def log(self, level: int, message: str) -> None:
        self.bus.publish(ev.LogLines(self.run_id, (ev.LogLine(_now(), level, message, logger="flows_tui"),)))

    def _say_if_no_workers(self) -> None:
        """An attached scheduler without workers: the run would wait without a word (a `dask worker`
        exits when its scheduler dies, and a restarted scheduler has none until one is started)."""
        if getattr(self.client, "cluster", None) is not None:  # our own LocalCluster: its workers are ours
            return
        try:
            workers = self.client.nthreads()
        except Exception:  # a lost scheduler is reported by the watcher
            return
        if not workers:
            address = self.client.scheduler.address
            self.log(logging.WARNING, f"no Dask worker is connected to the scheduler at {address}; the run waits "
                                      f"until one joins (start one with `dask worker {address}`)")

    # Running the flow ---------------------------------------------------------------------------

    def run(self) -> State:
        """Run the flow with its retries and timeout; return its final state (never raises for the body)."""
        with self._lock:
            self._emit(ev.FlowRunStarted(self.run_id, self.flow.name, self.parameters, _now(), file=self.file,
                                         address=self.address))
            self.flow_run.name = self.flow.format_run_name(self.parameters) or self.run_id
        register_outcome_serializer()  # envelopes come back through Dask's serializer for them
        share_sources(self.client, user_sources())  # workers without the user's files show their lines
        reports = _ReportHandler(self)
        _subscribe(self.client, self.topic, reports)
        _worker_deaths.listen(self.client, self)
        install_log_capture()
        if self.log_prints:
            install_print_capture()
        watcher = threading.Thread(target=self._watch, name=f"flows-tui-watch-{self.run_id}", daemon=True)
        watcher.start()
        self._say_if_no_workers()
        try:
            while True:
                state = self._run_attempt()
                if state.name in (FAILED, TIMED_OUT) and self.flow_attempt <= self.flow.retries:
                    delay = float(self.flow.retry_delay_seconds or 0)
                    with self._lock:
                        self._emit(ev.FlowStateChanged(self.run_id, RETRYING, _now(), self.flow_attempt,
                                                       message=f"{state.message}; retrying in {delay:g}s"))
                    self._sleep(delay)
                    self.flow_attempt += 1
                    continue
                break
        finally:
            self._watch_stop.set()
            _worker_deaths.forget(self.client, self)
            try:
                # The scheduler keeps a topic, with its last 1,000 events, until it stops: run after
                # run of `serve` (2.4 MB of log messages after 20 runs) unless it goes with its run.
                # Dropping it there ends the subscription too; `unsubscribe_topic` arriving later
                # would only make the scheduler create it again, empty.
                self.client.run_on_scheduler(_forget_topic, topic=self.topic)
            except Exception:  # the client may be closing
                pass
            # Dask's unsubscribe_topic leaves the handler in the client: it would hold this engine,
            # and with it every Dask future of the run, for as long as the client lives.
            reports.engine = None
        with self._lock:
            if self.session is not None:
                # Before the final state is published: whoever starts a re-run when this run
                # ends must find its results.
                self._keep_results()
            self._emit(ev.FlowStateChanged(self.run_id, state.name, _now(), self.flow_attempt,
                                           message=state.message, traceback=getattr(state, "_traceback", None)))
        self._run_flow_hooks(state)
        return state

    def _run_flow_hooks(self, state: State) -> None:
        """Prefect's flow hooks: `hook(flow, flow_run, state)`; a failing hook is logged, never raised.

        As in Prefect 3, Crashed and Cancelled have hooks of their own: a crash does not call on_failure.
        """
        if state.name in SUCCESS_STATES:
            hooks = self.flow.on_completion_hooks
        elif state.name in (FAILED, TIMED_OUT):
            hooks = self.flow.on_failure_hooks
        elif state.name == CRASHED:
            hooks = self.flow.on_crashed_hooks
        elif state.name == CANCELLED:
            hooks = self.flow.on_cancellation_hooks
        else:
            hooks = []
        for hook in hooks:
            try:
                run_hook(hook, self.flow, self.flow_run, state)
            except Exception as error:
                self.log(logging.ERROR, f"flow hook {getattr(hook, '__name__', hook)!r} failed: {_describe(error)}")

    def _run_attempt(self) -> State:
        with self._lock:
            self._abort = None
            self._emit(ev.FlowStateChanged(self.run_id, RUNNING, _now(), self.flow_attempt))
        box: dict[str, Any] = {}

        def body() -> None:
            try:
                with using(flow_run_var, self):
                    try:
                        box["value"] = self.flow.call_fn(self.parameters)
                    except BaseException as error:
                        box["error"] = error
                    finally:
                        box["done"] = True
                        with self._lock:
                            self._changed.notify_all()
            except _Abort:
                pass  # a cancel that reached the thread as the body ended: the body's outcome stands

        self._driver = threading.Thread(target=body, name=f"flows-tui-driver-{self.run_id}", daemon=True)
        timeout = self.flow.timeout_seconds
        deadline = None if timeout is None else time.monotonic() + timeout
        self._driver.start()
        with self._lock:
            # Woken by the body ending (below) or by a cancel (_interrupt notifies).
            while "done" not in box and self._abort is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(0.1 if remaining is None else min(0.1, remaining))
        # "done" rather than is_alive(): the body's thread is still alive for a moment after
        # it has set "done" (the finally clause above), and that moment is not a timeout.
        if "done" not in box:
            if self._abort is None:
                self._interrupt(self._timed_out())
            # Code stuck in a C call (a sleep, a socket read) cannot be interrupted: the run
            # ends without it, and the thread is left to finish on its own.
            self._driver.join(DRIVER_STOP_SECONDS)
        self._settle(deadline)
        return self._final_state(box)

    def _interrupt(self, reason: BaseException) -> None:
        """Stop the body: wake its waits, interrupt its Python code, cancel what has not ended."""
        with self._lock:
            if self._abort is None:
                self._abort = reason
            self._changed.notify_all()
            waiting = self._driver_waiting
        self._stop_body(waiting)
        self._cancel_open_tasks(str(reason))

    def _stop_body(self, waiting: bool) -> None:
        """Interrupt the body's own Python code; a wait inside the engine (`waiting`) sees the abort itself."""
        driver = self._driver
        if driver is not None and driver.is_alive() and not waiting:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(driver.ident), ctypes.py_object(_Abort))

    def _timed_out(self) -> TaskRunTimedOut:
        timeout = self.flow.timeout_seconds
        # Prefect's wording, which scripts written for it may look for.
        return TaskRunTimedOut(f"Flow run exceeded timeout of {timeout:g} second(s)")

    def cancel(self, message: str = "cancelled by the user") -> None:
        self._interrupt(CancelledRun(message))

    def _open_task_runs(self) -> list[str]:
        """The task runs of this run that have not ended (lock held)."""
        return [trid for trid in self._tracking if not self.flow_run.task_runs[trid].is_final]

    def _cancel_open_tasks(self, message: str) -> None:
        with self._lock:
            open_runs = self._open_task_runs()
        futures = [self._tracking[trid].future for trid in open_runs if self._tracking[trid].future is not None]
        if futures:
            try:
                self.client.cancel(futures)
            except Exception:
                logger.debug("cancelling futures failed", exc_info=True)
        with self._lock:
            for trid in open_runs:
                self._end_task_run(trid, CANCELLED, message)

    def _settle(self, deadline: float | None) -> None:
        """Wait until every task run started in this attempt has ended (SPEC: a run ends only then)."""
        with self._lock:
            while self._open_ids:
                self._changed.wait(0.2)
                if deadline is not None and time.monotonic() > deadline and self._abort is None:
                    self._lock.release()
                    try:
                        self._interrupt(self._timed_out())
                    finally:
                        self._lock.acquire()

    def _final_state(self, box: dict[str, Any]) -> State:
        """SPEC's flow-state rule for this attempt."""
        abort = self._abort
        if isinstance(abort, CancelledRun):
            return State(CANCELLED, str(abort))
        if isinstance(abort, CrashedRun):  # the Dask scheduler was lost (_lose_scheduler)
            return State(CRASHED, str(abort))
        if isinstance(abort, TaskRunTimedOut):
            return State(TIMED_OUT, str(abort), _exception=abort)
        if "error" in box:
            error = box["error"]
            state = State(FAILED, f"flow body raised {_describe(error)}", _exception=error)
            state._traceback = format_exception(error)
            return state
        try:
            state = state_from_return(self._futures_to_states(box.get("value")))
        except BaseException as error:
            return State(FAILED, f"the flow returned a failed result: {_describe(error)}", _exception=error)
        if not state.is_completed():
            return state
        if getattr(self.flow, "fail_on_unhandled_task_failures", True):
            with self._lock:
                unhandled = [t for t in self.flow_run.current_task_runs()
                             if t.state in FAILURE_STATES and not self._handled(t.id)]
            if unhandled:
                names = ", ".join(f"{t.name} ({t.state})" for t in unhandled[:5])
                more = f" and {len(unhandled) - 5} more" if len(unhandled) > 5 else ""
                return State(FAILED, f"{len(unhandled)} task run(s) did not succeed: {names}{more}")
        self.return_value = state._value
        return state

    def _handled(self, task_run_id: str) -> bool:
        track = self._tracking[task_run_id]
        if track.seen_by_body:
            return True
        return bool(track.consumers) and all(allowed for _, allowed in track.consumers)

    def _futures_to_states(self, value: Any) -> Any:
        """Futures the body returned, also inside lists, tuples, sets and dicts, become their final states."""
        kind = type(value)
        if kind is TaskFuture:
            value = self.final_state(value, seen_by_body=True)
            kind = State
        if kind is State:
            if value.is_completed():
                value.result()  # fetched now: the run lets go of its results when it ends
            return value
        if kind in (list, tuple, set):
            return kind(self._futures_to_states(v) for v in value)
        if isinstance(value, list):  # a PrefectFutureList
            return [self._futures_to_states(v) for v in value]
        if kind is dict:
            return {k: self._futures_to_states(v) for k, v in value.items()}
        return value

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            self._changed.wait_for(lambda: self._abort is not None, timeout=seconds)

    # Task calls from the body -------------------------------------------------------------------

    def _check_abort(self) -> None:
        if self._abort is not None:
            raise self._abort

    def submit(self, task: "Task", args: tuple, kwargs: dict, *, wait_for: Iterable[Any] | None = None) -> TaskFuture:
        self._check_abort()
        bound = task.signature.bind(*args, **kwargs)
        deps = _Dependencies(self)
        args_template = deps.template(bound.args)
        kwargs_template = deps.template(bound.kwargs)
        for upstream in wait_for or ():
            deps.template(upstream)
        name = self._run_name(task, bound, None)
        [future] = self._launch(task, [(name, None, args_template, kwargs_template, deps)])
        return future

    def map(self, task: "Task", args: tuple, kwargs: dict, *, wait_for: Iterable[Any] | None = None) -> TaskFutureList:
        self._check_abort()
        bound = task.signature.bind(*args, **kwargs)
        iterables: dict[str, Any] = {}
        static: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            wrapped = value.value if type(value) is allow_failure else value
            if type(wrapped) is unmapped:
                static[name] = value
            elif type(wrapped) is TaskFuture:
                # Mapping over one future: learn its length on the cluster, leave its data there.
                iterables[name] = ("future", value, self._remote_length(wrapped))
            elif _is_iterable(wrapped):
                iterables[name] = ("items", value, len(list(wrapped)) if not hasattr(wrapped, "__len__") else len(wrapped))
            else:
                static[name] = value
        if not iterables:
            raise ValueError(f"{task.name}.map() received no iterable parameters; "
                             "map needs at least one list-like argument (wrap whole values in unmapped())")
        lengths = {name: length for name, (_, _, length) in iterables.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{task.name}.map() received iterables of different lengths: {lengths}; "
                             "every mapped parameter must have the same length")
        count = next(iter(lengths.values()))
        if count == 0:
            return TaskFutureList()
        materialized = {name: (list(v.value if type(v) is allow_failure else v) if kind == "items" else v)
                        for name, (kind, v, _) in iterables.items()}
        calls = []
        for index in range(count):
            deps = _Dependencies(self)
            arguments: dict[str, Any] = {}
            for name in bound.arguments:
                if name in static:
                    arguments[name] = deps.template(static[name])
                    continue
                kind, original, _ = iterables[name]
                allowed = type(original) is allow_failure
                if kind == "future":
                    future = original.value if allowed else original
                    arguments[name] = deps.ref(future.task_run_id, allowed, item=index)
                else:
                    arguments[name] = deps.template(materialized[name][index], allowed)
            for upstream in wait_for or ():
                deps.template(upstream)
            element = task.signature.bind_partial()
            element.arguments.update(arguments)
            calls.append((self._run_name(task, bound, index, arguments), index, element.args, element.kwargs, deps))
        return TaskFutureList(self._launch(task, calls))

    def _remote_length(self, future: TaskFuture) -> int:
        state = self.final_state(future, seen_by_body=False)
        if state.name not in SUCCESS_STATES:
            self._tracking[future.task_run_id].seen_by_body = True
            raise UpstreamFailed(f"cannot map over {future.name!r}: it ended {state.name}"
                                 + (f" ({state.message})" if state.message else ""))
        return self.client.submit(outcome_length, self._tracking[future.task_run_id].future, pure=False).result()

    def _run_name(self, task: "Task", bound: Any, map_index: int | None, arguments: dict | None = None) -> str:
        with self._lock:
            number = self._names[task.name]
            self._names[task.name] += 1
        fallback = f"{task.name}-{number}"
        if task.task_run_name is None:
            return fallback
        parameters = dict(bound.arguments if arguments is None else arguments)
        return task.format_run_name(parameters, fallback)

    def _cache_spec(self, task: "Task") -> CacheSpec | None:
        """How `task` caches in this run; None, without any hashing, for a task without cache options."""
        policy = policy_of(task)
        if policy is None:
            return None
        if task in self._cache_specs:
            return self._cache_specs[task]
        spec = None
        if self.cache_dir is None:
            self.log(logging.WARNING, f"task {task.name!r} is not cached: this run has no state_dir to keep "
                                      "results in")
        else:
            try:
                # On the client, once per task: the workers only hash the inputs.
                source = task_source(task) if reads(policy, TaskSource) else None
            except Exception as error:  # code the walk cannot read must not stop the run
                self.log(logging.WARNING, f"task {task.name!r} is not cached: its source could not be read "
                                          f"({_describe(error)})")
            else:
                expiration = task.cache_expiration
                if isinstance(expiration, _dt.timedelta):
                    expiration = expiration.total_seconds()
                spec = CacheSpec(str(self.cache_dir), self.flow.name, source,
                                 self.parameters if reads(policy, FlowParameters) else None,
                                 bool(task.refresh_cache), expiration)
        self._cache_specs[task] = spec
        return spec

    def _launch(self, task: "Task", calls: list[tuple]) -> list[TaskFuture]:
        """Record and submit task runs; several calls (a map) go to Dask as one graph."""
        if self.intercept is not None:
            self.intercept(task, calls)
        log_prints = task.log_prints if task.log_prints is not None else self.log_prints
        cache = self._cache_spec(task)
        plan = self._session_plan(task, calls)
        created = _now()
        specs, futures, submitted, keys = [], [], [], []
        # 64 random bits per id, from one call for the whole batch: a call each (uuid4) costs a
        # system call per task run, and the driver gives up the GIL to the scheduler's loop at each.
        random_ids = os.urandom(8 * len(calls)).hex()
        with self._lock:
            self._check_abort()
            for number, ((name, map_index, args_template, kwargs_template, deps), (lineage, held)) in enumerate(
                    zip(calls, plan)):
                task_run_id = random_ids[16 * number:16 * number + 16]
                self._sequence += 1
                key = f"{task.name}-{self.run_id}-{self._sequence}"
                track = self._tracking[task_run_id] = _Tracking(key, lineage=lineage)
                self._by_key[key] = task_run_id
                upstream = tuple(deps.task_run_ids)
                allowed = deps.allowed
                for index, upstream_id in enumerate(upstream):
                    self._tracking[upstream_id].consumers.append((task_run_id, index in allowed))
                self._open_ids.add(task_run_id)
                self._emit(ev.TaskRunCreated(self.run_id, task_run_id, task.name, name, created, map_index,
                                             upstream, self.flow_attempt))
                futures.append(TaskFuture(self, task_run_id, name))
                if held is not None:
                    # Downstream calls take the held future as their upstream: its data stays on the workers.
                    track.future, track.reused_from = held.future, held.run_id
                    self._end_task_run(task_run_id, CACHED, f"reused from run {held.run_id}")
                    continue
                call = TaskCall(self.run_id, task_run_id, name, map_index, self.topic, task, allowed, log_prints,
                                self.log_level, cache)
                specs.append((call, args_template, kwargs_template, deps.futures))
                track.call = (task, args_template, kwargs_template, deps.futures, deps.allowed)
                submitted.append(task_run_id)
                keys.append(key)
        if not specs:
            return futures
        if len(specs) == 1:
            call, args_template, kwargs_template, dep_futures = specs[0]
            dask_futures = [self.client.submit(run_task, call, args_template, kwargs_template, dep_futures,
                                               key=keys[0], pure=False)]
        else:
            dask_futures = self.client.map(run_task, *map(list, zip(*specs)), key=keys, pure=False)
        with self._lock:
            for task_run_id, dask_future in zip(submitted, dask_futures):
                self._tracking[task_run_id].future = dask_future
        return futures

    # Reusing results of earlier runs (the session) ------------------------------------------------

    def _session_plan(self, task: "Task", calls: list[tuple]) -> list[tuple[str | None, Held | None]]:
        """Each call's lineage (None: not reusable) and the held result it reuses (None: it runs)."""
        if self.session is None:
            return [(None, None)] * len(calls)
        plan: list[tuple[str | None, Held | None]] = []
        for _, map_index, args_template, kwargs_template, deps in calls:
            # A value the body received from a task run and passes on is an upstream too, as a
            # future would be (Prefect tracks results by identity the same way): a path returned
            # by a task that ran again may name data that changed under the same name.
            received = [task_run_id for task_run_id in self._received_in((args_template, kwargs_template))
                        if task_run_id not in deps.task_run_ids]
            upstream = [self._tracking[task_run_id] for task_run_id in (*deps.task_run_ids, *received)]
            lineages = [track.lineage for track in upstream]
            if None in lineages:  # an input nobody can name: neither can this call's result
                plan.append((None, None))
                continue
            try:
                lineage = lineage_key(task, args_template, kwargs_template, lineages, map_index)
            except NotReusable as reason:
                if task.name not in self._not_reusable:
                    self._not_reusable.add(task.name)
                    self.log(logging.WARNING, f"task {task.name!r} runs every time, never reused: {reason}")
                plan.append((None, None))
                continue
            if lineage is None:  # NO_CACHE or refresh_cache: the user wants it computed every run
                plan.append((None, None))
                continue
            held = None
            # Only on reused inputs: an upstream that ran again (a failure retried, a task that always
            # runs) may have produced different data, even under the same lineage.
            if self.reuse and all(track.reused_from is not None for track in upstream):
                held = self.session.find(self.flow.name, lineage)
            plan.append((lineage, held))
        return plan

    def _remember_received(self, value: Any, task_run_id: str) -> None:
        """Note that the body got `value` (and its elements, which `.map()` hands on one by one) from a task run."""
        # Held with the value, so its id names this object until the run ends.
        self._received[id(value)] = (value, task_run_id)
        kind = type(value)
        if kind is list or kind is tuple:
            for item in value:
                self._received.setdefault(id(item), (item, task_run_id))
        elif kind is dict:
            for item in value.values():
                self._received.setdefault(id(item), (item, task_run_id))

    def _received_in(self, template: Any) -> list[str]:
        """The task runs whose values, as the body received them, appear in `template` (in order, once each)."""
        found: list[str] = []
        if not self._received:
            return found

        def walk(value: Any) -> None:
            if value is None or value is True or value is False:  # singletons: no one's in particular
                return
            entry = self._received.get(id(value))
            if entry is not None and entry[0] is value and entry[1] not in found:
                found.append(entry[1])
            kind = type(value)
            if kind is list or kind is tuple or kind is set or kind is frozenset:
                for item in value:
                    walk(item)
            elif kind is dict:
                for item in value.values():
                    walk(item)

        walk(template)
        return found

    def _keep_results(self) -> None:
        """Leave this run's successful results (computed or reused) in the session (lock held)."""
        task_runs = self.flow_run.task_runs
        results = {track.lineage: Held(track.future, track.reused_from or self.run_id)
                   for task_run_id, track in self._tracking.items()
                   if track.lineage is not None and track.future is not None
                   and task_runs[task_run_id].state in SUCCESS_STATES}
        held = {task_run_id: HeldCall(track.future, track.call, track.reused_from)
                for task_run_id, track in self._tracking.items() if track.future is not None}
        self.session.keep(self.flow.name, self.run_id, results, held)

    # Waiting and results, for the body ----------------------------------------------------------

    def _wait_final(self, task_run_id: str, timeout: float | None) -> None:
        track = self._tracking[task_run_id]
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._driver_waiting = True
            try:
                while not track.done.is_set():
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
        from distributed import wait

        deadline = None if timeout is None else time.monotonic() + timeout
        hiccups = 0
        while True:
            self._check_abort()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"task run {track.key!r} did not finish within {timeout:g}s")
            try:
                # Wait for the task to end on the cluster, then fetch its result once: a result
                # fetched with a timeout started its transfer over at every timeout, and a 100 MB
                # result never arrived (the run failed after ~30 s; raw Dask took 2 s).
                wait(track.future, timeout=0.2 if remaining is None else min(0.2, remaining))
            except (TimeoutError, asyncio.TimeoutError):
                continue
            except Exception:  # cancelled or lost: result() says which
                pass
            try:
                return track.future.result()
            except Exception:  # KilledWorker, cancelled: the watcher records it as Crashed/Cancelled
                if track.future.status in ("pending", "finished") and hiccups < 10:
                    # A timed result() can fail with no failure behind it when the client's loop is
                    # busy (UnboundLocalError, dask/distributed#8514; seen under the UI's load):
                    # the task is fine, ask again.
                    hiccups += 1
                    continue
                return None

    def _exception_from_record(self, task_run: Any) -> BaseException:
        message = task_run.error or task_run.message or f"task run ended {task_run.state}"
        if task_run.state == CRASHED:
            return CrashedRun(message)
        if task_run.state == CANCELLED:
            return CancelledRun(message)
        if task_run.state == TIMED_OUT:
            return TaskRunTimedOut(message)
        return UpstreamFailed(message) if task_run.state == NOT_RUN else RuntimeError(message)

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
        state = State(name, message)
        state._task_run_id = future.task_run_id  # type: ignore[attr-defined]
        if final:
            self._tracking[future.task_run_id].seen_by_body = True
            if name in SUCCESS_STATES:
                state._resolver = lambda: self.result_of(future.task_run_id)
            else:
                state._resolver = None
                state._exception = self.result_of(future.task_run_id, raise_on_failure=False)
        return state

    def state_name(self, future: TaskFuture) -> str:
        return self.flow_run.task_runs[future.task_run_id].state

    def is_final(self, future: TaskFuture) -> bool:
        return self._tracking[future.task_run_id].done.is_set()

    # Reports from workers and Dask ------------------------------------------------------------------

    def _on_worker_messages(self, event: tuple[float, list[dict]]) -> None:
        """Topic handler (Dask's IO loop thread): keep it cheap."""
        _, messages = event
        with self._lock:
            self._batch = []
            try:
                for message in messages:
                    try:
                        self._apply_worker_message(message)
                    except Exception:
                        logger.exception("could not apply worker report %r", message)
                self.bus.publish_many(self._batch)
            finally:
                self._batch = None
            self._changed.notify_all()

    def _apply_worker_message(self, m: dict) -> None:
        task_run_id = m["tr"]
        track = self._tracking.get(task_run_id)
        if track is None:
            return
        kind = m["k"]
        if kind == "log":
            attempt = track.executions.get((m["x"], m["a"]), m["a"])
            self._emit(ev.LogLines(self.run_id, tuple(
                ev.LogLine(_utc(created), level, message, task_run_id, attempt, name)
                for created, level, message, name in m["lines"])))
            return
        when = _utc(m["t"])
        task_run = self.flow_run.task_runs[task_run_id]
        execution = (m["x"], m["a"])
        if kind == "end" and "st" in m:  # the attempt started and ended within one batch
            self._apply_worker_message({**m, "k": "start", "t": m["st"]})
        if kind == "start":
            if track.open_attempt is not None:
                # A new execution while an attempt was open: Dask re-ran the task because the
                # worker running it died. The record says so.
                self._emit(ev.AttemptEnded(self.run_id, task_run_id, track.open_attempt, CRASHED, when,
                                           error="the worker running this attempt died; Dask ran the task again"))
            number = len(task_run.attempts) + 1
            track.executions[execution] = number
            track.open_attempt = number
            if track.done.is_set():
                # Dask re-executes a finished task to recover data lost with a worker.
                track.done.clear()
                self._open_ids.add(task_run_id)
            self._emit(ev.AttemptStarted(self.run_id, task_run_id, number, when, m.get("w")))
            if task_run.state != RUNNING:
                self._emit(ev.TaskStateChanged(self.run_id, task_run_id, RUNNING, when))
            return
        number = track.executions.get(execution)
        if kind == "retry":
            if number is None:
                return
            self._emit(ev.AttemptEnded(self.run_id, task_run_id, number, m["s"], when, m.get("err"), m.get("tb")))
            track.open_attempt = None
            delay = float(m.get("d") or 0)
            self._emit(ev.TaskStateChanged(self.run_id, task_run_id, RETRYING, when,
                                           message=f"attempt {number} {m['s']}: {m.get('err')}",
                                           retry_at=_utc(m["t"] + delay)))
            return
        if kind == "end":
            if number is not None:
                self._emit(ev.AttemptEnded(self.run_id, task_run_id, number, m["s"], when, m.get("err"), m.get("tb")))
                track.open_attempt = None
            if not track.done.is_set():
                self._end_task_run(task_run_id, m["s"], m.get("err"), when)

    def _end_task_run(self, task_run_id: str, state: str, message: str | None, when: _dt.datetime | None = None) -> None:
        """Record a final state (lock held)."""
        track = self._tracking[task_run_id]
        if track.done.is_set():
            return
        when = when or _now()
        if track.open_attempt is not None:
            self._emit(ev.AttemptEnded(self.run_id, task_run_id, track.open_attempt, state, when, message))
            track.open_attempt = None
        self._emit(ev.TaskStateChanged(self.run_id, task_run_id, state, when, message=message))
        track.done.set()
        self._open_ids.discard(task_run_id)
        self._changed.notify_all()

    def on_worker_removed(self, message: dict) -> None:
        """A worker left the cluster (Dask's `remove-worker` event): record what it took with it."""
        if message.get("expected"):
            return
        worker = message.get("worker", "a worker")
        when = _now()
        rescheduled, lost = [], []
        with self._lock:
            for key in message.get("processing-tasks") or ():
                task_run_id = self._by_key.get(key)
                if task_run_id is None or self._tracking[task_run_id].done.is_set():
                    continue
                track = self._tracking[task_run_id]
                if track.open_attempt is not None:
                    self._emit(ev.AttemptEnded(self.run_id, task_run_id, track.open_attempt, CRASHED, when,
                                               error=f"worker {worker} died while running this attempt"),
                               ev.TaskStateChanged(self.run_id, task_run_id, PENDING, when,
                                                   message="its worker died; Dask runs it again"))
                    track.open_attempt = None
                else:
                    rescheduled.append(self.flow_run.task_runs[task_run_id].name)
            for key in message.get("lost-computed-tasks") or ():
                task_run_id = self._by_key.get(key)
                if task_run_id is not None:
                    lost.append(self.flow_run.task_runs[task_run_id].name)
            self._changed.notify_all()
        if rescheduled:
            self.log(logging.WARNING, f"worker {worker} died; Dask reschedules the task runs it held: "
                                      f"{_names(rescheduled)}")
        if lost:
            self.log(logging.WARNING, f"worker {worker} died holding results of {_names(lost)}; "
                                      "Dask runs them again if they are still needed")

    def _lose_scheduler(self) -> None:
        """The Dask scheduler is gone, and every future of the run with it: the run ends Crashed, now.

        Dask's client cancels the futures and tries to reconnect for a while; nothing of this
        run can come back from a scheduler that restarts, so the run does not wait for it.
        """
        try:
            address = self.client.scheduler.address
        except Exception:
            address = self.address
        reason = f"lost the Dask scheduler at {address or self.address} while the run was in progress"
        with self._lock:
            if self._abort is not None:
                return
            self._abort = CrashedRun(reason)
            self._changed.notify_all()
            waiting = self._driver_waiting
            for task_run_id in self._open_task_runs():
                self._end_task_run(task_run_id, CRASHED, reason)
        self.log(logging.ERROR, reason)
        self._stop_body(waiting)

    def _watch(self) -> None:
        """Every moment of the run: record what workers could not report (a crash, a cancel, a lost report)."""
        while not self._watch_stop.wait(WATCH_INTERVAL_SECONDS):
            try:
                self._check_dask()
            except Exception:
                logger.exception("checking the run's Dask futures failed")

    def _check_dask(self) -> None:
        if self._abort is None and scheduler_lost(self.client):
            self._lose_scheduler()
            return
        now = time.monotonic()
        with self._lock:
            tracking = self._tracking
            candidates = [(task_run_id, tracking[task_run_id]) for task_run_id in self._open_ids
                          if tracking[task_run_id].future is not None
                          and tracking[task_run_id].future.status != "pending"]
        for task_run_id, track in candidates:
            future = track.future
            status = future.status
            if status == "finished":
                # Normally the worker's report is already on its way; after a grace period ask the
                # cluster for the outcome's state (not its value, which stays where it is).
                if track.finished_seen is None:
                    track.finished_seen = now
                elif now - track.finished_seen >= REPORT_GRACE_SECONDS:
                    try:
                        state, message = self.client.submit(outcome_summary, future, pure=False).result(timeout=30)
                    except Exception as problem:
                        state, message = CRASHED, _describe(problem)
                    logger.warning("no report from the worker for %s; took its outcome from the cluster", track.key)
                    with self._lock:
                        self._end_task_run(task_run_id, state, message)
                continue
            if status == "error":
                try:
                    message = _describe(future.exception(timeout=5))
                except Exception as problem:
                    message = _describe(problem)
                with self._lock:
                    self._end_task_run(task_run_id, CRASHED, f"the task's worker died or the cluster failed it: {message}")
            elif status == "lost" and self._abort is None:
                # The result was lost with a worker: Dask computes it again (the run still holds
                # its future), and that execution arrives as the task run's next attempt.
                continue
            elif status in ("cancelled", "lost"):
                if self._abort is None and _cancelled_with_scheduler(future):
                    # The client reconnected already, but the scheduler that held the run is gone.
                    self._lose_scheduler()
                    return
                with self._lock:
                    aborted = self._abort is not None
                    reason = str(self._abort) if aborted else f"Dask reported the task {status}"
                    self._end_task_run(task_run_id, CANCELLED if aborted else CRASHED, reason)


class _ReportHandler:
    """The run's topic handler; it lets go of the engine when the run ends (see `_subscribe`)."""

    __slots__ = ("engine",)

    def __init__(self, engine: FlowRunEngine) -> None:
        self.engine: FlowRunEngine | None = engine

    def __call__(self, event: tuple[float, list[dict]]) -> None:
        engine = self.engine
        if engine is not None:  # a report still in flight when the run ended changes nothing
            engine._on_worker_messages(event)


# A lambda travels to the scheduler by value: an attached `dask scheduler` needs no flows-tui installed.
_forget_topic = lambda dask_scheduler, topic: dask_scheduler._broker._topics.pop(topic, None)  # noqa: E731


def _subscribe(client: Any, topic: str, handler: _ReportHandler) -> None:
    """Subscribe `handler` to `topic`, first dropping the handlers of runs that have ended.

    Dask's `Client.unsubscribe_topic` (2026.8) tells the scheduler but keeps the handler in
    `client._event_handlers`, one entry per run for as long as the client lives. An ended run's
    handler is dropped here, at the next run, rather than at its own end: by now no report of
    it is in flight (one arriving with no handler makes Dask's client raise).
    """
    handlers = getattr(client, "_event_handlers", None)
    if isinstance(handlers, dict):
        for name, old in list(handlers.items()):
            if type(old) is _ReportHandler and old.engine is None:
                handlers.pop(name, None)
    client.subscribe_topic(topic, handler)


def _cancelled_with_scheduler(future: Any) -> bool:
    """Whether Dask's client cancelled `future` because it lost the connection to the scheduler."""
    error = getattr(getattr(future, "_state", None), "exception", None)
    return getattr(error, "reason", None) == "scheduler-connection-lost"


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class _WorkerDeaths:
    """One subscription per client to Dask's `all` topic, shared by every engine on that client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[int, tuple[Any, set]] = {}

    def listen(self, client: Any, engine: FlowRunEngine) -> None:
        with self._lock:
            entry = self._listeners.get(id(client))
            if entry is None:
                entry = self._listeners[id(client)] = (client, set())
                client.subscribe_topic("all", functools.partial(self._dispatch, id(client)))
            entry[1].add(engine)

    def forget(self, client: Any, engine: FlowRunEngine) -> None:
        with self._lock:
            entry = self._listeners.get(id(client))
            if entry is None:
                return
            entry[1].discard(engine)
            if entry[1]:
                return
            del self._listeners[id(client)]
        try:
            client.unsubscribe_topic("all")
        except Exception:  # the client is closing
            pass

    def _dispatch(self, client_id: int, event: tuple[float, Any]) -> None:
        _, message = event
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        with self._lock:
            entry = self._listeners.get(client_id)
            engines = list(entry[1]) if entry else []
        for engine in engines:
            engine.on_worker_removed(message)


_worker_deaths = _WorkerDeaths()


def _is_iterable(value: Any) -> bool:
    """Prefect's rule: iterable, but not str, bytes or a file-like object."""
    import io

    if isinstance(value, (str, bytes, io.IOBase)):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True


def run_flow(flow: "Flow", parameters: dict[str, Any], *, client: "distributed.Client", bus: ev.EventBus | None = None,
             run_id: str | None = None, file: str | None = None, address: str | None = None,
             on_engine: Callable[[FlowRunEngine], None] | None = None,
             log_level: int = logging.INFO, cache_dir: Path | None = None, session: "Session | None" = None,
             reuse: bool = False) -> FlowRunEngine:
    """Run `flow` to its end and return the engine (its `.model`, `.return_value`, `.final` state).

    With a `session`, the run's completed results stay held in it for later runs; with `reuse`
    too, task calls whose lineage the session holds are not run again (see `flows_tui.session`).
    """
    engine = FlowRunEngine(flow, parameters, client=client, bus=bus, run_id=run_id, file=file, address=address,
                           log_level=log_level, cache_dir=cache_dir, session=session, reuse=reuse)
    if on_engine is not None:
        on_engine(engine)
    engine.final = engine.run()
    return engine


__all__ = ["FlowRunEngine", "run_flow", "new_run_id", "PENDING", "FINAL_STATES"]
