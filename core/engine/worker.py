"""What runs on a Dask worker for one task run: upstream checks, the attempt loop, retries, timeouts.

`run_task` never raises: it returns an `Outcome` envelope (`flows_tui.engine.outcome`).
Where retries are decided: the loop in `run_task` (`retries`, `retry_condition_fn`, the
delay). Each attempt's start, retry and end, and its log lines, travel to the engine as
reports (`flows_tui.engine.reports`, `flows_tui.engine.wire`).
"""

from __future__ import annotations

import contextvars
import ctypes
import dataclasses
import logging
import pickle
import threading
import time
from dataclasses import dataclass
from typing import Any

from flows_tui.breakpoints import install_breakpoint_hook
from flows_tui.cache import CacheKeyContext, CacheSpec, Lookup, look_up, store
from flows_tui.cache_policies import policy_of
from flows_tui.context import TaskRunContext, run_hook, task_run_var
from flows_tui.errors import describe as _describe
from flows_tui.record.logs import install_log_capture, install_print_capture
from flows_tui.states import (CACHED, COMPLETED, FAILED, NOT_RUN, RUNNING, TIMED_OUT, State, TaskRunTimedOut,
                              UpstreamFailed, returned_state, utc)
from flows_tui.tracebacks import format_exception
from flows_tui.user_code.unpickled import Unpickled

from .in_process import is_reference, resolve
from .outcome import UNSENDABLE, Outcome, Ref, register_outcome_serializer
from .reports import Reports

# A retry delay longer than this gives the worker thread back to Dask while it waits.
SECEDE_AFTER_SECONDS = 0.2


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
    cache_dir: str | None = None  # the run's cache, for tasks this task run calls (engine.local_runs)
    flow_name: str = ""
    at_terminal: bool = False  # run where the user's terminal is (a task called outside any flow)

    def for_task_run(self, task_run_id: str, name: str, map_index: int | None) -> "TaskCall":
        """This call for one of its task runs (`dataclasses.replace`, without its cost per task run)."""
        made = object.__new__(TaskCall)
        fields = made.__dict__
        fields.update(self.__dict__)
        fields.pop("_pickled", None)  # its own bytes would be the shared call's
        fields["task_run_id"], fields["name"], fields["map_index"] = task_run_id, name, map_index
        return made

    def __reduce__(self) -> Any:
        # Every element of a map shares one call, and the scheduler pickles each task it sends a
        # worker on its own: the call is pickled once, its bytes kept, and each worker process
        # unpickles one version of it once (`_restore_call`).
        blob = self.__dict__.get("_pickled")
        if blob is None:
            blob = self.__dict__["_pickled"] = _pickle_call(self)
        return (_restore_call, (blob,))


def _pickle_call(call: TaskCall) -> bytes:
    state = tuple(getattr(call, field.name) for field in dataclasses.fields(call))
    try:
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # something only cloudpickle can send (a user's object in a cache spec)
        blob = None
    if blob is None or b"__main__" in blob:  # as Dask does: what lives in __main__ travels by value
        import cloudpickle

        blob = cloudpickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    return blob


def _load_call(blob: bytes) -> TaskCall:
    restored = TaskCall(*pickle.loads(blob))
    restored.__dict__["_pickled"] = blob  # sent on as it came (the scheduler sends it to workers)
    return restored


_restored_calls = Unpickled(_load_call)


def _restore_call(blob: bytes) -> TaskCall:
    """A task call on a worker (or the scheduler), unpickled once per version of it."""
    return _restored_calls(blob)


class TaskRaisedBaseException(RuntimeError):
    """What the flow body gets for a task that raised SystemExit, KeyboardInterrupt or another BaseException."""


class AttemptTimedOut(BaseException):
    """Injected into a task's thread at its deadline; a BaseException so `except Exception` cannot swallow it."""


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


def run_task(call: TaskCall, args: tuple, kwargs: dict, deps: list, reports: Any = None, *,
             in_caller: bool = False) -> Outcome:
    """One task run, to its final state; `reports` stands in for the worker's (a task run outside Dask).

    `in_caller`: a task called directly outside a flow's engine, in the caller's thread. As from
    any function call, its exception comes back as it was raised (not made picklable), and a
    KeyboardInterrupt or SystemExit goes straight up, with no retry: Ctrl-C stops it at once.
    """
    if reports is None:  # on a Dask worker: its envelope leaves through our serializer (see outcome)
        register_outcome_serializer()
    in_process = is_reference(call)  # the flow is driven from this process: its objects are shared
    call, args, kwargs = resolve(call), resolve(args), resolve(kwargs)
    outcome = _run_task(call, args, kwargs, deps, reports if reports is not None else
                        Reports(call.topic, call.task_run_id), in_caller)
    outcome.in_process = in_process
    return outcome


def run_task_run(call: TaskCall, element: tuple, *deps: Outcome | None) -> Outcome:
    """One task run the engine submitted to Dask.

    `call` is shared by the task runs of one task call (every element of a map): one object in
    the graph Dask keeps, not one per task run. `element` is this task run's own part,
    `(task run id, name, map index, args, kwargs)`, its name None when it is the task's name and
    map index, its kwargs None when empty. `deps` are the upstream envelopes, then Nones that
    only pad a map whose elements have fewer upstreams than others (Dask maps over columns).
    """
    register_outcome_serializer()  # its envelope leaves through our serializer (see outcome)
    in_process = is_reference(element)  # the flow is driven from this process: its objects are shared
    call, element = resolve(call), resolve(element)
    task_run_id, name, map_index, args, kwargs = element
    if name is None:
        name = f"{call.task.name}-{map_index}"
    call = call.for_task_run(task_run_id, name, map_index)
    upstream = list(deps)
    while upstream and upstream[-1] is None:
        upstream.pop()
    outcome = _run_task(call, args, kwargs or {}, upstream, Reports(call.topic, task_run_id), False)
    outcome.in_process = in_process
    return outcome


