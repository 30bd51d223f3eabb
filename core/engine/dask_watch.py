"""Watching Dask during a run: the run's report topic, worker deaths (topic "all"), futures
that end without a report (a crash, a cancel, a lost report) and the loss of the scheduler."""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from flows_tui.errors import describe as _describe
from flows_tui.record import events as ev
from flows_tui.states import CANCELLED, CRASHED, PENDING, RETRYING, CrashedRun
from flows_tui.states import now as _now
from flows_tui.states import utc as _utc

from . import attempt_ledger
from .cluster import scheduler_lost
from .reports import worker_label
from .wire import from_wire
from .outcome import outcome_summary
from .run_topics import subscribed_by_scheduler

if TYPE_CHECKING:
    from .flow_run import FlowRunEngine

logger = logging.getLogger("flows_tui.engine")


# How long a finished Dask future may wait for its worker's final report, with no report of the
# run arriving meanwhile, before the engine asks the cluster for the outcome itself. Reports
# leave a worker up to 50 ms after its result, and under load they queue behind each other on
# the way (a median 17 s after the task ended in a 40,000-task run on a busy 2-core machine):
# while they still flow, a missing one is on its way, not lost. A report is lost only with its
# worker, so after a worker died the wait is short; otherwise it is long enough to outlast a
# process stalled for seconds (a loaded machine, a profiler). A report that comes after all
# still adds its attempt to the record.
REPORT_GRACE_SECONDS = 2.0
REPORT_QUIET_SECONDS = 10.0
# How often the watcher looks at the run's Dask futures for crashes and lost reports.
WATCH_INTERVAL_SECONDS = 0.5
# A run with more task runs open than this has its futures looked at less often while its
# workers' reports flow and none died: each look costs a moment per open task run, and every
# 0.5 s over a 100,000-task run that grew with the square of its size. The interval grows with
# the open task runs (5 s per 5,000, up to a minute), so the looks cost the same share of the
# driver whatever the size: at every 5 s they took 4% of a 40,000-task run's driver CPU, and
# would have taken 10% at 100,000. A worker's death or the reports stopping still bring a look
# at the next round; what waits is only a task that Dask failed while its worker lives on.
WATCH_ALL_UP_TO = 5000
WATCH_BIG_RUN_EVERY_SECONDS = 5.0
WATCH_BIG_RUN_AT_MOST_SECONDS = 60.0


def watch_interval(open_task_runs: int) -> float:
    """Seconds between looks at a big run's futures while its reports flow (see WATCH_ALL_UP_TO)."""
    return min(WATCH_BIG_RUN_AT_MOST_SECONDS, WATCH_BIG_RUN_EVERY_SECONDS * open_task_runs / WATCH_ALL_UP_TO)


