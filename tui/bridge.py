"""The bridge from the engine's events to the app, the messages it posts, and what the
app's parts share (its timings, names of runs)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
import time

from textual.message import Message

from flows_tui.record import events as ev
from flows_tui.record.model import FlowRun, RunModel
from flows_tui.states import FINAL_STATES

from .log_view import Line

if TYPE_CHECKING:  # the launcher and the flows directory are imported after the UI's first frame
    from flows_tui.launch.launcher import RunLauncher
    from flows_tui.project.flows_directory import FlowsReloaded


# The bridge posts at most one batch per this many seconds: ~20 UI updates a second however
# fast a run reports; what arrives meanwhile joins the next batch.
UPDATE_INTERVAL = 0.05


# Python's own full garbage collections are held off while the UI runs (its third threshold this high:
# in practice never): each stopped the UI for 0.3-1 s in the middle of a busy run. The app runs one
# itself once no run event came for FULL_COLLECTION_IDLE s and the last is FULL_COLLECTION_EVERY s
# old, and, busy or not, once the last is FULL_COLLECTION_LATEST s old: unreachable cycles never pile up.
FULL_COLLECTION_THRESHOLD = 1_000_000
FULL_COLLECTION_IDLE = 2.0
FULL_COLLECTION_EVERY = 10.0
FULL_COLLECTION_LATEST = 60.0


NARROW_WIDTH = 110


CLOSE_SECONDS = 1.0  # q waits this long for the cluster to close; the process then ends (run_app)


# Ended runs the bridge keeps folded beyond those it must (in progress, on screen, each flow's last of
# this session). Older ones are dropped: a long watch of serve's runs must not grow without end, and
# one opened again is read from the store. Without a store nothing is dropped (nowhere to read it back).
KEPT_ENDED_RUNS = 20


KEY_NAMES = {"slash": "/", "question_mark": "?"}  # how a key is written in the footer and in `?`


class RunEvents(Message):
    """Something happened in one or more runs since the last batch (the bridge holds what)."""


class ConfigSaved(Message):
    """flows.toml was saved."""


class FlowsChanged(Message):
    def __init__(self, event: FlowsReloaded) -> None:
        super().__init__()
        self.event = event


class Bridge:
    """Bus subscriber: folds events into a RunModel on the bus's thread, hands the UI batches."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.model = RunModel()
        self._lines: list[Line] = []
        self._changed: set[str] = set()
        self._ended: list[tuple[str, str, str]] = []  # (run id, flow, state) of runs that ended
        self._posted = False
        self._last_post = 0.0

    def __call__(self, batch: list) -> None:
        with self.lock:
            for event in batch:
                self.model.apply(event)
                run_id = getattr(event, "run_id", None)
                if run_id is None:
                    continue
                self._changed.add(run_id)
                if isinstance(event, ev.LogLines):
                    self._lines.extend(self._line(run_id, line) for line in event.lines)
                elif isinstance(event, ev.FlowStateChanged) and event.state in FINAL_STATES:
                    run = self.model.runs.get(run_id)
                    if run is not None:
                        self._ended.append((run_id, run.flow, event.state))
            if self._posted:
                return
            self._posted = True
        wait = UPDATE_INTERVAL - (time.monotonic() - self._last_post)
        if wait > 0:
            time.sleep(wait)  # events keep queueing on the bus; the next drain takes them all
        self._last_post = time.monotonic()
        self.app.post_message(RunEvents())

    def _line(self, run_id: str, line: ev.LogLine) -> Line:
        run = self.model.runs.get(run_id)
        task_run = run.task_runs.get(line.task_run_id) if run is not None and line.task_run_id else None
        return Line(run_id, task_run.name if task_run else "flow", task_run.task if task_run else None, line)

    def take(self) -> tuple[set[str], list[Line], list[tuple[str, str, str]]]:
        with self.lock:
            self._posted = False
            changed, self._changed = self._changed, set()
            lines, self._lines = self._lines, []
            ended, self._ended = self._ended, []
            return changed, lines, ended

    def forget_ended(self) -> None:
        """On the UI's thread, once a batch is on screen: the oldest ended runs past KEPT_ENDED_RUNS, unless needed."""
        app = self.app
        if getattr(app, "store", None) is None:
            return
        with self.lock:
            self._forget_ended(app)

    def _forget_ended(self, app: Any) -> None:
        runs = self.model.runs
        ended = [run for run in runs.values() if run.ended is not None]
        excess = len(ended) - KEPT_ENDED_RUNS
        if excess <= 0:
            return
        needed = {getattr(app, "shown_run", None), *getattr(app, "_last_run_of", {}).values()}
        for run in sorted(ended, key=lambda run: run.ended):
            if excess <= 0:
                break
            if run.run_id not in needed:
                del runs[run.run_id]
                excess -= 1


def _close_quietly(launcher: RunLauncher) -> None:
    try:
        launcher.close()
    except BaseException:  # the process may be ending under it; nothing is left to tell
        pass


def _title(run: FlowRun) -> str:
    """How the logs pane names a run: its flow and the run's name."""
    return f"{run.flow} · {run.name or run.run_id}"


def _ended(run: FlowRun) -> str | None:
    """The run's final state once it has ended (the logs pane has nothing more to follow), else None."""
    return run.state if run.ended is not None else None
