"""What the flows, tasks and logs panes show for what is selected.

A part of FlowsApp (tui/app.py), which mixes it in: `self` is the app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work

from flows_tui.errors import FlowFileError
from flows_tui.record.model import FlowRun
from flows_tui.tracebacks import display_path

from .flow_list import FlowList, FlowRow
from .log_view import LogView
from .screens import TextScreen
from .task_tree import TaskTree
from .bridge import FlowsChanged, _ended, _title


class PaneContents:
    """What the flows, tasks and logs panes show for what is selected."""

    def on_flows_changed(self, message: FlowsChanged) -> None:
        if self._quitting():  # a reload arriving as the app closes
            return
        event = message.event
        first = not self._flows_shown  # the first scan: its errors are rows already, nothing was "reloaded"
        self._flows_shown = True
        self._update_schedules()
        self._show_flows()
        if first:
            self._show_plan_of_selected()
            return
        for error in event.failed:
            where = f"{Path(error.path).name}:{error.line}" if error.line else Path(error.path).name
            self.notify(f"{where}: {error.reason}", title="flow file failed to load", severity="error", timeout=6)
        changed = [*event.flows_added, *event.flows_changed]
        if changed:
            self.notify(f"reloaded: {', '.join(changed[:5])}", timeout=2)
        self._show_plan_of_selected()

    def _show_flows(self) -> None:
        rows: list[FlowRow] = []
        directory = self._directory  # None until the flows' thread has made it (its import server starts)
        files = directory.files if directory is not None else []
        if not self.loaded.is_set() and not files:  # names read from the source, while it imports
            rows = [FlowRow(name, file, importing=True) for file, name in self._named_in_source]
        for loaded in files:
            name = loaded.path.name
            for flow in loaded.flows.values():
                schedule = self._schedules.get(flow.name)
                rows.append(FlowRow(flow.name, name, flow=flow, schedule=schedule.describe() if schedule else None))
            if loaded.error is not None:
                rows.append(FlowRow(f"error:{loaded.path}", name, error=loaded.error))
        for duplicate in directory.duplicates if directory is not None else []:  # as `check` reports them: `r` could not tell them apart
            rows.append(FlowRow(f"error:{duplicate.path}:{duplicate.line}", duplicate.path.name,
                                error=FlowFileError(duplicate.message(lambda path: path.name), path=str(duplicate.path),
                                                    line=duplicate.line)))
        error = self.config_error
        if error is not None and self.config.path is not None:
            # A ✗ row like a broken flow file's: [key] reason in the list, file:line on enter.
            reason = f"[{error.key}] {error.reason}" if getattr(error, "key", None) else getattr(error, "reason", str(error))
            rows.append(FlowRow(f"error:{self.config.path}", self.config.path.name,
                                error=FlowFileError(reason, path=str(self.config.path), line=getattr(error, "line", None),
                                                    traceback=f"{error}\n\nThe last good flows.toml stays in use "
                                                              "until this is fixed and saved.")))
        if self.loaded.is_set() or not self.flows_dir.exists():
            self.query_one("#flows").border_subtitle = ""
        self.query_one(FlowList).show(rows, placeholder=self._no_flows_text() if not rows else ())

    def _run_waiting_for_import(self) -> None:
        """`r` or `p` pressed on a flow while its file imported: done now that it has."""
        if self._after_import is None:
            return
        name, action = self._after_import
        self._after_import = None
        flows = self.query_one(FlowList)
        row = flows.rows_by_key.get(name)
        if row is None or row.flow is None:
            self.notify(f"{name} not started: its file did not define it once imported (see the ✗ rows)",
                        severity="error")
            return
        flows.move_cursor(row=flows.get_row_index(name))
        getattr(self, f"action_{action}")()

    def _no_flows_text(self) -> tuple[str, ...]:
        """What the empty flows pane says: still loading, or how to add a first flow."""
        try:
            folder = str(self.flows_dir.relative_to(self.config.root)) or "."
        except ValueError:
            folder = display_path(str(self.flows_dir))
        if not self.flows_dir.exists():
            return (f"no folder {folder}: create it with a flow file in it,", "or run: flows-tui init")
        if not self.loaded.is_set():
            return ("loading flows…",)
        where = "flows/NAME.py" if folder == "." else f"a .py file in {folder}/"
        return ("no flows here yet.", f"Write {where} with a @flow function (the README's \"A first flow\"),",
                "or run: flows-tui init (an example flow and a commented flows.toml).")

    def _show_plan_of_selected(self, moved: bool = False) -> None:
        """The tasks pane on the highlighted flow: its run in progress or last run, else its plan.
        A run the user opened from the runs pane stays until the user moves in the flows pane
        (`moved`): the flows arriving or reloading do not replace it."""
        if self._quitting():
            return
        if self.opened_run is not None and self.opened_run == self.shown_run and not moved:
            return
        self.opened_run = None
        row = self.query_one(FlowList).current()
        if row is None or row.flow is None:
            return
        running = {e.run_id for e in self.engines.values() if e.flow.name == row.flow.name}
        if self.shown_run in running:
            return  # its run is on screen
        tree = self.query_one(TaskTree)
        if any(flow.name == row.flow.name for flow, _, _ in self._waiting_runs):
            tree.show_waiting(row.flow.name)  # r pressed, the cluster still starting: say so, not the plan
            return
        run_id = self._last_run_of.get(row.key)
        if run_id is None and running:
            return  # just starting: _follow_run puts it on screen
        if run_id is None:  # none here: the last one recorded (an earlier session, `flows-tui run`, serve)
            run_id = self._last_run_elsewhere(row.flow.name)
            if run_id is not None and run_id == self.shown_run:
                return
            if run_id is not None and self._in_model(run_id) is None and self.store is not None:
                tree.show_plan(row.flow.name, row.flow.plan)  # until its last run is read from the store
                self.query_one(LogView).show_run(None)
                self.shown_run = None
                self.open_last_run_of(row.key, run_id)
                return
        # Back on a flow whose run is in progress (after looking at another flow): its run again.
        if run_id is not None:
            with self.bridge.lock:
                run = self.bridge.model.runs.get(run_id)
                if run is not None:
                    self.shown_run = run_id
                    tree.show_run(run, self.clock())
            if run is not None:
                self._show_logs_of(run)
                return
            if run_id == self.shown_run:
                return  # a run just started here, its first events still on the way: they put it on screen
        self.shown_run = None
        self.query_one(LogView).show_run(None)  # the logs pane shows the run the tasks pane shows: none
        tree.show_plan(row.flow.name, row.flow.plan)  # read in the child that imported its file

    def _in_model(self, run_id: str) -> FlowRun | None:
        with self.bridge.lock:
            return self.bridge.model.runs.get(run_id)

    def _last_run_elsewhere(self, flow: str) -> str | None:
        """The latest run of `flow` this UI knows of but did not start: one another process records now
        (its journal folds it into the model), else the last one in the history the runs pane read."""
        with self.bridge.lock:
            runs = [run for run in self.bridge.model.runs.values() if run.flow == flow]
        if runs:
            return max(runs, key=lambda run: run.started).run_id
        return self._stored_last_run.get(flow)

    def _show_logs_of(self, run: FlowRun) -> None:
        """The logs pane on `run` (its lines from the store), unless it shows that run already."""
        logs = self.query_one(LogView)
        if logs.run_id == run.run_id:
            return
        if self.store is None:  # the lines this session kept
            logs.show_run(run.run_id, logs.kept(run.run_id), title=_title(run), ended=_ended(run))
        else:
            self._load_logs(run)

    @work(thread=True, exclusive=True, group="logs", exit_on_error=False)
    def _load_logs(self, run: FlowRun) -> None:
        rows, reader = self.stored_lines(run.run_id, ended=run.ended is not None)
        self.call_from_thread(self._show_loaded_logs, run, rows, reader)

    def _show_loaded_logs(self, run: FlowRun, rows: list, reader: Any) -> None:
        if self.shown_run == run.run_id:  # still the run on screen
            self.query_one(LogView).show_stored(run.run_id, rows, reader, title=_title(run), ended=_ended(run))

    @work(thread=True, exclusive=True, group="inputs", exit_on_error=False)
    def _show_task_run(self, run: FlowRun, task_run: Any) -> None:
        """A task run's inputs and result, described on the cluster; its error and traceback below."""
        from flows_tui.launch.inputs import held_inputs, held_inputs_lines

        try:
            report = held_inputs(self.session, run.run_id, task_run.id)
        except Exception as error:  # the cluster went away meanwhile
            report, problem = None, f"its inputs could not be read from the cluster: {type(error).__name__}: {error}"
        else:
            problem = None if report is not None else "its inputs are no longer held on the cluster"
        lines = held_inputs_lines(report) if report is not None else [problem]
        attempt = task_run.attempts[-1] if task_run.attempts else None
        if task_run.error:
            lines += ["", f"error: {task_run.error}"]
        if attempt is not None and attempt.traceback:
            lines += ["", attempt.traceback]
        lines += ["", f"d debugs it here; flows-tui debug {run.run_id} {task_run.name} --inputs prints them"]
        self.call_from_thread(self.push_screen, TextScreen(f"{task_run.name}  {task_run.state}", "\n".join(lines),
                                                           error=bool(task_run.error)))