class DaskWatch:
    """The engine's part that watches Dask for what workers cannot report (a mixin of FlowRunEngine)."""

    # Per dead worker: its processing keys of this run whose start never came (key -> task run), and
    # the pid that wrote its ledger file here (None: none), until the scheduler says which of them
    # ran (`on_running_at_removal`).
    _unstarted_at_removal: dict[str, tuple[dict[str, str], int | None]] | None = None

    def _subscribe_with_first_task(self) -> None:
        """Take the run's reports and worker deaths from its first task on: the scheduler
        subscribes the client as the task arrives (`run_topics`); until that is known to
        be there, the run subscribes itself just before the task (not as it starts, which held
        its first task up to 10 ms more: see `run_topics`)."""
        if self._reports_subscribed:
            return
        with self._lock:
            if not self._reports_subscribed:
                send = not subscribed_by_scheduler(self.client)
                _subscribe(self.client, self.topic, self._reports, send=send)
                _worker_deaths.listen(self.client, self, send=send)
                self._last_watch = time.monotonic()
                self._reports_subscribed = True

    def on_worker_removed(self, message: dict) -> None:
        """A worker left the cluster (Dask's `remove-worker` event): record what it took with it."""
        if message.get("expected"):
            return
        self._worker_died = True  # the watcher looks at every future at its next round
        self._workers_lost += 1
        worker = message.get("worker", "a worker")
        when = _now()
        rescheduled, lost = [], []
        unstarted: dict[str, str] = {}  # key -> task run, processing on it with no start received
        # Attempts it started whose start never left it (it died at once): on record, open, now.
        # With no file of it here (another machine), its nanny or the scheduler tells them.
        starts = attempt_ledger.open_starts(worker, self.topic) if isinstance(worker, str) else []
        with self._lock:
            for start in starts:
                try:
                    self._apply_report(from_wire(start))
                except Exception:
                    logger.exception("recording an attempt a dead worker started failed")
            for key in message.get("processing-tasks") or ():
                task_run_id = self._task_run_of_key(key)
                if task_run_id is None or task_run_id not in self._open_ids:
                    continue
                track = self._tracking[task_run_id]
                if track.open_attempt is not None:
                    self._emit(ev.AttemptEnded(self.run_id, task_run_id, track.open_attempt, CRASHED, when,
                                               error=f"worker {worker} died while running this attempt"),
                               ev.TaskStateChanged(self.run_id, task_run_id, PENDING, when,
                                                   message="its worker died; Dask runs it again"))
                    track.open_attempt = None
                else:
                    task_run = self.flow_run.task_runs[task_run_id]
                    rescheduled.append(task_run.name)
                    if not (task_run.state == RETRYING and task_run.retry_at is not None
                            and when < task_run.retry_at):  # not waiting for a retry
                        unstarted[key] = task_run_id
            if unstarted and isinstance(worker, str):
                if self._unstarted_at_removal is None:
                    self._unstarted_at_removal = {}
                self._unstarted_at_removal[worker] = (unstarted, attempt_ledger.written_by(worker))
            for key in message.get("lost-computed-tasks") or ():
                task_run_id = self._task_run_of_key(key)
                if task_run_id is not None:
                    lost.append(self.flow_run.task_runs[task_run_id].name)
            self._changed.notify_all()
        if rescheduled:
            self.log(logging.WARNING, f"worker {worker} died; Dask reschedules the task runs it held: "
                                      f"{_names(rescheduled)}")
        if lost:
            self.log(logging.WARNING, f"worker {worker} died holding results of {_names(lost)}; "
                                      "Dask runs them again if they are still needed")

    def on_running_at_removal(self, message: dict, when: float) -> None:
        """What the scheduler says a worker without a nanny could have been running when it was removed
        (`scheduler_deaths`, right after the worker's `remove-worker` event): each of the run's task
        runs on it whose start never came, and that ran by the count below, is an attempt, Crashed.

        Its ready tasks (inputs all there, not seceded) are in the order the worker takes them. The
        threads the others held (another run's tasks, and this run's started ones, all counted as
        running) leave `free` threads: when the unstarted ones fit, each ran; when more were ready,
        the first `free` of them in that order.
        """
        unstarted, file_of = (self._unstarted_at_removal or {}).pop(message.get("worker"), (None, None))
        if not unstarted or (file_of is not None and file_of == message.get("pid")):
            return  # the worker's own file was here: what it holds was recorded at its removal
        keys = message.get("keys") or ()
        mine = [key for key in keys if key in unstarted]
        free = int(message.get("threads") or 0) - (int(message.get("ready") or len(keys)) - len(mine))
        failed = set(message.get("failed") or ())
        worker = str(message.get("worker"))
        label = worker_label(message.get("name"), worker)
        started = _utc(when)  # when it was removed: when the attempt began is not known
        with self._lock:
            for key in mine[:max(0, free)]:
                task_run_id = unstarted[key]
                self._crashed_at_start(task_run_id, self._tracking[task_run_id], started, label, worker,
                                       again=key not in failed)
            self._changed.notify_all()

    def _lose_scheduler(self) -> None:
        """The Dask scheduler is gone, and every future of the run with it: the run ends Crashed, now.

        Dask's client cancels the futures and tries to reconnect for a while; nothing of this
        run can come back from a scheduler that restarts, so the run does not wait for it.
        """
        try:
            address = self.client.scheduler.address
        except Exception:
            address = self.address
        reason = f"lost the Dask scheduler at {address or self.address} while the run was in progress"
        if (self.address or "").startswith("serve's cluster"):  # launch.shared_cluster: serve's went with it
            reason = f"lost {self.address} while the run was in progress: that serve stopped"
        with self._lock:
            if self._abort is not None:
                return
            self._abort = CrashedRun(reason)
            self._changed.notify_all()
            waiting = self._driver_waiting
            for task_run_id in self._open_task_runs():
                self._end_task_run(task_run_id, CRASHED, reason)
        self.log(logging.ERROR, reason)
        self._stop_body(waiting)

    def _watch_while_waiting(self) -> None:
        """Look at the run's Dask futures every WATCH_INTERVAL_SECONDS once a task was sent: called
        by the run's own thread between its waits for the body and for the task runs to end, with
        the lock held once (released meanwhile: the checks wait on the client's IO loop, whose
        reports take the lock). No thread of its own: starting one per run waited for it to take
        the interpreter, milliseconds on a busy machine, in every run's way."""
        if not self._reports_subscribed:
            return
        now = time.monotonic()
        if now - self._last_watch < WATCH_INTERVAL_SECONDS:
            return
        self._last_watch = now
        self._lock.release()
        try:
            self._check_dask()
        except Exception:
            logger.exception("checking the run's Dask futures failed")
        finally:
            self._lock.acquire()

    def _check_dask(self) -> None:
        if self._abort is None and scheduler_lost(self.client):
            self._lose_scheduler()
            return
        now = time.monotonic()
        silence = REPORT_GRACE_SECONDS if self._workers_lost else REPORT_QUIET_SECONDS
        quiet = now - self._last_report >= silence
        open_count = len(self._open_ids)
        if (open_count > WATCH_ALL_UP_TO and not quiet and not self._worker_died
                and now - self._last_look < watch_interval(open_count)):
            return
        self._last_look, self._worker_died = now, False
        with self._lock:
            tracking = self._tracking
            candidates = [(task_run_id, tracking[task_run_id]) for task_run_id in self._open_ids
                          if tracking[task_run_id].future is not None
                          and tracking[task_run_id].future.status != "pending"]
        unreported = []
        for task_run_id, track in candidates:
            future = track.future
            status = future.status
            if status == "finished":
                # Normally the worker's report is on its way; once the run's reports have stopped
                # coming, ask the cluster for the outcome's state (not its value, which stays put).
                if track.finished_seen is None:
                    track.finished_seen = now
                elif quiet and now - track.finished_seen >= REPORT_GRACE_SECONDS:
                    unreported.append((task_run_id, track))
                continue
            if status == "error":
                try:
                    message = _describe(future.exception(timeout=5))
                except Exception as problem:
                    message = _describe(problem)
                with self._lock:
                    self._end_task_run(task_run_id, CRASHED, f"the task's worker died or the cluster failed it: {message}")
            elif status == "lost" and self._abort is None:
                # The result was lost with a worker: Dask computes it again (the run still holds
                # its future), and that execution arrives as the task run's next attempt.
                continue
            elif status in ("cancelled", "lost"):
                if self._abort is None and _cancelled_with_scheduler(future):
                    # The client reconnected already, but the scheduler that held the run is gone.
                    self._lose_scheduler()
                    return
                with self._lock:
                    aborted = self._abort is not None
                    reason = str(self._abort) if aborted else f"Dask reported the task {status}"
                    self._end_task_run(task_run_id, CANCELLED if aborted else CRASHED, reason)
        if unreported:
            self._take_outcomes_from_cluster(unreported)

    def _take_outcomes_from_cluster(self, unreported: list) -> None:
        """End task runs whose reports were lost with the states their outcomes hold, in one request."""
        futures = [track.future for _, track in unreported]
        try:
            asked = self.client.map(outcome_summary, futures, pure=False)
            self._wait_on_cluster(asked, 30)
            summaries = self.client.gather(asked)
        except Exception as problem:
            summaries = [(CRASHED, _describe(problem))] * len(unreported)
        logger.warning("no report from the worker for %s; took %s from the cluster",
                       _names([track.key for _, track in unreported]),
                       "its outcome" if len(unreported) == 1 else f"their {len(unreported)} outcomes")
        with self._lock:
            for (task_run_id, track), (state, message) in zip(unreported, summaries):
                track.outcome_from_cluster = True
                self._end_task_run(task_run_id, state, message)


