"""Task runs no flow run's engine drives: a task called inside another task, or outside any flow.

Prefect 3 runs these as task runs of their own, and so does this: retries with their delays,
timeouts, hooks, caching, `return_state`, `wait_for`, `.submit()` and `.map()`. They go
through the attempt loop a worker runs for any task run (`run_task`), in the calling thread
for a call and in a thread of their own for `.submit()` and each element of `.map()`; they
do not go through Dask. Their log lines (run loggers, and prints under `log_prints`) go to
the task run that called them; outside any run, to Python's logging under
`flows_tui.task_runs`. They are not task runs of the flow's record: the store and the UI
show the task run that called them.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable

from flows_tui.cache import CacheSpec, cache_directory
from flows_tui.cache_policies import TaskSource, policy_of, reads
from flows_tui.context import task_run_var
from flows_tui.futures import TaskFuture, allow_failure, opaque, quote, unmapped
from flows_tui.record.logs import RUN_LOGGER_NAMES, TASK_RUN_LOGGER_NAME
from flows_tui.states import PENDING, SUCCESS_STATES, State

from .outcome import Outcome, Ref
from .worker import TaskCall, run_task

if TYPE_CHECKING:
    from flows_tui.tasks import Task

_numbers: dict[str, "itertools.count[int]"] = {}
_numbers_lock = threading.Lock()


class LocalReports:
    """`Reports` for a task run outside Dask: its attempts are not reported; its lines go to the caller."""

    def __init__(self, parent: Any) -> None:
        self.parent = parent  # the TaskRunContext that called the task, or None

    def start(self, attempt: int) -> None:
        pass

    def retry(self, attempt: int, state: str, error: str | None, traceback: str | None, delay: float) -> None:
        pass

    def end(self, attempt: int, state: str, error: str | None = None, traceback: str | None = None,
            when: float | None = None) -> None:
        pass

    def logger(self, attempt: int) -> Callable[[logging.LogRecord], None]:
        parent = self.parent
        if parent is not None:
            return parent.emit_log

        def emit(record: logging.LogRecord) -> None:
            # Outside any run: where Python's logging sends it (a run logger's own record already went there).
            if record.name.startswith(RUN_LOGGER_NAMES):
                return
            record.flows_tui_relayed = True
            logging.getLogger(TASK_RUN_LOGGER_NAME).handle(record)

        return emit


class Changes:
    """What `wait` and `as_completed` wait on for futures no flow run's engine knows: any of them ending."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._count = 0

    def changed(self) -> None:
        with self._condition:
            self._count += 1
            self._condition.notify_all()

    def wait_for_change(self, timeout: float | None) -> None:
        with self._condition:
            start = self._count
            self._condition.wait_for(lambda: self._count != start, timeout)


LOCAL_CHANGES = Changes()


