"""Task runners used directly, as Prefect's are: `with DaskTaskRunner(...) as runner: runner.submit(task, parameters)`.

A `ThreadPoolTaskRunner` runs each submitted task run in a thread of this process; a
`DaskTaskRunner` on the cluster its options choose, as a flow with that task runner would
(`choose_cluster`), started when the `with` block starts and closed when it ends. Each is a
task run with retries, timeouts, hooks and caching (the attempt loop of `run_task`); none
belongs to a flow run, so none is recorded in the store. Their futures work with `wait` and
`as_completed`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Iterable

from flows_tui.futures import TaskFuture
from flows_tui.states import PENDING, State

from . import local_runs
from .local_runs import Changes, LocalReports, state_of, value_of
from .outcome import Outcome
from .worker import TaskCall, run_task

if TYPE_CHECKING:
    from flows_tui.task_runners import TaskRunner
    from flows_tui.tasks import Task


class RunnerFuture(TaskFuture):
    """A task run a `DaskTaskRunner` submitted: its `wrapped_future` is the Dask future."""

    def __init__(self, changes: Changes, dask_future: Any, name: str, task_run_id: str) -> None:
        super().__init__(changes, task_run_id, name)  # type: ignore[arg-type]
        self._dask_future = dask_future
        dask_future.add_done_callback(lambda _: changes.changed())

    @property
    def wrapped_future(self) -> Any:
        return self._dask_future

    def done(self) -> bool:
        return self._dask_future.done()

    def wait(self, timeout: float | None = None) -> None:
        from distributed import wait

        try:
            wait([self._dask_future], timeout=timeout)
        except TimeoutError:
            pass

    @property
    def state(self) -> State:
        if not self.done():
            return State(PENDING)
        return state_of(self._outcome())

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        return value_of(self._outcome(timeout), raise_on_failure)

    def _outcome(self, timeout: float | None = None) -> Outcome:
        try:
            return self._dask_future.result(timeout=timeout)
        except TimeoutError:
            raise
        except BaseException as error:  # Dask's own failure: the worker died (KilledWorker), a cancel
            return Outcome("Crashed", exception=error, message=f"{type(error).__name__}: {error}", name=self.name)

    def __repr__(self) -> str:
        return f"PrefectDaskFuture({self.name!r})"


def start(runner: "TaskRunner") -> None:
    """The `with` block starts: a DaskTaskRunner connects to (or starts) its cluster."""
    from flows_tui.task_runners import DaskTaskRunner

    if not isinstance(runner, DaskTaskRunner) or getattr(runner, "_cluster", None) is not None:
        return
    from .cluster import choose_cluster, connect
    from .outcome import register_outcome_serializer

    register_outcome_serializer()  # task runs' envelopes come back through Dask's serializer for them

    class _Owner:  # the runner chooses the cluster as the flow it is given to would
        name = "task runner"
        task_runner = runner

    runner._cluster = connect(choose_cluster(None, None, flow=_Owner()))  # type: ignore[attr-defined]
    runner._changes = Changes()  # type: ignore[attr-defined]


def stop(runner: "TaskRunner") -> None:
    cluster = getattr(runner, "_cluster", None)
    runner._cluster = None  # type: ignore[attr-defined]
    if cluster is not None:
        cluster.close()


def submit(runner: "TaskRunner", task: "Task", parameters: dict[str, Any],
           wait_for: Iterable[Any] | None = None) -> TaskFuture:
    from flows_tui.task_runners import DaskTaskRunner

    if not isinstance(runner, DaskTaskRunner):
        return local_runs.submit(task, (), dict(parameters), wait_for=wait_for)
    cluster = getattr(runner, "_cluster", None)
    if cluster is None:
        raise RuntimeError("this DaskTaskRunner is not started: submit inside `with runner:`")
    waited = [future.wrapped_future for future in wait_for or () if isinstance(future, RunnerFuture)]
    call, args, kwargs, _ = local_runs.prepare(task, (), dict(parameters), None)
    call = dataclasses.replace(call, at_terminal=False)  # on a worker: breakpoint() must not wait there
    key = f"{task.name}-{os.urandom(8).hex()}"
    dask_future = cluster.client.submit(_run_on_worker, call, args, kwargs, waited, key=key, pure=False)
    return RunnerFuture(runner._changes, dask_future, call.name, call.task_run_id)  # type: ignore[attr-defined]


def _run_on_worker(call: TaskCall, args: Any, kwargs: Any, waited: list) -> Outcome:
    """On the worker, once the task runs in `wait_for` ended: one task run, to its final state."""
    return run_task(call, args, kwargs, [], reports=LocalReports(None))
