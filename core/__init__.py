"""flows-tui: Prefect-style flows on Dask, with a terminal UI for the local loop.

The public API, with Prefect 3's names: a flow written for flows-tui runs under
Prefect by changing only its import line.
"""

from .context import tags
from .flows import Flow, flow
from .futures import (PrefectFuture, PrefectFutureList, TaskFuture, TaskFutureList, allow_failure, as_completed,
                      unmapped, wait)
from .logs import get_run_logger
from .runtime import get_dask_client
from .states import State
from .task_runners import DaskTaskRunner
from .tasks import Task, exponential_backoff, task

__version__ = "0.1.0"

__all__ = [
    "DaskTaskRunner", "Flow", "PrefectFuture", "PrefectFutureList", "State", "Task", "TaskFuture", "TaskFutureList",
    "allow_failure", "as_completed", "exponential_backoff", "flow", "get_dask_client", "get_run_logger", "tags",
    "task", "unmapped", "wait",
]
