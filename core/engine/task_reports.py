"""Worker reports become events: each report (`flows_tui.engine.wire`) of an attempt's
start, retry and end, and its log lines, folded into the run's model and published."""

from __future__ import annotations

import logging
import time
from sys import intern
from typing import Any

from flows_tui.record import events as ev
from flows_tui.states import CRASHED, PENDING, RETRYING, RUNNING
from flows_tui.states import utc as _utc

from .wire import AttemptEndMsg, AttemptRetryMsg, AttemptStartMsg, LogBatchMsg, Report, from_wire, shared_text

logger = logging.getLogger("flows_tui.engine")


class TaskReports:
    """The engine's part that applies worker reports (a mixin of FlowRunEngine)."""

    def _on_worker_messages(self, event: tuple[float, list[dict]]) -> None:
        """Topic handler (Dask's IO loop thread): keep it cheap."""
        _, messages = event
        self._last_report = time.monotonic()
        with self._lock:
            self._batch = []
            try:
                for message in messages:
                    try:
                        self._apply_worker_message(message)
                    except Exception:
                        logger.exception("could not apply worker report %r", message)
                self.bus.publish_many(self._batch)
            finally:
                self._batch = None
            self._changed.notify_all()

    def _apply_worker_message(self, m: dict) -> None:
        if m["k"] == "end" and "st" in m and self._ran_at_once(m):
            return
        self._apply_report(from_wire(m))

    def _ran_at_once(self, m: dict) -> bool:
        """Most reports: a task run's first attempt, started and ended in one message (`carry_start`).
        Recorded as `_apply_report` records its start and then its end, in one step; False, with
        nothing done, for any other case (an attempt on record already, a task run ended)."""
        task_run_id = m["tr"]
        track = self._tracking.get(task_run_id)
        if (track is None or track.executions is not None or track.open_attempt is not None
                or track.outcome_from_cluster or task_run_id not in self._open_ids):
            return False
        task_run = self.flow_run.task_runs[task_run_id]
        if task_run.attempts:
            return False
        started, ended, state, error = _utc(m["st"]), _utc(m["t"]), intern(m["s"]), m.get("err")
        track.number_attempt(m["x"], m["a"], 1)
        run_id = self.run_id
        events = [ev.AttemptStarted(run_id, task_run_id, 1, started, shared_text(m.get("w")))]
        if task_run.state != RUNNING:
            events.append(ev.TaskStateChanged(run_id, task_run_id, RUNNING, started))
        events.append(ev.AttemptEnded(run_id, task_run_id, 1, state, ended, error, m.get("tb")))
        self._emit(*events)
        self._end_task_run(task_run_id, state, error, ended)
        return True

    def _died_at_start(self, task_run_id: str, track: Any, report: AttemptStartMsg, when: Any) -> None:
        """An attempt whose worker died before its start left it, sent on by the worker's nanny
        (nanny_ledger): on record as an attempt that started and ended Crashed with its worker.

        It may arrive after Dask said the worker is gone, or after the task's next execution
        started elsewhere: so it never touches the attempt open now.
        """
        track.number_attempt(report.execution, report.attempt, len(self.flow_run.task_runs[task_run_id].attempts) + 1)
        self._crashed_at_start(task_run_id, track, when, report.worker, report.died)

    def _crashed_at_start(self, task_run_id: str, track: Any, when: Any, worker: str | None, died: str,
                          again: bool = True) -> None:
        """An attempt that started at `when` on `worker` and ended Crashed with the worker at `died`
        (`again`: Dask runs the task again)."""
        number = len(self.flow_run.task_runs[task_run_id].attempts) + 1
        self._emit(ev.AttemptStarted(self.run_id, task_run_id, number, when, worker),
                   ev.AttemptEnded(self.run_id, task_run_id, number, CRASHED, _utc(time.time()),
                                   error=f"worker {died} died while running this attempt"))
        if again and track.open_attempt is None and task_run_id in self._open_ids:
            self._emit(ev.TaskStateChanged(self.run_id, task_run_id, PENDING, _utc(time.time()),
                                           message="its worker died; Dask runs it again"))

    def _apply_report(self, report: Report) -> None:
        task_run_id = report.task_run_id
        track = self._tracking.get(task_run_id)
        if track is None:
            return
        if isinstance(report, LogBatchMsg):
            attempt = track.attempt_number(report.execution, report.attempt) or report.attempt
            self._emit(ev.LogLines(self.run_id, tuple(
                ev.LogLine(_utc(created), level, message, task_run_id, attempt, name)
                for created, level, message, name in report.lines)))
            return
        when = _utc(report.time)
        task_run = self.flow_run.task_runs[task_run_id]
        if isinstance(report, AttemptEndMsg) and report.started is not None:
            self._apply_report(report.start())  # the attempt started and ended within one batch
        if track.outcome_from_cluster:
            self._apply_late_report(report, track, when)
            return
        if isinstance(report, AttemptStartMsg):
            if track.attempt_number(report.execution, report.attempt) is not None:
                return  # read from a dead worker's ledger already, or sent twice
            if report.died is not None:
                self._died_at_start(task_run_id, track, report, when)
                return
            if track.open_attempt is not None:
                # A new execution while an attempt was open: Dask re-ran the task because the
                # worker running it died. The record says so.
                self._emit(ev.AttemptEnded(self.run_id, task_run_id, track.open_attempt, CRASHED, when,
                                           error="the worker running this attempt died; Dask ran the task again"))
            number = len(task_run.attempts) + 1
            track.number_attempt(report.execution, report.attempt, number)
            track.open_attempt = number
            if task_run_id not in self._open_ids:
                # Dask re-executes a finished task to recover data lost with a worker.
                self._open_ids.add(task_run_id)
                if track.future is None:  # let go of (task_runs): the watcher needs it while it runs
                    from distributed import Future

                    track.future = Future(track.key, self.client)
            self._emit(ev.AttemptStarted(self.run_id, task_run_id, number, when, report.worker))
            if task_run.state != RUNNING:
                self._emit(ev.TaskStateChanged(self.run_id, task_run_id, RUNNING, when))
            return
        number = track.attempt_number(report.execution, report.attempt)
        if isinstance(report, AttemptRetryMsg):
            if number is None:
                return
            self._emit(ev.AttemptEnded(self.run_id, task_run_id, number, report.state, when, report.error,
                                       report.traceback))
            track.open_attempt = None
            self._emit(ev.TaskStateChanged(self.run_id, task_run_id, RETRYING, when,
                                           message=f"attempt {number} {report.state}: {report.error}",
                                           retry_at=_utc(report.time + report.delay)))
            return
        if number is not None:
            self._emit(ev.AttemptEnded(self.run_id, task_run_id, number, report.state, when, report.error,
                                       report.traceback))
            track.open_attempt = None
        if task_run_id in self._open_ids:
            self._end_task_run(task_run_id, report.state, report.error, when)

    def _apply_late_report(self, report: Report, track: Any, when: Any) -> None:
        """A report that arrived after the engine ended its task run with the outcome from the cluster
        (the run's reports had stopped for a while): its attempt is recorded, the task run's state
        stays as it is, and nothing of it opens again."""
        task_run_id = report.task_run_id
        task_run = self.flow_run.task_runs[task_run_id]
        if isinstance(report, AttemptStartMsg):
            number = len(task_run.attempts) + 1
            track.number_attempt(report.execution, report.attempt, number)
            self._emit(ev.AttemptStarted(self.run_id, task_run_id, number, when, report.worker))
            return
        number = track.attempt_number(report.execution, report.attempt)
        if number is not None:
            state = report.state
            self._emit(ev.AttemptEnded(self.run_id, task_run_id, number, state, when, report.error, report.traceback))
