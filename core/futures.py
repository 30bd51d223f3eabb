"""Futures of task runs, and the argument annotations `unmapped` and `allow_failure`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Iterable, TypeVar

if TYPE_CHECKING:
    from flows_tui.engine.flow_run import FlowRunEngine
    from .states import State

T = TypeVar("T")


class unmapped(Generic[T]):  # noqa: N801 - Prefect's name
    """Pass a value whole to every element of a `.map()` instead of mapping over it."""

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"unmapped({self.value!r})"


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

    __slots__ = ("task_run_id", "engine", "name")

    def __init__(self, engine: "FlowRunEngine", task_run_id: str, name: str) -> None:
        self.engine = engine
        self.task_run_id = task_run_id
        self.name = name

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> T:
        return self.engine.result(self, timeout=timeout, raise_on_failure=raise_on_failure)

    def wait(self, timeout: float | None = None) -> None:
        self.engine.wait(self, timeout=timeout)

    @property
    def state(self) -> "State":
        return self.engine.state_of(self)

    def done(self) -> bool:
        return self.engine.is_final(self)

    def __repr__(self) -> str:
        return f"TaskFuture({self.name!r}, state={self.engine.state_name(self)})"


class TaskFutureList(list):
    """What `.map()` returns: a list of futures with `.wait()` and `.result()` over all of them."""

    def wait(self, timeout: float | None = None) -> None:
        for future in self:
            future.wait(timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[Any]:
        return [future.result(timeout=timeout, raise_on_failure=raise_on_failure) for future in self]


def wait(futures: Iterable[TaskFuture], timeout: float | None = None) -> None:
    """Wait for every future to reach a final state."""
    for future in futures:
        future.wait(timeout=timeout)
