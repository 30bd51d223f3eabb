"""Access to the cluster from inside a run: `get_dask_client()`."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .context import current_flow_run, current_task_run


@contextlib.contextmanager
def get_dask_client(timeout: float | None = None, **client_kwargs: Any) -> Iterator[Any]:
    """A client to the cluster running this flow, so a task can compute Dask collections on all workers.

    Inside a task it gives up the task's worker thread while the client computes (Dask's
    `worker_client`), so the workers it waits on can use that slot. In the flow body it is
    the run's own client.
    """
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