class LocalTaskFuture(TaskFuture):
    """What `.submit()` returns inside a task: the task run going on in a thread.

    A `PrefectFuture` (`PrefectDaskFuture`) to the code holding it, as Prefect's nested futures are;
    no flow run's engine knows it.
    """

    def __init__(self, task: "Task", name: str, task_run_id: str) -> None:
        super().__init__(LOCAL_CHANGES, task_run_id, name)  # type: ignore[arg-type]
        self.task = task
        self._done = threading.Event()
        self._outcome: Outcome | None = None

    def _finish(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self._done.set()
        LOCAL_CHANGES.changed()

    def wait(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    @property
    def wrapped_future(self) -> None:
        return None  # it runs in a thread, not on Dask

    def add_done_callback(self, fn: Any) -> None:
        def call_when_done() -> None:
            self._done.wait()
            fn(self)

        threading.Thread(target=call_when_done, name=f"flows-tui-done-{self.name}", daemon=True).start()

    def done(self) -> bool:
        return self._done.is_set()

    def outcome(self) -> Outcome:
        self._done.wait()
        assert self._outcome is not None
        return self._outcome

    @property
    def state(self) -> State:
        if not self._done.is_set():
            return State(PENDING)
        return state_of(self.outcome())

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        if not self._done.wait(timeout):
            raise TimeoutError(f"task run {self.name!r} did not finish within {timeout:g}s")
        return value_of(self.outcome(), raise_on_failure)

    def __repr__(self) -> str:
        return f"LocalTaskFuture({self.name!r})"


def state_of(outcome: Outcome) -> State:
    if outcome.state in SUCCESS_STATES:
        return State(outcome.state, outcome.message, _value=outcome.value)
    return State(outcome.state, outcome.message, _exception=outcome.exception)


def value_of(outcome: Outcome, raise_on_failure: bool = True) -> Any:
    if outcome.state in SUCCESS_STATES:
        return outcome.value
    if raise_on_failure and outcome.exception is not None:
        raise outcome.exception
    return outcome.exception


# Calls --------------------------------------------------------------------------------------------

def call(task: "Task", args: tuple, kwargs: dict, *, return_state: bool = False,
         wait_for: Iterable[Any] | None = None) -> Any:
    outcome = _run(*prepare(task, args, kwargs, wait_for), in_caller=True)
    return state_of(outcome) if return_state else value_of(outcome)


def submit(task: "Task", args: tuple, kwargs: dict, *, wait_for: Iterable[Any] | None = None) -> LocalTaskFuture:
    prepared = prepare(task, args, kwargs, wait_for)
    future = LocalTaskFuture(task, prepared[0].name, prepared[0].task_run_id)
    parent = task_run_var.get()

    def target() -> None:
        try:
            outcome = _run(*prepared, parent=parent)
        except BaseException as error:  # run_task never raises; this is only a last guard
            outcome = Outcome("Crashed", exception=error, message=str(error), name=future.name)
        future._finish(outcome)

    threading.Thread(target=target, name=f"flows-tui-{future.name}", daemon=True).start()
    return future


def map_calls(task: "Task", args: tuple, kwargs: dict, *, wait_for: Iterable[Any] | None = None) -> list[tuple]:
    """The (args, kwargs) of each element of `task.map(...)`, by Prefect's mapping rules."""
    from flows_tui.exceptions import MappingLengthMismatch, MappingMissingIterable

    bound = task.signature.bind(*args, **kwargs)
    iterables: dict[str, list] = {}
    for name, value in bound.arguments.items():
        inner = value.value if type(value) is allow_failure else value
        if type(inner) is LocalTaskFuture:
            inner = inner.result()
        if type(inner) is unmapped or isinstance(inner, (str, bytes, dict)) or not _iterable(inner):
            continue
        items = list(inner)
        iterables[name] = [allow_failure(item) for item in items] if type(value) is allow_failure else items
    if not iterables:
        raise MappingMissingIterable(f"{task.name}.map() received no iterable parameters; "
                                     "map needs at least one list-like argument (wrap whole values in unmapped())")
    lengths = {name: len(items) for name, items in iterables.items()}
    if len(set(lengths.values())) > 1:
        raise MappingLengthMismatch(f"{task.name}.map() received iterables of different lengths: {lengths}; "
                                    "every mapped parameter must have the same length")
    elements = []
    for index in range(next(iter(lengths.values()))):
        element = task.signature.bind_partial()
        for name, value in bound.arguments.items():
            element.arguments[name] = iterables[name][index] if name in iterables else value
        elements.append((element.args, element.kwargs))
    return elements


def _iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


# One task run --------------------------------------------------------------------------------------

def prepare(task: "Task", args: tuple, kwargs: dict, wait_for: Iterable[Any] | None,
             map_index: int | None = None) -> tuple:
    parent = task_run_var.get()
    bound = task.signature.bind(*args, **kwargs)
    deps: list[LocalTaskFuture] = []
    strict: set[int] = set()
    args_template = _template(bound.args, deps, strict, False)
    kwargs_template = _template(bound.kwargs, deps, strict, False)
    for upstream in wait_for or ():
        _template(upstream, deps, strict, False)
    if not deps:  # the very objects given: a task run in this process shares them, as Prefect's does
        args_template, kwargs_template = bound.args, bound.kwargs
    with _numbers_lock:
        number = next(_numbers.setdefault(task.name, itertools.count()))
    arguments = dict(bound.arguments)
    name = task.format_run_name(arguments, f"{task.name}-{number}")
    log_prints = task.log_prints if task.log_prints is not None else bool(parent and parent.log_prints)
    call = TaskCall(parent.run_id if parent else os.urandom(8).hex(), os.urandom(8).hex(), name, map_index, "", task,
                    frozenset(set(range(len(deps))) - strict), log_prints,
                    parent.log_level if parent else logging.INFO, _cache_spec(task, parent),
                    # Outside any run the task runs in the caller's process: breakpoint() stops there.
                    at_terminal=parent.at_terminal if parent else True)
    return call, args_template, kwargs_template, deps


def _run(call: TaskCall, args: Any, kwargs: Any, deps: list[LocalTaskFuture], parent: Any = None,
         in_caller: bool = False) -> Outcome:
    parent = parent if parent is not None else task_run_var.get()
    outcomes = [future.outcome() for future in deps]
    return run_task(call, args, kwargs, outcomes, reports=LocalReports(parent), in_caller=in_caller)


def _template(value: Any, deps: list, strict: set[int], allowed: bool) -> Any:
    """`value` with each future in it replaced by a `Ref` to its place in `deps`."""
    kind = type(value)
    if kind is LocalTaskFuture:
        if value in deps:
            index = deps.index(value)
        else:
            index = len(deps)
            deps.append(value)
        if not allowed:
            strict.add(index)
        return Ref(index)
    if kind is allow_failure:
        return _template(value.value, deps, strict, True)
    if kind is unmapped:
        return _template(value.value, deps, strict, allowed)
    if kind is quote:
        return value.value
    if kind is opaque:
        inner = value.value
        return _template(inner, deps, strict, allowed) if type(inner) is LocalTaskFuture else inner
    if kind is list:
        return [_template(item, deps, strict, allowed) for item in value]
    if kind is tuple:
        return tuple(_template(item, deps, strict, allowed) for item in value)
    if kind is dict:
        return {key: _template(item, deps, strict, allowed) for key, item in value.items()}
    return value


def _cache_spec(task: "Task", parent: Any) -> CacheSpec | None:
    """Where this task run's cached result lives: the calling run's cache, or this project's."""
    policy = policy_of(task)
    if policy is None:
        return None
    directory = getattr(parent, "cache_dir", None) if parent is not None else _project_cache_dir()
    if directory is None and getattr(policy, "key_storage", None) is None:
        return None
    source = None
    if reads(policy, TaskSource):
        from flows_tui.user_code.task_source import task_source

        try:
            source = task_source(task)
        except Exception:
            source = task.source_code
    expiration = task.cache_expiration
    if isinstance(expiration, _dt.timedelta):
        expiration = expiration.total_seconds()
    return CacheSpec(str(directory or ""), getattr(parent, "flow_name", "") or "", source, None,
                     bool(task.refresh_cache), expiration)


def _project_cache_dir() -> str | None:
    """The cache of the project in the current directory (as a flow called from Python uses)."""
    from pathlib import Path

    from flows_tui.project.config import load_config

    try:
        return str(cache_directory(load_config(None, cwd=Path.cwd()).project.state_dir))
    except Exception:  # a broken flows.toml: the task still runs, uncached
        return None


__all__ = ["LocalTaskFuture", "call", "map_calls", "submit"]
