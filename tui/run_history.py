"""The runs pane: the project's runs, newest first, whoever runs them; enter opens one.

Runs appear when they start and change as they go (the app feeds `upsert` from the runs it
folds: its own, and other processes' read from the store's journal). A new run goes on top
without taking the cursor from the run under it; the pane's subtitle counts the runs that
arrived above it, and `g` goes there.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from flows_tui.record.progress import format_duration, state_text
from flows_tui.safe_text import plain
from flows_tui.tui.keys import vi_keys
from flows_tui.tui.tables import Column, FittedTable

SHOWN_RUNS = 200


def started(moment: _dt.datetime, today: _dt.date) -> str:
    """09:00:01 today, 11-23 09:00 before."""
    local = moment.astimezone()
    return local.strftime("%H:%M:%S") if local.date() == today else local.strftime("%m-%d %H:%M")


class RunHistory(FittedTable):
    BINDINGS = vi_keys()
    # Which run, how it ended, how long it took, whole; when and its id where there is room
    # (80 columns: flow and state; 100: and took; the zoomed pane, `z`: all).
    COLUMNS = (Column("flow", "flow", least=8), Column("state", "state", 11), Column("took", "took", 6, drop=1),
               Column("started", "started", 11, drop=2), Column("run", "run", 8, drop=3))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self.summaries: list[Any] = []  # what is listed, newest first (store.RunSummary or alike)
        self.new_above = 0  # runs that arrived above the cursor since it was last at the top
        self._filling = False

    def show(self, summaries: list[Any]) -> None:
        """Rows for `summaries` (store.RunSummary), keeping the cursor on the same run."""
        selected = self.selected_run()
        known = {summary.run_id for summary in self.summaries}
        self.summaries = list(summaries[:SHOWN_RUNS])
        if selected is not None:
            # Runs listed above the cursor's run that were not listed before arrived meanwhile.
            for summary in self.summaries:
                if summary.run_id == selected:
                    break
                if summary.run_id not in known:
                    self.new_above += 1
        self._fill(selected)

    def upsert(self, summaries: list[Any]) -> None:
        """Runs that started or changed: a changed row in place, a new run on top."""
        rows = {summary.run_id: summary for summary in self.summaries}
        new = [summary for summary in summaries if summary.run_id not in rows]
        for summary in summaries:
            if summary.run_id in rows:
                index = next(i for i, listed in enumerate(self.summaries) if listed.run_id == summary.run_id)
                self.summaries[index] = summary
                self.set_cell(summary.run_id, "state", state_text(summary.state))
                self.set_cell(summary.run_id, "took", format_duration(summary.duration))
        if new:
            ordered = sorted(new, key=lambda summary: summary.started, reverse=True)
            self.show(ordered + self.summaries)

    def _fill(self, selected: str | None) -> None:
        self._filling = True  # clearing puts the cursor on the first row for a moment
        today = _dt.datetime.now().astimezone().date()
        rows = [(summary.run_id, {"run": plain(summary.run_id[:8], one_line=True),
                                  "flow": plain(summary.flow, one_line=True), "state": state_text(summary.state),
                                  "started": started(summary.started, today), "took": format_duration(summary.duration)})
                for summary in self.summaries]
        self.fill(rows)
        if selected is not None:
            try:
                self.move_cursor(row=self.get_row_index(selected), scroll=False)
            except Exception:
                pass
        self._filling = False
        self._say_new_above()

    def watch_cursor_coordinate(self, old: Any, new: Any) -> None:
        super().watch_cursor_coordinate(old, new)
        if new.row == 0 and self.new_above and not self._filling:
            self.new_above = 0
            self._say_new_above()

    def _say_new_above(self) -> None:
        self.border_subtitle = f"↑ {self.new_above} new · g" if self.new_above else ""

    def action_scroll_top(self) -> None:
        self.move_cursor(row=0)

    def selected_run(self) -> str | None:
        if self.row_count == 0 or self.cursor_row < 0:
            return None
        return self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
