"""What a run reports, and the bus that fans it out.

Every observer of a run (the headless `run`, the store, the TUI, the notifier, the
tests) sees the same events in the same order. The engine folds them into its own
`RunModel` synchronously and publishes them here for everyone else.
"""

from __future__ import annotations

import datetime as _dt
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

Timestamp = _dt.datetime


@dataclass(frozen=True, slots=True)
class FlowRunStarted:
    run_id: str
    flow: str
    parameters: dict[str, Any]
    time: Timestamp
    file: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class FlowStateChanged:
    """The flow run entered `state`. `attempt` counts flow-level retries from 1."""

    run_id: str
    state: str
    time: Timestamp
    attempt: int = 1
    message: str | None = None
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class TaskRunCreated:
    run_id: str
    task_run_id: str
    task: str
    name: str
    time: Timestamp
    map_index: int | None = None
    upstream: tuple[str, ...] = ()
    flow_attempt: int = 1


@dataclass(frozen=True, slots=True)
class TaskStateChanged:
    """The task run entered `state` (Pending, Running, Retrying or a final state)."""

    run_id: str
    task_run_id: str
    state: str
    time: Timestamp
    message: str | None = None
    retry_at: Timestamp | None = None


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    run_id: str
    task_run_id: str
    attempt: int
    time: Timestamp
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptEnded:
    run_id: str
    task_run_id: str
    attempt: int
    state: str
    time: Timestamp
    error: str | None = None
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class LogLine:
    time: Timestamp
    level: int
    message: str
    task_run_id: str | None = None
    attempt: int | None = None
    logger: str | None = None


@dataclass(frozen=True, slots=True)
class LogLines:
    run_id: str
    lines: tuple[LogLine, ...]


Event = (FlowRunStarted | FlowStateChanged | TaskRunCreated | TaskStateChanged | AttemptStarted
         | AttemptEnded | LogLines)


@dataclass(eq=False)
class _Subscription:
    callback: Callable[[list], None]
    pending: "queue.SimpleQueue[Any]" = field(default_factory=queue.SimpleQueue)
    thread: threading.Thread | None = None


_STOP = object()


class EventBus:
    """Thread-safe fan-out: each subscriber gets events in order, in batches, on its own thread.

    A slow subscriber (a store writing to disk, a UI) never slows the engine or the
    other subscribers; `flush()` waits until everything published so far was delivered.
    """

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription] = []
        self._lock = threading.Lock()
        self._delivered = threading.Condition()
        self._published = 0
        self._done: dict[int, int] = {}

    def subscribe(self, callback: Callable[[list], None], *, name: str = "subscriber") -> Callable[[], None]:
        """Deliver every later event to `callback(batch)`; returns a function that unsubscribes."""
        subscription = _Subscription(callback)
        thread = threading.Thread(target=self._deliver, args=(subscription,), name=f"flows-tui-{name}",
                                  daemon=True)
        subscription.thread = thread
        with self._lock:
            self._subscriptions = [*self._subscriptions, subscription]
            self._done[id(subscription)] = self._published
        thread.start()

        def unsubscribe() -> None:
            with self._lock:
                self._subscriptions = [s for s in self._subscriptions if s is not subscription]
            subscription.pending.put(_STOP)
            if threading.current_thread() is not thread:
                thread.join(timeout=10)
            with self._delivered:
                self._done.pop(id(subscription), None)
                self._delivered.notify_all()

        return unsubscribe

    def publish(self, event: Any) -> None:
        self.publish_many((event,))

    def publish_many(self, events: Iterable[Any]) -> None:
        events = list(events)
        if not events:
            return
        with self._lock:
            self._published += len(events)
            for subscription in self._subscriptions:
                subscription.pending.put(events)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every subscriber has handled everything published so far."""
        with self._lock:
            target = self._published
        with self._delivered:
            return self._delivered.wait_for(
                lambda: all(done >= target for done in self._done.values()), timeout=timeout)

    def _deliver(self, subscription: _Subscription) -> None:
        while True:
            first = subscription.pending.get()
            if first is _STOP:
                return
            batch = list(first)
            stop = False
            while True:  # drain what else is waiting into one batch
                try:
                    more = subscription.pending.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.extend(more)
            try:
                subscription.callback(batch)
            except Exception:  # a broken observer must not take the run down with it
                import logging
                logging.getLogger("flows_tui").exception("event subscriber failed")
            with self._delivered:
                self._done[id(subscription)] = self._done.get(id(subscription), 0) + len(batch)
                self._delivered.notify_all()
            if stop:
                return
