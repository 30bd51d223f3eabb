"""flows-tui: Prefect-style flows on Dask, with a terminal UI for the local loop.

The public API, with Prefect 3's names: a flow written for flows-tui runs under
Prefect by changing only its import line.
"""

from .flows import Flow, flow
from .futures import TaskFuture, TaskFutureList, allow_failure, unmapped, wait
from .logs import get_run_logger
from .runtime import get_dask_client
from .states import State
from .tasks import Task, exponential_backoff, task

__version__ = "0.1.0"

__all__ = [
    "Flow", "State", "Task", "TaskFuture", "TaskFutureList", "allow_failure", "exponential_backoff",
    "flow", "get_dask_client", "get_run_logger", "task", "unmapped", "wait",
]
