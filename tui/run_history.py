"""The runs pane: recorded runs from the store, newest first; enter opens one."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable

from flows_tui.record.progress import format_duration, state_text
from flows_tui.safe_text import plain
from flows_tui.tui.keys import vi_keys

SHOWN_RUNS = 200


class RunHistory(DataTable):
    BINDINGS = vi_keys()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)

    def on_mount(self) -> None:
        self.add_column("run", key="run")
        self.add_column("flow", key="flow")
        self.add_column("state", key="state")
        self.add_column("started", key="started")
        self.add_column("took", key="took")

    def show(self, summaries: list[Any]) -> None:
        """Rows for `summaries` (store.RunSummary), keeping the cursor on the same run."""
        selected = self.selected_run()
        self.clear()
        for summary in summaries[:SHOWN_RUNS]:
            state = state_text(summary.state)
            self.add_row(plain(summary.run_id[:8], one_line=True), plain(summary.flow, one_line=True), state,
                         summary.started.astimezone().strftime("%m-%d %H:%M:%S"), format_duration(summary.duration),
                         key=summary.run_id)
        if selected is not None:
            try:
                self.move_cursor(row=self.get_row_index(selected))
            except Exception:
                pass

    def selected_run(self) -> str | None:
        if self.row_count == 0 or self.cursor_row < 0:
            return None
        return self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
