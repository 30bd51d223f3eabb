"""What a run reports, and the bus that fans it out.

Every observer of a run (the headless `run`, the store, the TUI, the notifier, the
tests) sees the same events in the same order. The engine folds them into its own
`RunModel` synchronously and publishes them here for everyone else.
"""

from __future__ import annotations

import datetime as _dt
import logging
import queue
import threading
import time
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
    address: str | None = None  # where it ran, as its first line says: "LocalCluster (profile big)", an address
    cluster: str | None = None  # which cluster, in one word a user knows: the profile, else the class or address


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
    id: int | None = None  # its row in the store, once read back from it (the journal, `logs`)


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

    A slow subscriber (a UI, a notifier) never slows the engine or the other subscribers;
    `flush()` waits until everything published so far was delivered.

    With a journal (the store), every batch is handed to the journal first, on a thread of
    its own, and reaches the subscribers only once the journal returned: whatever a user
    has seen on screen is already on disk, so a killed flows-tui loses none of it.
    """

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription] = []
        self._lock = threading.Lock()
        self._delivered = threading.Condition()
        self._published = 0  # events handed to publish
        self._fanned = 0  # events handed to the subscribers (after the journal)
        self._journaled = 0
        self._done: dict[int, int] = {}
        self._journal: Callable[[list], None] | None = None
        self._journal_queue: "queue.SimpleQueue[Any]" | None = None
        self._journal_thread: threading.Thread | None = None

    def set_journal(self, journal: Callable[[list], None]) -> None:
        """Hand every later batch to `journal(batch)` before any subscriber sees it."""
        with self._lock:
            if self._journal is not None:
                raise RuntimeError("this bus already has a journal")
            self._journal = journal
            self._journal_queue = queue.SimpleQueue()
            self._journaled = self._published
            self._journal_thread = threading.Thread(target=self._run_journal, name="flows-tui-journal",
                                                    daemon=True)
            self._journal_thread.start()

    def remove_journal(self, timeout: float | None = 10.0) -> None:
        """Let the journal finish what was published, then stop handing it batches."""
        with self._lock:
            pending, thread = self._journal_queue, self._journal_thread
            self._journal = self._journal_queue = self._journal_thread = None
        if pending is not None:
            pending.put(_STOP)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def subscribe(self, callback: Callable[[list], None], *, name: str = "subscriber") -> Callable[[], None]:
        """Deliver every later event to `callback(batch)`; returns a function that unsubscribes."""
        subscription = _Subscription(callback)
        thread = threading.Thread(target=self._deliver, args=(subscription,), name=f"flows-tui-{name}",
                                  daemon=True)
        subscription.thread = thread
        with self._lock:
            self._subscriptions = [*self._subscriptions, subscription]
            self._done[id(subscription)] = self._fanned
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
            if self._journal_queue is not None:
                self._journal_queue.put(events)
            else:
                self._fan_out(events)

    def _fan_out(self, events: list) -> None:
        """Queue `events` for every subscriber; call with the lock held."""
        self._fanned += len(events)
        for subscription in self._subscriptions:
            subscription.pending.put(events)

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until the journal and every subscriber have handled everything published so far."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._published
            journaled = self._journal_queue is not None
        with self._delivered:
            if journaled and not self._delivered.wait_for(lambda: self._journaled >= target, timeout=timeout):
                return False
        with self._lock:
            fanned = self._fanned
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        with self._delivered:
            return self._delivered.wait_for(
                lambda: all(done >= fanned for done in self._done.values()), timeout=remaining)

    def _run_journal(self) -> None:
        pending = self._journal_queue
        journal = self._journal
        assert pending is not None and journal is not None
        while True:
            batch, stop = _drain(pending)
            if batch:
                try:
                    journal(batch)
                except Exception:  # the journal reports its own failures; the run and the UI go on
                    logging.getLogger("flows_tui").exception("the event journal failed")
                with self._lock:
                    self._fan_out(batch)
                with self._delivered:
                    self._journaled += len(batch)
                    self._delivered.notify_all()
            if stop:
                return

    def _deliver(self, subscription: _Subscription) -> None:
        while True:
            batch, stop = _drain(subscription.pending)
            if batch:
                try:
                    subscription.callback(batch)
                except Exception:  # a broken observer must not take the run down with it
                    logging.getLogger("flows_tui").exception("event subscriber failed")
                with self._delivered:
                    self._done[id(subscription)] = self._done.get(id(subscription), 0) + len(batch)
                    self._delivered.notify_all()
            if stop:
                return


def _drain(pending: "queue.SimpleQueue[Any]") -> tuple[list, bool]:
    """Block for the next batch, then take everything else waiting into it; True when told to stop."""
    first = pending.get()
    if first is _STOP:
        return [], True
    batch = list(first)
    while True:
        try:
            more = pending.get_nowait()
        except queue.Empty:
            return batch, False
        if more is _STOP:
            return batch, True
        batch.extend(more)
