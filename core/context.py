"""Where code is running: inside a flow run (the driver) or a task attempt (a worker).

`get_run_logger()` and `get_dask_client()` read this to find their run.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from flows_tui.engine.flow_run import FlowRunEngine


@dataclass(frozen=True)
class TaskRunView:
    """A task run as its context shows it (Prefect's `TaskRun`, the fields a task reads)."""

    id: str
    name: str
    flow_run_id: str
    map_index: int | None
    run_count: int


@dataclass
class TaskRunContext:
    """What a task attempt knows about itself on the worker."""

    run_id: str
    task_run_id: str
    task_name: str
    name: str
    map_index: int | None
    attempt: int
    log_prints: bool
    emit_log: Callable[[logging.LogRecord], None]
    log_level: int = logging.INFO  # records below it are not captured
    at_terminal: bool = False  # run by `flows-tui debug`: breakpoint() opens the debugger
    cache_dir: str | None = None  # the run's cache, for the tasks this one calls
    flow_name: str = ""

    @classmethod
    def get(cls) -> "TaskRunContext | None":
        """The task attempt running in this thread, or None (Prefect's `TaskRunContext.get()`)."""
        return task_run_var.get()

    @property
    def task_run(self) -> "TaskRunView":
        """The task run, as Prefect's `TaskRunContext.task_run`: `id`, `name`, `flow_run_id`, `map_index`,
        `run_count` (the attempt)."""
        return TaskRunView(self.task_run_id, self.name, self.run_id, self.map_index, self.attempt)

    @classmethod
    def model_construct(cls, **values: Any) -> "TaskRunContext":
        """A context with only the fields given (the rest at their defaults or absent), as
        Prefect's pydantic model builds one: to call a cache policy's `compute_key` by hand."""
        context = cls.__new__(cls)
        for field in dataclasses.fields(cls):
            if field.default is not dataclasses.MISSING:
                setattr(context, field.name, field.default)
        for name, value in values.items():
            setattr(context, name, value)
        return context


class FlowRunContext:
    """The flow run driving this thread (Prefect's `FlowRunContext`): its `flow`, `flow_run`, `parameters`."""

    def __init__(self, engine: "FlowRunEngine") -> None:
        self.engine = engine
        self.flow = engine.flow
        self.flow_run = engine.flow_run
        self.parameters = engine.parameters

    @classmethod
    def get(cls) -> "FlowRunContext | None":
        engine = flow_run_var.get()
        return None if engine is None else cls(engine)


def get_run_context() -> "TaskRunContext | FlowRunContext":
    """The task attempt or flow run current in this thread; MissingContextError outside both."""
    task = task_run_var.get()
    if task is not None:
        return task
    flow = FlowRunContext.get()
    if flow is not None:
        return flow
    from .exceptions import MissingContextError

    raise MissingContextError("No run context available. You are not in a flow or task run context.")


flow_run_var: contextvars.ContextVar["FlowRunEngine | None"] = contextvars.ContextVar(
    "flows_tui_flow_run", default=None)
task_run_var: contextvars.ContextVar[TaskRunContext | None] = contextvars.ContextVar(
    "flows_tui_task_run", default=None)


def current_flow_run() -> "FlowRunEngine | None":
    return flow_run_var.get()


def current_task_run() -> TaskRunContext | None:
    return task_run_var.get()


@contextlib.contextmanager
def using(var: contextvars.ContextVar, value: Any) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


tags_var: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("flows_tui_tags", default=frozenset())


@contextlib.contextmanager
def tags(*names: str) -> Iterator[frozenset[str]]:
    """Prefect's `with tags("a", "b"):`, accepted so flows port unchanged; yields the tags now current.

    flows-tui does not use run tags (they select concurrency limits and automations on
    Prefect's server), so they change nothing here.
    """
    current = tags_var.get() | frozenset(names)
    with using(tags_var, current):
        yield current


def run_to_end(value: Any) -> Any:
    """`value`, or, for a coroutine (an async task's or flow's call), what it returns when run to its end.

    It runs in an event loop of its own; in a thread that already runs one (an async caller),
    in a thread of its own, since a loop cannot be nested.
    """
    import inspect

    if not inspect.isawaitable(value):
        return value
    import asyncio

    async def wait() -> Any:
        return await value

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="flows-tui-async") as pool:
        return pool.submit(asyncio.run, wait()).result()


def run_hook(hook: Any, *args: Any) -> None:
    """Call a state hook; an async one runs to its end in an event loop of its own."""
    run_to_end(hook(*args))