def _run_task(call: TaskCall, args: tuple, kwargs: dict, deps: list, reports: Any, in_caller: bool) -> Outcome:

    unsendable = None
    for index, upstream in enumerate(deps):
        if upstream.state == UNSENDABLE:  # the upstream completed, but its value could not come here
            unsendable = unsendable or upstream
            continue
        if not upstream.ok and index not in call.allowed_failures:
            # Name the task that actually failed, not the NotRun ones between it and here.
            message = upstream.message if upstream.state == NOT_RUN and upstream.message else \
                f"upstream task {upstream.name!r} ended {upstream.state}"
            reports.end(0, NOT_RUN, message)
            return Outcome(NOT_RUN, message=message, name=call.name, task_run_id=call.task_run_id,
                           exception=UpstreamFailed(message))
    if unsendable is not None:
        return _missing_input(call, reports, unsendable)
    if deps:
        args = substitute(args, deps)
        kwargs = substitute(kwargs, deps)

    task = call.task
    lookup = None
    if call.cache is not None:
        lookup = _look_up(call, args, kwargs)
        if lookup.hit:
            return _cached(call, reports, lookup)
    attempt = 0
    install_log_capture()
    install_breakpoint_hook()
    if call.log_prints:
        install_print_capture()
    while True:
        attempt += 1
        batch_log = reports.logger(attempt)
        context = TaskRunContext(call.run_id, call.task_run_id, task.name, call.name, call.map_index,
                                 attempt, call.log_prints, batch_log, call.log_level,
                                 at_terminal=call.at_terminal, cache_dir=call.cache_dir, flow_name=call.flow_name)
        reports.start(attempt)
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
            if in_caller and not isinstance(failure, Exception):
                raise
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
                problem = store(lookup, state._value, _serializer(task))
                if problem:
                    _hook_logger(batch_log, "flows_tui.cache")(logging.WARNING, problem)
            reports.end(attempt, COMPLETED, when=_ended(state))
            _run_hooks(task.on_completion_hooks, task, task_run, state, log)
            return Outcome(COMPLETED, value=state._value, name=call.name, task_run_id=call.task_run_id)

        tb = _format_traceback(error)
        if attempt <= task.retries and _should_retry(task, task_run, state, log):
            delay = task.retry_delay(attempt)
            reports.retry(attempt, state.name, state.message, tb, delay)
            _wait_before_retry(delay)
            continue
        reports.end(attempt, state.name, state.message, tb, when=_ended(state))
        _run_hooks(task.on_failure_hooks, task, task_run, state, log)
        return Outcome(state.name, exception=error if in_caller else _portable_exception(error), message=state.message, name=call.name,
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


def _missing_input(call: TaskCall, reports: Reports, upstream: Outcome) -> Outcome:
    """An upstream's value could not be pickled to reach this worker: this task run fails, without an attempt.

    Failed even under `allow_failure`: the upstream did not fail, its value exists and cannot be
    delivered. No retry: the same value would fail the same way.
    """
    error = upstream.exception.sent("to another worker")
    message = str(error)
    state = State(FAILED, message, _exception=error)
    reports.end(0, FAILED, message, when=_ended(state))
    log = _hook_logger(reports.logger(0))
    _run_hooks(call.task.on_failure_hooks, call.task, TaskRunInfo(call, 0), state, log)
    return Outcome(FAILED, exception=error, message=message, name=call.name, task_run_id=call.task_run_id)


def _cached(call: TaskCall, reports: Reports, lookup: Lookup) -> Outcome:
    """A cache hit: the task's function does not run; the task run ends Cached with the stored value."""
    # As in Prefect 3, Cached is a Completed state: on_completion hooks run.
    state = State(CACHED, lookup.describe_hit(), _value=lookup.value)
    reports.end(0, CACHED, state.message, when=_ended(state))
    log = _hook_logger(reports.logger(0))
    _run_hooks(call.task.on_completion_hooks, call.task, TaskRunInfo(call, 0), state, log)
    return Outcome(CACHED, value=lookup.value, name=call.name, task_run_id=call.task_run_id)


def _serializer(task: Any) -> Any:
    """The task's `result_serializer`, resolved (None: the cache's own cloudpickle)."""
    if getattr(task, "result_serializer", None) is None:
        return None
    from flows_tui.serializers import resolve

    return resolve(task.result_serializer)


def _ended(state: State) -> float:
    """The moment a task run's final state is recorded with: the state's own, so the state its hooks
    receive equals the one the flow sees (`return_state=True`), as Prefect's are one object."""
    ended = time.time()
    state.timestamp = utc(ended)
    return ended


def _should_retry(task: Any, task_run: TaskRunInfo, state: State, log: Any) -> bool:
    if task.retry_condition_fn is None:
        return True
    try:
        return bool(task.retry_condition_fn(task, task_run, state))
    except Exception as error:
        log(logging.ERROR, f"retry_condition_fn failed, not retrying: {_describe(error)}")
        return False


def _hook_logger(emit: Any, name: str = "flows_tui.hooks"):
    def log(level: int, message: str) -> None:
        emit(logging.LogRecord(name, level, "", 0, message, None, None))

    return log
