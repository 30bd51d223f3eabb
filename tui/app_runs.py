"""Runs this UI starts and their events, as the bridge hands them over.

A part of FlowsApp (tui/app.py), which mixes it in: `self` is the app."""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path
from typing import Any

from textual import work
from textual.worker import Worker, WorkerState

from flows_tui.errors import FlowFileError, FlowsTuiError
from flows_tui.states import RUNNING, SUCCESS_STATES

from .flow_list import FlowList
from .log_view import LogView
from .run_history import RunHistory
from .screens import TextScreen
from .task_tree import TaskTree
from .bridge import RunEvents


class RunsInProgress:
    """Runs this UI starts and their events, as the bridge hands them over."""

    def run_when_imported(self, listed: Any, values: dict[str, Any]) -> None:
        """`r`: the flow's file imported here (after its child import succeeded), the values checked
        against its signature, then the run started. On a thread of its own, not a Textual worker,
        whose end Textual's own end waits for (`q` would wait for a slow import)."""
        threading.Thread(target=self._import_then_run, args=(listed, values), name="flows-tui-import",
                         daemon=True).start()

    def import_in_background(self, listed: Any) -> concurrent.futures.Future:
        """The Flow of `listed` (as `runnable.flow_for`) from a thread of its own: the parameter form
        checks its values against it."""
        future: concurrent.futures.Future = concurrent.futures.Future()

        def imported() -> None:
            try:
                future.set_result(self.runnable.flow_for(listed))
            except BaseException as error:  # noqa: B036 - the form says it
                future.set_exception(error)

        threading.Thread(target=imported, name="flows-tui-import", daemon=True).start()
        return future

    def _import_then_run(self, listed: Any, values: dict[str, Any]) -> None:
        flow = self.imported_flow(listed)
        if flow is None:
            return
        try:
            parameters = flow.validate(values)
        except FlowsTuiError as error:
            self._from_thread(self.notify, f"{error} (press p to give parameters)", severity="error")
            return
        self._from_thread(self.start_run, flow, parameters, flow.file)

    def imported_flow(self, listed: Any) -> Any:
        """On a thread: the Flow of the flows pane's `listed`, its file imported here if it was not since
        its last save; None, said in a notification, when it does not import."""
        try:
            return self.runnable.flow_for(listed)
        except FlowsTuiError as error:
            self._from_thread(self.notify, f"{listed.name} not run: {import_problem(error)}", severity="error",
                              timeout=8)
            return None

    def start_run(self, flow: Any, parameters: dict[str, Any], file: str | None) -> None:
        if self.cluster is None and self.cluster_error is None and self.connect_cluster:
            # Still starting: the run waits for it (r pressed at launch runs as soon as it can).
            self._waiting_runs.append((flow, parameters, file))
            self.notify(f"{flow.name} runs as soon as the cluster is ready", timeout=4)
            self.query_one(TaskTree).show_waiting(flow.name)
            self._ensure_cluster()  # the UI opened to watch starts its cluster with the first run
            return
        if self.cluster is None:
            self._no_cluster()
            return
        from flows_tui.launch.shared_cluster import still_served

        if self.cluster.choice.serve_pid is not None and (self.cluster.lost or not still_served(self.cluster.choice)):
            self.query_one(TaskTree).show_waiting(flow.name)  # serve stopped: a cluster of our own starts first
        self._run_flow(flow, parameters, file)

    def _start_waiting_runs(self) -> None:
        """The cluster is ready: the runs asked for while it started, in order."""
        waiting, self._waiting_runs = self._waiting_runs, []
        for flow, parameters, file in waiting:
            self._run_flow(flow, parameters, file)

    @work(thread=True, group="runs", exit_on_error=False)
    def _run_flow(self, flow: Any, parameters: dict[str, Any], file: str | None) -> Any:
        return self._run_engine(flow, parameters, file)

    def _run_engine(self, flow: Any, parameters: dict[str, Any], file: str | None, *, reuse: bool = False) -> Any:
        """Run a flow to its end on this thread; the bridge shows it as it goes.

        Every run leaves its results in the session; with `reuse` (R, w) it also takes what
        the session holds instead of running those tasks again.
        """
        def started(engine: Any) -> None:
            self._started_here.add(engine.run_id)
            self.call_from_thread(self._follow_run, engine.run_id, flow.name)

        if self._live_cluster() is None:
            return None
        return self.launcher.launch(flow, parameters, file=file, reuse=reuse, on_engine=started)

    def _follow_run(self, run_id: str, flow: str) -> None:
        """A run this session started: show it as it goes."""
        self.shown_run = run_id
        self._last_run_of[flow] = run_id
        self.query_one(LogView).show_run(run_id, title=f"{flow} · {run_id}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.push_screen(TextScreen(f"{event.worker.name} failed",
                                        f"{type(error).__name__}: {error}" if error else "unknown error"))

    def on_run_events(self, message: RunEvents) -> None:
        changed, lines, ended = self.bridge.take()
        if self._quitting():  # a batch (another process's run, from the journal) arriving as the app closes
            return
        tree, logs = self.query_one(TaskTree), self.query_one(LogView)
        with self.batch_update():
            if self.shown_run in changed:
                with self.bridge.lock:
                    run = self.bridge.model.runs.get(self.shown_run)
                    if run is not None:
                        tree.show_run(run, self.clock())
            if lines:
                logs.add(lines)
            self._show_live_runs(changed)
            for run_id, flow, state in ended:
                logs.run_ended(run_id, state)
                if run_id in self._started_here or state not in SUCCESS_STATES:
                    severity = "information" if state in SUCCESS_STATES else "error"
                    self.notify(f"{flow}: {state}", severity=severity, timeout=4)
        if ended:
            self.bridge.forget_ended()  # a long watch keeps the recent ones in memory; the store has the rest
            self.load_history()
            self.measure_cache()

    def _show_live_runs(self, changed: set[str]) -> None:
        """The runs pane and the flows' last states follow every run of the project as it goes."""
        with self.bridge.lock:
            runs = [self.bridge.model.runs[run_id] for run_id in changed if run_id in self.bridge.model.runs]
            flows = {run.flow for run in runs}
            in_flight = {run.flow for run in self.bridge.model.runs.values() if run.flow in flows and run.ended is None}
        if not runs:
            return
        from flows_tui.record.store import RunSummary

        self.query_one(RunHistory).upsert([RunSummary(run.run_id, run.flow, run.state, run.started, run.ended)
                                           for run in runs])
        flow_list = self.query_one(FlowList)
        for run in sorted(runs, key=lambda run: run.started):
            flow_list.set_last_state(run.flow, RUNNING if run.flow in in_flight else run.state)


def import_problem(error: FlowsTuiError) -> str:
    """Why a flow's file did not import here: `file.py:LINE: reason` (its name, not its whole path)."""
    if isinstance(error, FlowFileError):
        where = Path(error.path).name + (f":{error.line}" if error.line else "")
        return f"{where}: {error.reason}"
    return str(error)
