"""Where code is running: inside a flow run (the driver) or a task attempt (a worker).

`get_run_logger()` and `get_dask_client()` read this to find their run.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from flows_tui.engine.flow_run import FlowRunEngine


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
