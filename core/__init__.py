"""flows-tui: Prefect-style flows on Dask, with a terminal UI for the local loop.

The public API, with Prefect 3's names: a flow written for flows-tui runs under
Prefect by changing only its import line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import plugged

if TYPE_CHECKING:  # the names below come on first use (see __getattr__), so `import flows_tui` stays cheap
    from .context import tags
    from .flows import Flow, flow
    from .futures import (PrefectFuture, PrefectFutureList, TaskFuture, TaskFutureList, allow_failure,
                          as_completed, unmapped, wait)
    from .record.logs import get_run_logger
    from .runtime import get_dask_client
    from .states import State
    from .task_runners import DaskTaskRunner
    from .tasks import Task, exponential_backoff, task

__version__ = "0.1.0"


def _run_from_python(flow: Flow, parameters: dict, *, return_state: bool = False):
    from .launch.runner import run_from_python

    return run_from_python(flow, parameters, return_state=return_state)


def _serve_flow(flow: Flow, **options) -> None:
    from .schedule.serve import serve_flow

    serve_flow(flow, **options)


def serve(*deployments, limit: int | None = None, grace: float = 30.0, **ignored) -> None:
    """Prefect's `serve(*deployments)`: each `flow.to_deployment(...)` on its schedule, headless, in one
    session, until SIGTERM or Ctrl-C (`grace`: seconds running runs get to finish then)."""
    from .schedule.serve import serve_deployments

    serve_deployments(deployments, grace)


def _load_from_source(source, entrypoint: str):
    from .project.flow_sources import load_from_source

    return load_from_source(source, entrypoint)


def cluster(name: str):
    """`with cluster("big") as client:` a flows.toml profile's cluster for a Dask computation in a task."""
    from .launch.task_clusters import cluster as named

    return named(name)


def _local_task_runs():
    from .engine import local_runs

    return local_runs


def _runner_runs():
    from .engine import runner_runs

    return runner_runs


# The public API sits below the layers that run and serve flows (see flows_tui.plugged).
plugged.run_from_python = _run_from_python
plugged.serve_flow = _serve_flow
plugged.load_from_source = _load_from_source
plugged.local_task_runs = _local_task_runs
plugged.runner_runs = _runner_runs
plugged.named_cluster = cluster

# The public names and where each is defined. They are imported on first use, so a command
# that needs none of them (`flows-tui runs`, the UI's first frame) does not pay for the engine's
# modules; `from flows_tui import flow, task` imports them as it always did.
_PUBLIC = {
    "tags": "context", "Flow": "flows", "flow": "flows",
    "PrefectFuture": "futures", "PrefectFutureList": "futures", "TaskFuture": "futures",
    "TaskFutureList": "futures", "allow_failure": "futures", "as_completed": "futures", "unmapped": "futures",
    "wait": "futures", "get_run_logger": "record.logs", "get_dask_client": "runtime", "State": "states",
    "DaskTaskRunner": "task_runners", "Task": "tasks", "exponential_backoff": "tasks", "task": "tasks",
}


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        if name.startswith("__"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        try:  # a submodule not imported yet, as `flows_tui.tasks` after `import flows_tui`
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


__all__ = [
    "DaskTaskRunner", "Flow", "PrefectFuture", "PrefectFutureList", "State", "Task", "TaskFuture", "TaskFutureList",
    "allow_failure", "as_completed", "cluster", "exponential_backoff", "flow", "get_dask_client", "get_run_logger",
    "serve", "tags", "task", "unmapped", "wait",
]
