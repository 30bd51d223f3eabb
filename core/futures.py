"""Futures of task runs, Prefect's `wait` and `as_completed`, and the argument annotations.

Prefect's names: `PrefectFuture` (`PrefectDaskFuture`, as prefect-dask calls it) is the
future of one task run, `PrefectFutureList` what `.map()` returns.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Generic, Iterable, Iterator, NamedTuple, TypeVar

if TYPE_CHECKING:
    from flows_tui.engine.flow_run import FlowRunEngine
    from .states import State

T = TypeVar("T")


class unmapped(Generic[T]):  # noqa: N801 - Prefect's name
    """Pass a value whole to every element of a `.map()` instead of mapping over it."""

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def __repr__(self) -> str:
        return f"unmapped({self.value!r})"


class quote(Generic[T]):  # noqa: N801 - Prefect's name
    """Pass a value as it is: futures and states inside it are not resolved, nor is it searched for them."""

    def __init__(self, value: T) -> None:
        self.value = value

    def unquote(self) -> T:
        return self.value

    def unwrap(self) -> T:
        return self.value

    def __repr__(self) -> str:
        return f"quote({self.value!r})"


class opaque(Generic[T]):  # noqa: N801 - Prefect's name
    """Resolve this future (or state) to its value, without searching the value for more futures."""

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def __repr__(self) -> str:
        return f"opaque({self.value!r})"


class allow_failure(Generic[T]):  # noqa: N801 - Prefect's name
    """Run the downstream task even if this upstream failed; it then receives the exception."""

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def __repr__(self) -> str:
        return f"allow_failure({self.value!r})"


class TaskFuture(Generic[T]):
    """The future of one task run. The value stays on the cluster until `.result()` asks for it."""

    # __weakref__: the engine lets go of a finished task run's data once nothing can ask for it.
    __slots__ = ("task_run_id", "engine", "name", "__weakref__")

    def __init__(self, engine: "FlowRunEngine", task_run_id: str, name: str) -> None:
        self.engine = engine
        self.task_run_id = task_run_id
        self.name = name

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> T:
        return self.engine.result(self, timeout=timeout, raise_on_failure=raise_on_failure)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the task run ends, or `timeout` seconds pass (then return all the same, as Prefect)."""
        try:
            self.engine.wait(self, timeout=timeout)
        except TimeoutError:
            pass

    @property
    def state(self) -> "State":
        return self.engine.state_of(self)

    def done(self) -> bool:
        return self.engine.is_final(self)

    @property
    def wrapped_future(self) -> Any:
        """The Dask future of this task run (prefect-dask's name); its key starts with the task's name."""
        return self.engine.dask_future(self)

    def add_done_callback(self, fn: Any) -> None:
        """Call `fn(future)` once the task run has ended (on a thread of the engine's, or now if it has)."""
        import threading

        def call_when_done() -> None:
            self.wait()
            fn(self)

        threading.Thread(target=call_when_done, name=f"flows-tui-done-{self.name}", daemon=True).start()

    def __repr__(self) -> str:
        return f"TaskFuture({self.name!r}, state={self.engine.state_name(self)})"


