"""The app's actions (its keys): run, re-run, watch, cancel, debug, edit, filter, zoom, help.

A part of FlowsApp (tui/app.py), which mixes it in: `self` is the app."""

from __future__ import annotations

import re
import threading
from typing import Any

from textual import work
from textual.widgets import Input

from flows_tui.errors import FlowsTuiError
from flows_tui.record.model import FlowRun
from flows_tui.safe_text import plain, visible
from flows_tui.states import SUCCESS_STATES
from flows_tui.tracebacks import display_path

from .flow_list import FlowList
from .log_view import LogView
from .screens import FramePicker, HelpScreen, key_help
from .task_tree import TaskTree
from . import terminal
from .bridge import KEY_NAMES


class Actions:
    """The app's actions (its keys): run, re-run, watch, cancel, debug, edit, filter, zoom, help."""

    def _selected_flow(self) -> Any:
        row = self.query_one(FlowList).current()
        if row is None:
            waiting = self.flows_dir.exists() and not self.loaded.is_set()
            self.notify("the flows are still loading; press it again in a moment" if waiting else "no flow selected",
                        severity="warning")
            return None
        if row.importing:
            self.notify(f"{row.file} is still importing; press it again in a moment", severity="warning")
            return None
        if row.flow is None:
            self.notify(f"{row.file} does not load: {row.error.reason}", severity="error")
            return None
        return row.flow

    def _values(self, flow: Any) -> dict[str, Any]:
        from flows_tui.project.catalog import flow_config_for

        flow_config = flow_config_for(self.config, flow)
        return dict(flow_config.parameters) if flow_config else {}

    def _importing(self, action: str) -> bool:
        """The flow under the cursor is named from its file's source, not imported yet: `action` is
        done once it is."""
        row = self.query_one(FlowList).current()
        if row is None or not row.importing:
            return False
        self._after_import = (row.key, action)
        self.notify(f"{row.key}: {row.file} is still importing; this starts when it has", timeout=3)
        return True

    def action_run(self) -> None:
        if self._importing("run"):
            return
        flow = self._selected_flow()
        if flow is None:
            return
        self.run_when_imported(flow, self._values(flow))  # its file imported here now, not before

    def action_run_with_params(self) -> None:
        if self._importing("run_with_params"):
            return
        listed = self._selected_flow()
        if listed is None:
            return
        if getattr(listed, "form", None) is None:
            self.notify(f"{listed.name}: no parameter form: {getattr(listed, 'form_error', None) or 'not read'}",
                        severity="error")
            return

        def chosen(chosen: tuple[Any, dict] | None) -> None:
            if chosen is not None:
                flow, values = chosen
                self.start_run(flow, values, flow.file)

        from .param_form import ParamForm  # on first use: it brings pydantic, a tenth of the UI's start

        # The form's fields are read from the listing; submitted, its values are checked against the flow
        # itself, its file imported here then (the flow is about to run).
        self.push_screen(ParamForm(listed, self._values(listed), lambda: self.import_in_background(listed)),
                         chosen)

    def action_rerun(self) -> None:
        run_id = self.shown_run
        if run_id is None:
            self.notify("no run on screen: open one (runs pane, enter) to re-run its failed tasks", severity="warning")
        elif run_id in self.engines:
            self.notify("this run is still in progress", severity="warning")
        elif self.cluster is None:
            self._no_cluster()
        else:
            self._rerun(run_id)

    @work(thread=True, group="runs", exit_on_error=False)
    def _rerun(self, run_id: str) -> Any:
        """The flow of `run_id` again, on its parameters; what it completed is reused, the rest runs."""
        with self.bridge.lock:
            run = self.bridge.model.runs.get(run_id)
        if run is None and self.store is not None:
            run = self.store.load_run(run_id)
        if run is None:
            return None
        if run.state in SUCCESS_STATES:
            self.call_from_thread(self.notify, f"run {run_id} completed: nothing to re-run (r runs the flow again)")
            return None
        listed = self.directory.flows.get(run.flow)
        if listed is None:
            self.call_from_thread(self.notify, f"flow {run.flow} is not in the flows directory any more",
                                  severity="error")
            return None
        flow = self.imported_flow(listed)
        if flow is None:
            return None
        try:
            parameters = flow.validate(run.parameters)
        except FlowsTuiError as error:
            self.call_from_thread(self.notify, str(error), severity="error")
            return None
        if self.session is not None and self.session.holds(run_id):
            self.call_from_thread(self.notify, f"re-running {run.flow}: what run {run_id} completed is reused")
        else:
            # Results of an earlier session, or of an older run, are gone with that cluster's memory.
            self.call_from_thread(self.notify, f"re-running {run.flow}: run {run_id}'s results are not held in "
                                               "memory; only cached results are reused", severity="warning")
        return self._run_engine(flow, parameters, flow.file, reuse=True)

    def action_watch(self) -> None:
        if self._importing("watch"):
            return
        flow = self._selected_flow()
        if flow is None:
            return
        watch = self.watches.pop(flow.name, None)
        if watch is not None:
            watch.stop(timeout=0)  # a run in progress finishes
            self.notify(f"stopped watching {flow.name}")
        elif self.cluster is None:
            self._no_cluster()
            return
        else:
            from flows_tui.launch.watch_run import WatchRun

            watch = self.watches[flow.name] = WatchRun(self.directory, flow.name, self._watch_run_once,
                                                       on_missing=self._watched_flow_missing)
            watch.start()
            self.notify(f"watching {flow.name}: every save runs it again, reusing unchanged tasks")
        self.query_one(FlowList).set_watching(set(self.watches))

    def _watch_run_once(self, listed: Any) -> None:
        """On the watch-run's thread: one run with the session, on the flow as last saved."""
        flow = self.imported_flow(listed)
        if flow is None:
            return
        try:
            parameters = flow.validate(self._values(flow))
        except FlowsTuiError as error:
            self.call_from_thread(self.notify, f"{flow.name} not run: {error}", severity="error")
            return
        self._run_engine(flow, parameters, flow.file, reuse=True)

    def _watched_flow_missing(self, name: str) -> None:
        self.call_from_thread(self.notify, f"watched flow {name} is not in the flows directory any more",
                              severity="warning")

    def action_cancel(self) -> None:
        engine = self.engines.get(self.shown_run or "")
        with self.bridge.lock:
            shown = self.bridge.model.runs.get(self.shown_run or "")
        if engine is None and shown is not None and shown.ended is None and self.store is not None:
            # Another process's run on screen: its owner is asked through the store.
            self.notify(f"asking the process that runs {shown.flow} ({shown.run_id}) to cancel it")
            self._cancel_elsewhere(shown.run_id)
            return
        engine = engine or next(iter(self.engines.values()), None)
        if engine is None:
            self.notify("no run in progress", severity="warning")
            return
        threading.Thread(target=engine.cancel, args=("cancelled from the UI",), daemon=True).start()
        self.notify(f"cancelling {engine.flow.name} ({engine.run_id})")

    @work(thread=True, group="cancel", exit_on_error=False)
    def _cancel_elsewhere(self, run_id: str) -> None:
        from flows_tui.launch.requests import cancel_run

        outcome = cancel_run(self.store, run_id)
        self.call_from_thread(self.notify, outcome.message, severity="information" if outcome.cancelled else "error",
                              timeout=6)

    def action_debug(self) -> None:
        tree = self.query_one(TaskTree)
        run = tree.flow_run
        task_run_id, _ = tree.selected_task()
        task_run = run.task_runs.get(task_run_id) if run is not None and task_run_id else None
        if task_run is None:
            self.notify("put the cursor on a task run in the tasks pane (d debugs it)", severity="warning")
        elif not task_run.is_final:
            self.notify(f"{task_run.name} has not finished yet", severity="warning")
        elif self.cluster is None:
            self._no_cluster()
        elif not self.loaded.is_set() and run.flow not in self.directory.flows:
            self.notify(f"the flow files are still loading: d debugs {task_run.name} once {run.flow} is listed",
                        severity="warning")
        else:
            self.notify(f"running {run.flow} again up to {task_run.name} to debug it…", timeout=3)
            self._reach_for_debug(run, task_run)

    @work(thread=True, exclusive=True, group="debug", exit_on_error=False)
    def _reach_for_debug(self, run: FlowRun, task_run: Any) -> None:
        """Get the task run's inputs (held results, the cache, or computed again), then the debugger."""
        from flows_tui.cache import cache_directory
        from flows_tui.launch.debug import Target, input_lines, reach, reach_held

        cluster = self._live_cluster()
        try:
            flow = self.runnable.named(run.flow)  # its file imported here, if it was not since its last save
            if cluster is None:
                return
            # The run's own arguments and upstream results while the session holds them; else a re-run.
            reached = reach_held(self.session, run.run_id, task_run, flow) or \
                reach(flow, flow.validate(run.parameters), run.run_id, Target.of(run, task_run),
                      client=cluster.client, cache_dir=cache_directory(self.config.project.state_dir),
                      session=self.session, log_level=self.config.project.log_level,
                      say=lambda text: self.call_from_thread(self.notify, text))
        except FlowsTuiError as error:
            self.call_from_thread(self.notify, str(error), title="debug", severity="error", timeout=8)
            return
        lines = [f"debugging {task_run.name} of run {run.run_id} ({run.flow}); the UI comes back after"] + \
            input_lines(reached)
        self.call_from_thread(self._debug_in_terminal, reached, lines)

    def _debug_in_terminal(self, reached: Any, lines: list[str]) -> None:
        problem = terminal.debug_here(self, reached, [visible(line) for line in lines],
                                      self.config.project.log_level)
        if problem:
            self.notify(problem, severity="error")

    def action_edit(self) -> None:
        where = terminal.where_to_edit(self)
        if isinstance(where, str):
            self.notify(where, severity="warning")
        elif isinstance(where, list):  # a traceback's frames: which one?
            shown = [f"{visible(display_path(path), one_line=True)}:{line}" for path, line in where]
            self.push_screen(FramePicker(where, shown), lambda chosen: chosen and self._edit_at(*chosen))
        else:
            self._edit_at(*where)

    def _edit_at(self, path: str, line: int | None) -> None:
        problem = terminal.edit(self, path, line)
        if problem:
            self.notify(problem, severity="error")
        if not self.watch_files:  # else the watcher has reloaded the save already
            self.directory.reload([path])

    def action_logs(self) -> None:
        logs = self.query_one(LogView)
        logs.output.focus()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        self._filter_target = "logs" if self._in(LogView) or self._in(TaskTree) else "flows"
        box.placeholder = ("search the logs" if self._filter_target == "logs" else "filter flows") + \
            " (as you type; enter keeps it, esc clears)"
        current = self.query_one(LogView).search if self._filter_target == "logs" else self.query_one(FlowList).filter
        with box.prevent(Input.Changed):
            box.value = current
        box.display = True
        box.focus()

    def _set_filter(self, text: str) -> None:
        if self._filter_target == "logs":
            self.query_one(LogView).set_search(text)
            return
        flows = self.query_one(FlowList)
        if flows.filter != text:
            flows.filter = text
            self._show_flows()
        title = f"flows · {self.flows_dir.name}" + (f" · /{text}" if text else "")
        self.query_one("#flows").border_title = plain(title, one_line=True)

    def _close_filter(self) -> None:
        self.query_one("#filter", Input).display = False
        target: Any = self.query_one(LogView).output if self._filter_target == "logs" else self.query_one(FlowList)
        target.focus()

    def on_key(self, event: Any) -> None:
        if event.key != "escape":
            return
        box = self.query_one("#filter", Input)
        if box.has_focus:
            self._set_filter("")
            self._close_filter()
            event.stop()
        elif self.query_one(FlowList).filter and self._in(FlowList):  # esc in the filtered pane clears it
            self._filter_target = "flows"
            self._set_filter("")
            event.stop()

    def _in(self, kind: type) -> bool:
        node = self.focused
        while node is not None:
            if isinstance(node, kind):
                return True
            node = node.parent
        return False

    def action_toggle_schedule(self) -> None:
        flow = self._selected_flow()
        if flow is None:
            return
        if self.scheduler is None or flow.name not in self.scheduler.next_due():
            self.notify(f"{flow.name} has no schedule ([flows.{flow.name}] cron or interval in flows.toml)",
                        severity="warning")
            return
        paused = self.scheduler.next_due()[flow.name] is not None
        self.scheduler.pause(flow.name, paused)  # kept in the store: the process firing the schedules reads it
        holder = self.scheduler.standing_by
        elsewhere = f" ({holder} fires it, and takes this within a second)" if holder else ""
        self.notify(f"schedule of {flow.name} {'paused' if paused else 'resumed'}{elsewhere}")
        self.every_second()

    def action_trigger(self) -> None:
        flow = self._selected_flow()
        if flow is None:
            return
        if self.scheduler is None or flow.name not in self.scheduler.next_due():
            self.action_run()
            return
        holder = self.scheduler.standing_by
        if holder is not None and self.store is not None:  # serve fires the schedules: it runs it
            self.notify(f"asking {holder} to run {flow.name} now")
            self._run_now_elsewhere(flow.name, holder)
            return
        self.scheduler.trigger(flow.name)

    @work(thread=True, group="run-now", exit_on_error=False)
    def _run_now_elsewhere(self, flow: str, holder: str) -> None:
        from flows_tui.launch.requests import run_now_through

        outcome = run_now_through(self.store, flow, holder, self.scheduler.lock.holder_alive)
        if outcome.gone:  # the schedules pass to this UI within a second; the run starts here now
            self.call_from_thread(self.notify, f"{outcome.message}; running it here", severity="warning", timeout=6)
            self.scheduler.trigger(flow)
            return
        self.call_from_thread(self.notify, outcome.message, severity="information" if outcome.started else "error",
                              timeout=6)

    def action_zoom(self) -> None:
        """The focused pane alone on screen, or back to all panes."""
        panes = list(self.query("#flows, #runs, #tasks, #logs"))
        left = self.query_one("#left")
        if self.has_class("zoomed"):
            self.remove_class("zoomed")
            for widget in (*panes, left, self.query_one("#right")):
                widget.display = True
            left.styles.width = None
            left.styles.max_width = None
            return
        target = next((pane for pane in panes if self._contains_focus(pane)), None)
        if target is None:
            return
        self.add_class("zoomed")
        for pane in panes:
            pane.display = pane is target
        in_left = target.parent is left
        left.display = in_left
        self.query_one("#right").display = not in_left
        if in_left:
            left.styles.width = "1fr"
            left.styles.max_width = "100%"

    def _contains_focus(self, pane: Any) -> bool:
        node = self.focused
        while node is not None:
            if node is pane:
                return True
            node = node.parent
        return False

    def action_save_screenshot(self) -> None:
        """An SVG of the screen under state_dir/screenshots (not in the project's own files), said where."""
        folder = self.config.project.state_dir / "screenshots"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = self.save_screenshot(path=str(folder))
        except OSError as error:
            self.notify(f"screenshot not saved: {error}", severity="error")
            return
        self.notify(f"screenshot saved: {display_path(path)}", timeout=5)

    def action_help(self) -> None:
        # The short form of each description (before its colon or parenthesis): the palette has the rest.
        everywhere = [(KEY_NAMES.get(key, key), re.split(r"[:(]", description)[0].strip())
                      for key, _, _, description in self.ACTIONS]
        sections = [
            ("Everywhere", everywhere + [("ctrl+p", "Command palette: every action and flow"),
                                         ("tab / shift+tab", "Next / previous pane"), ("ctrl+c", "Quit")]),
            ("Flows", [("j/k ↑/↓", "Move"), ("enter", "The task tree, or a broken file's traceback"),
                       ("esc", "Clear the filter")]),
            ("Runs", [("j/k g/G", "Move"), ("enter", "Open the run: its tree and logs")]),
            ("Tasks", [("j/k g/G", "Move; the logs follow the task"), ("space", "Expand or collapse"),
                       ("enter", "Inputs, result and traceback; on … more, more")]),  # d, e: above
            ("Logs", [("j/k g/G", "Scroll"), ("/", "Search as you type (esc clears)")]
             + key_help([binding for binding in LogView.BINDINGS if binding.show])),  # j/k g/G: above
        ]
        self.push_screen(HelpScreen(sections))

    def palette_actions(self) -> dict[str, tuple[str, str]]:
        """What the command palette offers besides the flows: description → (action, key)."""
        return {description: (action, KEY_NAMES.get(key, key)) for key, action, _, description in self.ACTIONS}

    async def select_flow_and(self, flow_name: str, action: str) -> None:
        """The palette's "run NAME": select the flow, then do it (run_action is a coroutine: awaited)."""
        flows = self.query_one(FlowList)
        try:
            flows.move_cursor(row=flows.get_row_index(flow_name))
        except Exception:
            self.notify(f"flow {flow_name} is not listed", severity="warning")
            return
        await self.run_action(action)
