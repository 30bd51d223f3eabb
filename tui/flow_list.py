"""The flows pane: discovered flows with their last state and next scheduled run, and broken files.

A flow under watch-run (`w`) says "watching" after its name.

Fed by reload events: rows appear, change and vanish as files are saved. A file that no
longer imports shows its error inline (its last good flows stay runnable); enter on it
opens the traceback.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from flows_tui.record.progress import format_duration, state_text
from flows_tui.safe_text import plain
from flows_tui.tui.keys import vi_keys
from flows_tui.tui.tables import MeasuredTable, fill


@dataclass(frozen=True)
class FlowRow:
    """One row: a flow (with the file it came from), or a file that failed to load."""

    key: str
    file: str
    flow: Any = None  # flows_tui.Flow
    error: Any = None  # flows_tui.errors.FlowFileError
    schedule: str | None = None


def countdown(moment: _dt.datetime | None, now: _dt.datetime) -> str:
    if moment is None:
        return ""
    seconds = (moment - now).total_seconds()
    return "due" if seconds <= 0 else f"in {format_duration(seconds).replace('.0s', 's')}"


class FlowList(MeasuredTable):
    """A row per flow; a ✗ row per broken file."""

    BINDINGS = vi_keys()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.rows_by_key: dict[str, FlowRow] = {}
        self.last_states: dict[str, str] = {}
        self.next_runs: dict[str, _dt.datetime | None] = {}
        self.watching: set[str] = set()
        self.filter = ""
        self._vanished: tuple[str, int] | None = None  # (flow under the cursor that vanished, row the cursor went to)

    def on_mount(self) -> None:
        # The countdown before the last state: in a narrow pane the state's symbol still shows when
        # its word is cut, while a countdown cut off would say nothing.
        self.add_column("flow", key="flow")
        self.add_column("next", key="next")
        self.add_column("last", key="last")

    def show(self, rows: list[FlowRow], placeholder: tuple[str, ...] = ()) -> None:
        """Replace the rows, keeping the cursor on the same flow when it still exists.

        A flow that vanishes for a moment (its file read between an in-place save's truncation
        and its write) gets the cursor back when it returns, unless the user moved it meanwhile.
        """
        current = self.current()
        wanted = current.key if current is not None else None
        if self._vanished is not None and self._vanished[1] == self.cursor_row:
            wanted = self._vanished[0]
        self._vanished = None
        self.rows_by_key = {row.key: row for row in rows}
        lines = [(f"placeholder:{number}", (plain(text, "dim", one_line=True), "", ""))
                 for number, text in enumerate(placeholder)]  # no flow to select: dim lines saying why
        now = _dt.datetime.now(_dt.timezone.utc)
        needle = self.filter.lower()
        for row in rows:
            if needle and needle not in row.key.lower() and needle not in row.file.lower():
                continue
            if row.error is not None:
                where = f"{row.file}:{row.error.line}" if row.error.line else row.file
                reason = str(row.error.reason)
                lines.append((row.key, (plain(f"✗ {where}", "red", one_line=True), Text("error", style="red"),
                                        plain(reason.splitlines()[0] if reason.strip() else reason, "red",
                                              one_line=True))))
            else:
                lines.append((row.key, (self._flow_cell(row.key), countdown(self.next_runs.get(row.key), now),
                                        self._last(row.key))))
        fill(self, lines)
        if wanted is not None and wanted in self.rows_by_key:
            try:
                self.move_cursor(row=self.get_row_index(wanted))
            except Exception:  # filtered out
                pass
        elif wanted is not None:
            self._vanished = (wanted, self.cursor_row)

    def current(self) -> FlowRow | None:
        if self.row_count == 0 or self.cursor_row < 0:
            return None
        key = self.coordinate_to_cell_key((self.cursor_row, 0)).row_key.value
        return self.rows_by_key.get(key)

    def set_last_state(self, flow: str, state: str) -> None:
        self.last_states[flow] = state
        if flow in self.rows_by_key and self._has_row(flow):
            self.update_cell(flow, "last", self._last(flow), update_width=True)

    def set_watching(self, flows: set[str]) -> None:
        """The flows under watch-run: a word, not only a colour, so NO_COLOR loses nothing."""
        changed, self.watching = self.watching ^ flows, set(flows)
        for flow in changed:
            if self._has_row(flow):
                self.update_cell(flow, "flow", self._flow_cell(flow))

    def _flow_cell(self, flow: str) -> Text:
        text = plain(flow, "bold", one_line=True)
        if flow in self.watching:
            text.append(" watching", style="cyan")
        return text

    def set_next_runs(self, next_runs: dict[str, _dt.datetime | None]) -> None:
        """Countdowns to each flow's next scheduled run (None: paused); called every second."""
        self.next_runs = dict(next_runs)
        now = _dt.datetime.now(_dt.timezone.utc)
        for flow, moment in self.next_runs.items():
            if self._has_row(flow):
                text = "paused" if moment is None else countdown(moment, now)
                self.update_cell(flow, "next", text, update_width=True)

    def _has_row(self, key: str) -> bool:
        try:
            self.get_row_index(key)
        except Exception:
            return False
        return True

    def _last(self, flow: str) -> Text:
        state = self.last_states.get(flow)
        if state is None:
            return Text("")
        return state_text(state)

    def action_scroll_top(self) -> None:
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(row=self.row_count - 1)