class _ReportHandler:
    """The run's topic handler; it lets go of the engine when the run ends (see `_subscribe`)."""

    __slots__ = ("engine",)

    def __init__(self, engine: FlowRunEngine) -> None:
        self.engine: FlowRunEngine | None = engine

    def __call__(self, event: tuple[float, list[dict]]) -> None:
        engine = self.engine
        if engine is not None:  # a report still in flight when the run ended changes nothing
            engine._on_worker_messages(event)


def _subscribe(client: Any, topic: str, handler: _ReportHandler, send: bool = True) -> None:
    """Subscribe `handler` to `topic`, first dropping the handlers of runs that have ended
    (without `send`, only the handler: the scheduler subscribes the client, see `run_topics`).

    Dask's `Client.unsubscribe_topic` (2026.8) tells the scheduler but keeps the handler in
    `client._event_handlers`, one entry per run for as long as the client lives. An ended run's
    handler is dropped here, at the next run, rather than at its own end: by now no report of
    it is in flight (one arriving with no handler makes Dask's client raise).
    """
    handlers = getattr(client, "_event_handlers", None)
    if isinstance(handlers, dict):
        for name, old in list(handlers.items()):
            if type(old) is _ReportHandler and old.engine is None:
                handlers.pop(name, None)
    if send:
        client.subscribe_topic(topic, handler)
    else:
        client._event_handlers[topic] = handler


