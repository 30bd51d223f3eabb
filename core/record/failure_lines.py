"""Why a run failed, said in its log: the lines the engine adds as failures happen.

Every reader of a run's log (`flows-tui logs`, `--level ERROR`, the UI's logs pane, a tail in
another process) then tells the story without the task tree: each failed, timed-out or
crashed attempt (ERROR, on the task run's line), each retry with its delay (WARNING), and the
flow run's end when it did not complete (ERROR, with the traceback).
"""

from __future__ import annotations

import logging
from typing import Any

from flows_tui.states import FAILURE_STATES, FINAL_STATES, RETRYING, SUCCESS_STATES

from . import events as ev
from .model import FlowRun

# The logger these lines carry: `flows-tui run`'s console leaves them out, as it tells the same
# story in its own lines (✗ Failed NAME: error, ↻ Retrying …) and the summary's traceback.
LOGGER = "flows_tui.failures"


def failure_lines(run: FlowRun, event: Any) -> list[ev.LogLine]:
    """The lines `event` adds to the log of `run` (already folded into it): none for most events."""
    kind = type(event)
    if kind is ev.AttemptEnded and event.state in FAILURE_STATES:
        return [ev.LogLine(event.time, logging.ERROR, f"attempt {event.attempt} {event.state}: "
                                                      f"{event.error or 'no error message'}",
                           event.task_run_id, event.attempt, LOGGER)]
    if kind is ev.TaskStateChanged and event.state == RETRYING:
        task_run = run.task_runs.get(event.task_run_id)
        attempt = task_run.attempts[-1] if task_run is not None and task_run.attempts else None
        delay = "" if event.retry_at is None else \
            f" in {max(0.0, (event.retry_at - event.time).total_seconds()):.3g}s"
        what = f"attempt {attempt.number} failed: {attempt.error}" if attempt is not None and attempt.error \
            else (event.message or "the attempt failed")
        return [ev.LogLine(event.time, logging.WARNING, f"{what}; retrying{delay}", event.task_run_id,
                           attempt.number if attempt is not None else None, LOGGER)]
    if kind is ev.FlowStateChanged and event.state in FINAL_STATES and event.state not in SUCCESS_STATES:
        return [ev.LogLine(event.time, logging.ERROR, run_end_message(run), None, None, LOGGER)]
    return []


def run_end_message(run: FlowRun) -> str:
    """The flow run ended without completing: its state, why, and the traceback to read first."""
    message = f"flow run {run.name or run.run_id} ended {run.state}: {run.error or 'no error message'}"
    traceback = run.traceback or first_failure_traceback(run)
    return f"{message}\n{traceback.rstrip()}" if traceback else message


def first_failure_traceback(run: FlowRun) -> str | None:
    """The traceback of the first task run that failed (by when its failing attempt ended)."""
    failed = [(attempt.ended, attempt.traceback) for task_run in run.failed_task_runs()
              for attempt in task_run.attempts if attempt.traceback and attempt.ended is not None]
    return min(failed, key=lambda item: item[0])[1] if failed else None
