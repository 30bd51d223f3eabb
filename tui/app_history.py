"""The runs of the project: its journal followed live, history loaded, a stored run opened.

A part of FlowsApp (tui/app.py), which mixes it in: `self` is the app."""

from __future__ import annotations

from textual import work

from flows_tui.record.model import FlowRun

from .flow_list import FlowList
from .log_view import KEPT_LINES, SHOWN_LINES, LogView, Reader, Row
from .run_history import SHOWN_RUNS, RunHistory
from .status_bar import StatusBar
from .task_tree import TaskTree
from .bridge import _ended, _title


class HistoryPane:
    """The runs of the project: its journal followed live, history loaded, a stored run opened."""

    def _follow_project(self) -> None:
        """Runs of other processes of the project (serve, `flows-tui run`, a script, another UI) reach
        the bridge from the store's journal, folded like this UI's own."""
        from flows_tui.record.tail import JournalTail

        if self.store is None:
            return
        self._tail = JournalTail(self.store, self.bridge, recover=self.store.read_only is None)
        self._tail.start()

    def _watch_store(self) -> None:
        """A run store that cannot be written (read-only state_dir, full disk) is said, and the UI goes on."""
        if self.store is None:
            return
        self.store.on_problem = lambda message: self.call_from_thread(self.show_store_problem, message,
                                                                      "history incomplete")
        if self.store.read_only is not None:
            self.show_store_problem(f"{self.store.read_only}. Runs started here go on unrecorded, and schedules "
                                    "do not fire.", "runs not recorded")
        from flows_tui.record.retention import Retention

        self._retention = Retention.for_project(self.store, self.config.project, self._history_pruned)

    def _history_pruned(self, message: str) -> None:
        """The retention thread removed old runs: say so, and show the runs that are left."""
        self.call_from_thread(self.notify, message, title="run history")
        self.call_from_thread(self.load_history)

    def show_store_problem(self, message: str, short: str) -> None:
        self.query_one(StatusBar).set_store_problem(short)
        self.notify(message, title="run history", severity="error", timeout=30)

    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def load_history(self) -> None:
        if self.store is None:
            return
        summaries = self.store.runs(limit=SHOWN_RUNS)
        self.call_from_thread(self.query_one(RunHistory).show, summaries)
        last: dict[str, str] = {}
        for summary in reversed(summaries):
            last[summary.flow] = summary.state
            self._stored_last_run[summary.flow] = summary.run_id
        self.call_from_thread(self._show_last_states, last)

    @work(thread=True, exclusive=True, group="cache", exit_on_error=False)
    def measure_cache(self) -> None:
        from flows_tui.cache import cache_directory, cache_size

        size = cache_size(cache_directory(self.config.project.state_dir))
        self.call_from_thread(self.query_one(StatusBar).set_cache_size, size)

    def _show_last_states(self, last: dict[str, str]) -> None:
        flows = self.query_one(FlowList)
        for flow, state in last.items():
            if flow not in flows.last_states:
                flows.set_last_state(flow, state)
        self._show_plan_of_selected()  # the highlighted flow's last run, if it has one now

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def open_last_run_of(self, flow_key: str, run_id: str) -> None:
        """The highlighted flow's last run, recorded by another process or an earlier session, in the
        tasks and logs panes, as the runs pane opens a run (unless the user moved on meanwhile)."""
        run = self.store.open_run(run_id)
        rows, reader = self.stored_lines(run_id, ended=run.ended is not None)
        self.call_from_thread(self._show_last_run_of, flow_key, run, rows, reader)

    def _show_last_run_of(self, flow_key: str, run: FlowRun, rows: list[Row], reader: Reader | None) -> None:
        row = self.query_one(FlowList).current()
        if row is None or row.key != flow_key or self.shown_run is not None or self.opened_run is not None:
            return
        self.shown_run = run.run_id
        with self.bridge.lock:
            run = self.bridge.model.runs.get(run.run_id) or run
        with self.batch_update():
            self.query_one(TaskTree).show_run(run, self.clock())
            self.query_one(LogView).show_stored(run.run_id, rows, reader, title=_title(run), ended=_ended(run))

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def open_stored_run(self, run_id: str) -> None:
        # A big ended run's groups come counted, their task runs read as the tree shows them.
        run = self.store.open_run(run_id)
        rows, reader = self.stored_lines(run_id, ended=run.ended is not None)
        self.call_from_thread(self._show_stored_run, run, rows, reader)

    def stored_lines(self, run_id: str, *, ended: bool) -> tuple[list[Row], Reader | None]:
        """The last lines of a run the logs pane shows, read from the store as its rows; for an ended run
        with more lines than that, how the pane reads the lines a filter shows (they are not all read).
        A run in flight keeps its last KEPT_LINES to refilter, as the lines its events bring are kept."""
        store = self.store

        def reader(task_run_id: str | None, task: str | None, level: int, search: str, count: int) -> list[Row]:
            return [(run_id, r[7] or "flow", r[8], *r[1:7], r[0]) for r in store.last_lines(
                run_id, count, task_run_id=task_run_id, task=task, level=level, search=search)]

        if not ended:
            return reader(None, None, 0, "", KEPT_LINES), None
        rows = reader(None, None, 0, "", SHOWN_LINES + 1)
        if len(rows) <= SHOWN_LINES:
            return rows, None  # all of them: filters refilter these
        return rows[1:], reader

    def _show_stored_run(self, run: FlowRun, rows: list[Row], reader: Reader | None) -> None:
        self.shown_run = self.opened_run = run.run_id  # stays until the user moves in the flows pane
        with self.bridge.lock:  # a run in flight is folded live: its tree as it is now
            run = self.bridge.model.runs.get(run.run_id) or run
        with self.batch_update():
            self.query_one(TaskTree).show_run(run, self.clock())
            self.query_one(LogView).show_stored(run.run_id, rows, reader, title=_title(run), ended=_ended(run))
