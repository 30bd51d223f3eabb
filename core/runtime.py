"""Access to the cluster from inside a run: `get_dask_client()`."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from . import plugged  # cluster(name) of the launch layer, above this module
from .context import current_flow_run, current_task_run


@contextlib.contextmanager
def get_dask_client(timeout: float | None = None, *, cluster: str | None = None, **client_kwargs: Any) -> Iterator[Any]:
    """A client to the cluster running this flow, so a task can compute Dask collections on all workers.

    Inside a task it gives up the task's worker thread while the client computes (Dask's
    `worker_client`), so the workers it waits on can use that slot. In the flow body it is
    the run's own client. With `cluster="NAME"`: a client of that flows.toml profile's
    cluster instead, started for the `with` (as `flows_tui.cluster(NAME)`).
    """
    if cluster is not None:
        with plugged.named_cluster(cluster) as client:
            yield client
        return
    if current_task_run() is not None:
        from distributed import get_client, worker_client
        from distributed.threadpoolexecutor import thread_state

        if getattr(thread_state, "executor", None) is None:
            # A task with timeout_seconds runs in a thread of its own, which cannot secede.
            yield get_client(timeout=timeout)
            return
        with worker_client(timeout=timeout, **client_kwargs) as client:
            yield client
        return
    engine = current_flow_run()
    if engine is not None:
        yield engine.client
        return
    raise RuntimeError("get_dask_client() can only be used inside a flow or task run")


class _FlowRunNow:
    """`flows_tui.runtime.flow_run`: the current flow run's `id`, `name`, `parameters`, `flow_name`,
    `run_count` (None outside a run), as Prefect's `prefect.runtime.flow_run`."""

    @property
    def id(self) -> str | None:
        task = current_task_run()
        if task is not None:
            return task.run_id
        engine = current_flow_run()
        return None if engine is None else engine.run_id

    @property
    def name(self) -> str | None:
        engine = current_flow_run()
        return None if engine is None else engine.flow_run.name

    @property
    def flow_name(self) -> str | None:
        engine = current_flow_run()
        return None if engine is None else engine.flow.name

    @property
    def parameters(self) -> dict[str, Any]:
        engine = current_flow_run()
        return {} if engine is None else dict(engine.parameters)

    @property
    def run_count(self) -> int:
        engine = current_flow_run()
        return 0 if engine is None else engine.flow_attempt


class _TaskRunNow:
    """`flows_tui.runtime.task_run`: the current task run's `id`, `name`, `task_name`, `map_index`,
    `run_count` (None or 0 outside a task), as Prefect's `prefect.runtime.task_run`."""

    @property
    def id(self) -> str | None:
        task = current_task_run()
        return None if task is None else task.task_run_id

    @property
    def name(self) -> str | None:
        task = current_task_run()
        return None if task is None else task.name

    @property
    def task_name(self) -> str | None:
        task = current_task_run()
        return None if task is None else task.task_name

    @property
    def map_index(self) -> int | None:
        task = current_task_run()
        return None if task is None else task.map_index

    @property
    def run_count(self) -> int:
        task = current_task_run()
        return 0 if task is None else task.attempt


flow_run = _FlowRunNow()
task_run = _TaskRunNow()