def _cancelled_with_scheduler(future: Any) -> bool:
    """Whether Dask's client cancelled `future` because it lost the connection to the scheduler."""
    error = getattr(getattr(future, "_state", None), "exception", None)
    return getattr(error, "reason", None) == "scheduler-connection-lost"


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class _WorkerDeaths:
    """One subscription per client to Dask's `all` topic, shared by every engine on that client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[int, tuple[Any, set]] = {}

    def listen(self, client: Any, engine: FlowRunEngine, send: bool = True) -> None:
        """Pass `engine` the client's worker deaths (without `send`, the scheduler subscribes the client)."""
        with self._lock:
            entry = self._listeners.get(id(client))
            if entry is None:
                entry = self._listeners[id(client)] = (client, set())
                from .scheduler_deaths import TOPIC  # Dask is imported by now: the run has a client

                handlers = {"all": functools.partial(self._dispatch, id(client)),
                            TOPIC: functools.partial(self._dispatch_running, id(client))}
                for topic, handler in handlers.items():
                    if send:
                        client.subscribe_topic(topic, handler)
                    else:
                        client._event_handlers[topic] = handler
            entry[1].add(engine)

    def forget(self, client: Any, engine: FlowRunEngine) -> None:
        with self._lock:
            entry = self._listeners.get(id(client))
            if entry is None:
                return
            entry[1].discard(engine)
            if entry[1]:
                return
            del self._listeners[id(client)]
        from .scheduler_deaths import TOPIC

        try:
            client.unsubscribe_topic("all")
            client.unsubscribe_topic(TOPIC)
        except Exception:  # the client is closing
            pass

    def _dispatch(self, client_id: int, event: tuple[float, Any]) -> None:
        _, message = event
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        with self._lock:
            entry = self._listeners.get(client_id)
            engines = list(entry[1]) if entry else []
        for engine in engines:
            engine.on_worker_removed(message)

    def _dispatch_running(self, client_id: int, event: tuple[float, Any]) -> None:
        when, message = event
        if not isinstance(message, dict):
            return
        with self._lock:
            entry = self._listeners.get(client_id)
            engines = list(entry[1]) if entry else []
        for engine in engines:
            engine.on_running_at_removal(message, when)


_worker_deaths = _WorkerDeaths()
