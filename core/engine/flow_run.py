"""One flow run: the driver thread running the flow body, task calls → Dask futures, final states.

The body is ordinary synchronous code. Every task call is submitted to Dask at once
with upstream futures as arguments, so Dask orders the work and moves data worker
to worker; the driver waits only where the body asks for a value. Workers report
each attempt on the run's topic; the engine turns those reports into events, folds
them into its own `RunModel` and publishes them on the bus for everyone else.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
import uuid
from collections import defaultdict, deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from flows_tui.cache import CacheSpec
from flows_tui.context import flow_run_var, run_hook, using
from flows_tui.errors import describe as _describe
from flows_tui.futures import TaskFuture
from flows_tui.record import events as ev
from flows_tui.record.failure_lines import failure_lines
from flows_tui.record.logs import format_record, install_log_capture, install_print_capture
from flows_tui.record.model import RunModel
from flows_tui.states import (CANCELLED, CRASHED, FAILED, FAILURE_STATES, FINAL_STATES, PENDING, RETRYING, RUNNING,
                              SUCCESS_STATES, TIMED_OUT, CancelledRun, CrashedRun, State, TaskRunTimedOut,
                              state_from_return)
from flows_tui.states import now as _now
from flows_tui.states import utc as _utc
from flows_tui.tracebacks import format_exception
from flows_tui.user_code.pickling import user_sources

from .cluster import scheduler_lost
from .dask_watch import DaskWatch, _ReportHandler, _worker_deaths
from .in_process import release, workers_in_this_process
from .outcome import register_outcome_serializer
from . import run_topics
from .performance_report import PerformanceReport
from .results import Results
from .scheduler_cleanup import forget_run
from .task_calls import TaskCalls
from .task_reports import TaskReports
from .task_runs import TaskRuns, _Tracking

if TYPE_CHECKING:
    import distributed

    from flows_tui.flows import Flow
    from flows_tui.tasks import Task

    from .session import Session

logger = logging.getLogger("flows_tui.engine")

# How long an interrupted flow body gets to stop before the run ends without it.
DRIVER_STOP_SECONDS = 5.0


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


# The events that may say why something failed (see `failure_lines`), and the states in which
# none of them does: most of a big run's events, which then skip the call.
_SAID_TYPES = frozenset({ev.AttemptEnded, ev.TaskStateChanged, ev.FlowStateChanged})
_SAY_NOTHING = frozenset({PENDING, RUNNING, *SUCCESS_STATES})


class _Abort(BaseException):
    """Injected into the driver thread when the flow run is cancelled or times out."""


class FlowRunEngine(TaskRuns, Results, TaskCalls, TaskReports, DaskWatch):
    """Runs one flow: the body in a driver thread, its tasks on Dask, its states as events."""

    def __init__(self, flow: "Flow", parameters: dict[str, Any], *, client: "distributed.Client",
                 bus: ev.EventBus | None = None, run_id: str | None = None, file: str | None = None,
                 address: str | None = None, cluster: str | None = None, log_level: int = logging.INFO,
                 cache_dir: Path | None = None, session: "Session | None" = None, reuse: bool = False) -> None:
        self.flow = flow
        self.parameters = dict(parameters)
        self.client = client
        self.bus = bus or ev.EventBus()
        self.run_id = run_id or new_run_id()
        self.topic = f"flows-tui-{self.run_id}"
        self.file = file
        self.address = address  # where it runs, described, and the cluster's name (see ev.FlowRunStarted)
        self.cluster = cluster
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
        # Subflow calls by (flow name, n-th call in this attempt), and the states of those that completed.
        self._subflow_calls: dict[tuple[int, str], int] = {}
        self.subflow_results: dict[tuple[str, int], State] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._tracking: dict[str, _Tracking] = {}
        self._by_sequence: list[str] = []  # task run ids by the number in their Dask keys, less one
        self._names: dict[str, int] = defaultdict(int)
        self._open_ids: set[str] = set()  # task runs not final yet: the one answer to "is it over?" (task_runs)
        self._ended: list[str] = []  # task runs in the order they ended (as_completed follows it)
        self._dropped: deque[str] = deque()  # task runs whose TaskFuture the body let go of (task_runs)
        self._batch: list | None = None  # events held back to publish as one batch
        self._reports = _ReportHandler(self)  # the run's topic's handler, subscribed with the first task
        self._reports_subscribed = False
        self._last_watch = 0.0  # when the run's thread last looked at its futures (dask_watch)
        self._last_report = 0.0  # when the last batch of worker reports arrived (time.monotonic)
        self._last_look = 0.0  # when the watcher last looked at every open task run's future
        self._worker_died = False  # a worker left since that look
        self._workers_lost = 0  # workers that left during the run (their reports may be lost)
        self._sequence = 0
        self._abort: BaseException | None = None
        self._driver: threading.Thread | None = None
        self._driver_waiting = False
        self._init_results()
        self.return_value: Any = None
        self.final: State | None = None
        self._same_process = False  # the cluster's workers are threads of this process
        # `flows-tui debug`: sees each task call before it is submitted, and may end the body there.
        self.intercept: Callable[["Task", list[tuple]], None] | None = None

    # Events -----------------------------------------------------------------------------------

    def _emit(self, *events: Any) -> None:
        """Fold into our model and publish, with the log lines that say why something failed;
        call with the lock held."""
        said: list = []
        for event in events:
            self.model.apply(event)
            if type(event) in _SAID_TYPES and event.state not in _SAY_NOTHING:
                said += failure_lines(self.model.runs[self.run_id], event)
        if said:
            events = (*events, ev.LogLines(self.run_id, tuple(said)))
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
                                         address=self.address, cluster=self.cluster))
            self.flow_run.name = self.flow.format_run_name(self.parameters) or self.run_id
        register_outcome_serializer()  # envelopes come back through Dask's serializer for them
        from flows_tui.engine.user_sources import share_sources  # imports Dask: not before a run

        share_sources(self.client, user_sources())  # workers without the user's files show their lines
        from flows_tui.engine.nanny_ledger import send_on_dead_workers_attempts

        send_on_dead_workers_attempts(self.client)  # a worker dead at a task's first instruction: still an attempt
        run_topics.install(self.client)  # the scheduler subscribes runs to their topics (from the next run on)
        install_log_capture()
        if self.log_prints:
            install_print_capture()
        self._say_if_no_workers()
        self._same_process = workers_in_this_process(self.client)
        report = PerformanceReport.start(self)  # DaskTaskRunner(performance_report_path=...)
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
            report.write()
            self._drop_fetched()
            _worker_deaths.forget(self.client, self)
            release(self.run_id)
            try:
                # The run's topic, and Dask's spans of runs long done (scheduler_cleanup).
                # Dropping the topic ends the subscription too; `unsubscribe_topic` arriving later
                # would only make the scheduler create it again, empty.
                # A lost scheduler (serve stopped, a scheduler killed) keeps nothing: asking it would
                # hold the run's end for the client's whole reconnect timeout.
                if not scheduler_lost(self.client):
                    forget_run(self.client, self.topic)
            except Exception:  # the client may be closing
                pass
            # Dask's unsubscribe_topic leaves the handler in the client: it would hold this engine,
            # and with it every Dask future of the run, for as long as the client lives.
            self._reports.engine = None
        with self._lock:
            if self.session is not None:
                # Before the final state is published: whoever starts a re-run when this run
                # ends must find its results.
                self._keep_results()
            self._emit(ev.FlowStateChanged(self.run_id, state.name, _now(), self.flow_attempt,
                                           message=state.message, traceback=getattr(state, "_traceback", None)))
        self._run_flow_hooks(state)
        return state

    def _run_flow_hooks(self, state: State, flow: "Flow | None" = None) -> None:
        """Prefect's flow hooks: `hook(flow, flow_run, state)`; a failing hook is logged, never raised.

        As in Prefect 3, Crashed and Cancelled have hooks of their own: a crash does not call on_failure.
        A subflow's (`flow`) get this run's flow_run: a subflow is no run of its own here.
        """
        flow = self.flow if flow is None else flow
        if state.name in SUCCESS_STATES:
            hooks = flow.on_completion_hooks
        elif state.name in (FAILED, TIMED_OUT):
            hooks = flow.on_failure_hooks
        elif state.name == CRASHED:
            hooks = flow.on_crashed_hooks
        elif state.name == CANCELLED:
            hooks = flow.on_cancellation_hooks
        elif state.name == RUNNING:
            hooks = getattr(flow, "on_running_hooks", [])
        else:
            hooks = []
        for hook in hooks:
            try:
                run_hook(hook, flow, self.flow_run, state)
            except Exception as error:
                self.log(logging.ERROR, f"flow hook {getattr(hook, '__name__', hook)!r} failed: {_describe(error)}")

    def _run_attempt(self) -> State:
        with self._lock:
            self._abort = None
            self._emit(ev.FlowStateChanged(self.run_id, RUNNING, _now(), self.flow_attempt))
        self._run_flow_hooks(State(RUNNING))
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
                self._watch_while_waiting()
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

    def let_go_of_results(self) -> None:
        """The run is over and nothing will read its results from the cluster again (no session
        holds them): without its futures Dask frees the workers' memory, so an adaptive cluster
        can end its idle workers (jobs held for nothing cost money)."""
        with self._lock:
            for track in self._tracking.values():
                track.future = None
                track.call = None
                track.body_ref = None

    def cancel(self, message: str = "cancelled by the user") -> None:
        self._interrupt(CancelledRun(message))

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
                self._watch_while_waiting()
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

    def count_subflow_call(self, name: str) -> tuple[str, int]:
        """Which call of subflow `name` this is in the current attempt of the run: (name, n)."""
        with self._lock:
            number = self._subflow_calls.get((self.flow_attempt, name), 0)
            self._subflow_calls[(self.flow_attempt, name)] = number + 1
        return name, number

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            self._changed.wait_for(lambda: self._abort is not None, timeout=seconds)


def run_flow(flow: "Flow", parameters: dict[str, Any], *, client: "distributed.Client", bus: ev.EventBus | None = None,
             run_id: str | None = None, file: str | None = None, address: str | None = None,
             cluster: str | None = None, on_engine: Callable[[FlowRunEngine], None] | None = None,
             log_level: int = logging.INFO, cache_dir: Path | None = None, session: "Session | None" = None,
             reuse: bool = False) -> FlowRunEngine:
    """Run `flow` to its end and return the engine (its `.model`, `.return_value`, `.final` state).

    With a `session`, the run's completed results stay held in it for later runs; with `reuse`
    too, task calls whose lineage the session holds are not run again (see `flows_tui.session`).
    """
    engine = FlowRunEngine(flow, parameters, client=client, bus=bus, run_id=run_id, file=file, address=address,
                           cluster=cluster, log_level=log_level, cache_dir=cache_dir, session=session, reuse=reuse)
    if on_engine is not None:
        on_engine(engine)
    engine.final = engine.run()
    return engine


__all__ = ["FlowRunEngine", "run_flow", "new_run_id", "PENDING", "FINAL_STATES"]