class TaskFutureList(list):
    """What `.map()` returns: a list of futures with `.wait()` and `.result()` over all of them."""

    def wait(self, timeout: float | None = None) -> None:
        for future in self:
            future.wait(timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[Any]:
        """Every result, in order, fetched from the cluster together; the first failure raises."""
        engines = {id(future.engine) for future in self}
        if len(engines) != 1 or not all(type(future) is TaskFuture for future in self):
            return [future.result(timeout=timeout, raise_on_failure=raise_on_failure) for future in self]
        return self[0].engine.results([future.task_run_id for future in self], timeout=timeout,
                                      raise_on_failure=raise_on_failure)


PrefectFuture = TaskFuture
PrefectDaskFuture = TaskFuture
PrefectFutureList = TaskFutureList


class DoneAndNotDoneFutures(NamedTuple):
    """What `wait` returns, as Prefect (and concurrent.futures): the futures done, and the others."""

    done: set
    not_done: set


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and timeout < 0:
        raise ValueError(f"'timeout' must be a non-negative number, got {timeout}")
    return None if timeout is None else time.monotonic() + timeout


def _wait_for_any(futures: Iterable[TaskFuture], deadline: float | None) -> None:
    """Wait until some run's state changes (or the deadline passes)."""
    future = next(iter(futures))
    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
    future.engine.wait_for_change(0.5 if remaining is None else min(0.5, remaining))


def _engine_of(futures: list) -> Any:
    """The one flow run all these futures belong to, if it can list its endings (else None)."""
    engines = {id(future.engine): future.engine for future in futures if type(future) is TaskFuture}
    if len(engines) != 1 or len(futures) != sum(1 for f in futures if type(f) is TaskFuture):
        return None
    engine = next(iter(engines.values()))
    return engine if hasattr(engine, "ended_since") else None


def _endings(futures: list, deadline: float | None, engine: Any) -> Iterator[list[TaskFuture]]:
    """Batches of `futures` as their task runs end, in the order they ended, each future once.

    Follows the run's list of endings rather than asking every pending future at every change,
    which cost O(n) per ending (O(n²) for a map's 10,000 futures).
    """
    by_run: dict[str, list[TaskFuture]] = {}
    for future in futures:
        by_run.setdefault(future.task_run_id, []).append(future)
    cursor = 0
    while by_run:
        cursor, ended = engine.ended_since(cursor)
        batch = []
        for task_run_id in ended:
            waiting = by_run.get(task_run_id)
            # Ended, then running again (Dask re-ran it after a worker died): its next ending counts.
            if waiting is not None and waiting[0].done():
                batch.extend(by_run.pop(task_run_id))
        if batch:
            yield batch
            continue
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return
        engine.wait_for_ended(cursor, 0.5 if remaining is None else min(0.5, remaining))


def wait(futures: Iterable[TaskFuture], timeout: float | None = None) -> DoneAndNotDoneFutures:
    """Wait until every future is done or `timeout` seconds pass; never raises for the timeout (Prefect's)."""
    deadline = _check_timeout(timeout)
    futures = list(futures)
    engine = _engine_of(futures)
    if engine is not None:
        done: set = set()
        for batch in _endings(futures, deadline, engine):
            done.update(batch)
        return DoneAndNotDoneFutures(done, set(futures) - done)
    pending = set(futures)
    done = {f for f in pending if f.done()}
    pending -= done
    while pending and (deadline is None or time.monotonic() < deadline):
        _wait_for_any(pending, deadline)
        finished = {f for f in pending if f.done()}
        done |= finished
        pending -= finished
    return DoneAndNotDoneFutures(done, pending)


def as_completed(futures: Iterable[TaskFuture], timeout: float | None = None) -> Iterator[TaskFuture]:
    """Yield each future as it finishes; TimeoutError naming how many are unfinished after `timeout` s.

    The results of each batch that finished together are fetched from the cluster together
    (within a byte budget), so the `.result()` that usually follows finds them here.
    """
    deadline = _check_timeout(timeout)
    pending = list(dict.fromkeys(futures))
    total = len(pending)
    engine = _engine_of(pending)
    if engine is not None:
        yielded = 0
        for batch in _endings(pending, deadline, engine):
            engine.prefetch(future.task_run_id for future in batch)
            for future in batch:
                yielded += 1
                yield future
        if yielded < total:
            raise TimeoutError(f"{total - yielded} (of {total}) futures unfinished")
        return
    while pending:
        finished = [f for f in pending if f.done()]
        for future in finished:
            pending.remove(future)
            yield future
        if not pending:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"{len(pending)} (of {total}) futures unfinished")
        _wait_for_any(pending, deadline)


def resolve_futures_to_states(value: Any) -> Any:
    """Futures inside `value` (lists, tuples, sets, dicts) replaced by their final states."""
    return _resolve(value, lambda future: future.state if future.wait() is None else None)


def resolve_futures_to_results(value: Any) -> Any:
    """Futures inside `value` (lists, tuples, sets, dicts) replaced by their results."""
    return _resolve(value, lambda future: future.result())


def _resolve(value: Any, resolve: Any) -> Any:
    if isinstance(value, TaskFuture):
        return resolve(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_resolve(item, resolve) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, dict):
        return {key: _resolve(item, resolve) for key, item in value.items()}
    return value
