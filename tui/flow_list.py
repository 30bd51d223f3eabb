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
from flows_tui.tui.tables import Column, FittedTable, clipped

WATCHING = " watching"


@dataclass(frozen=True)
class FlowRow:
    """One row: a flow (with the file it came from), or a file that failed to load."""

    key: str
    file: str
    flow: Any = None  # flows_tui.Flow
    error: Any = None  # flows_tui.errors.FlowFileError
    schedule: str | None = None
    importing: bool = False  # named from its file's source while the file imports: not runnable yet


BROKEN = "✗ broken"  # a broken file's "last" cell: whole in the column's 11 cells (enter shows the error)


class BrokenFile:
    """A broken file's "flow" cell: its name (and line), then the error's kind where it fits whole."""

    def __init__(self, where: str, kind: str) -> None:
        self.where, self.kind = where, kind

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BrokenFile) and (self.where, self.kind) == (other.where, other.kind)

    def __str__(self) -> str:
        return f"{self.where} {self.kind}"

    def fitted(self, width: int) -> Text:
        where = plain(self.where, "red", one_line=True)
        if where.cell_len + 1 + len(self.kind) <= width:
            return where + plain(f" {self.kind}", "dim red", one_line=True)
        if where.cell_len <= width or width < 8:
            return clipped(where, width)
        # The start and the end of a long name ("very_long_…_name.py:12"): which file, and where in it.
        tail = (width - 1) // 2
        return clipped(where[:width - 1 - tail] + Text("…", style="red") + where[len(where) - tail:], width)


def countdown(moment: _dt.datetime | None, now: _dt.datetime) -> str:
    """The time to `moment` in at most six cells: 45s, 59m17s, 2h05m; "due" once it has come."""
    if moment is None:
        return ""
    seconds = (moment - now).total_seconds()
    return "due" if seconds <= 0 else (f"{int(seconds)}s" if seconds < 60 else format_duration(seconds))


class FlowList(FittedTable):
    """A row per flow; a ✗ row per broken file."""

    BINDINGS = vi_keys()
    # The state whole ("✓ Completed"), the countdown when there is room (the status bar shows the
    # next one anyway), the rest for the name.
    COLUMNS = (Column("flow", "flow", least=8), Column("last", "last", 11), Column("next", "next", 6, drop=1))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.rows_by_key: dict[str, FlowRow] = {}
        self.last_states: dict[str, str] = {}
        self.next_runs: dict[str, _dt.datetime | None] = {}
        self.watching: set[str] = set()
        self.filter = ""
        self._vanished: tuple[str, int] | None = None  # (flow under the cursor that vanished, row the cursor went to)
        self.hidden_columns = frozenset({"next"})  # until a flow has a schedule

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
        lines: list[tuple[str, dict[str, Any]]] = []
        now = _dt.datetime.now(_dt.timezone.utc)
        needle = self.filter.lower()
        for row in rows:
            if needle and needle not in row.key.lower() and needle not in row.file.lower():
                continue
            if row.error is not None:
                where = f"{row.file}:{row.error.line}" if row.error.line else row.file
                kind = getattr(row.error, "error_type", None) or "error"
                lines.append((row.key, {"flow": BrokenFile(where, kind), "last": plain(BROKEN, "red")}))
            else:
                lines.append((row.key, {"flow": self._flow_cell(row.key),
                                        "next": self._next(row.key, now), "last": self._last(row.key)}))
        # No flow to select: dim lines saying why.
        self.fill(lines, note=tuple(plain(text, "dim", one_line=True) for text in placeholder))
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
        if flow in self.rows_by_key:
            self.set_cell(flow, "last", self._last(flow))

    def set_watching(self, flows: set[str]) -> None:
        """The flows under watch-run: a word, not only a colour, so NO_COLOR loses nothing."""
        changed, self.watching = self.watching ^ flows, set(flows)
        for flow in changed:
            self.set_cell(flow, "flow", self._flow_cell(flow))

    def _flow_cell(self, flow: str) -> Text:
        text = plain(flow, "bold", one_line=True)
        if flow in self.watching:
            text.append(WATCHING, style="cyan")
        return text

    def clip(self, column: str, value: Any, width: int) -> Text:
        """A long name under watch-run is cut before " watching", which stays; a broken file's
        name keeps its end (".py:LINE") and is followed by the error's kind where it fits whole."""
        if isinstance(value, BrokenFile):
            return value.fitted(width)
        if column == "flow" and isinstance(value, Text) and value.plain.endswith(WATCHING) \
                and value.cell_len > width >= len(WATCHING) + 4:
            name = clipped(value[:-len(WATCHING)], width - len(WATCHING))
            return name + value[-len(WATCHING):]
        return super().clip(column, value, width)

    def set_next_runs(self, next_runs: dict[str, _dt.datetime | None]) -> None:
        """Countdowns to each flow's next scheduled run (None: paused); called every second."""
        self.next_runs = dict(next_runs)
        self.hide_columns(frozenset() if self.next_runs else frozenset({"next"}))
        now = _dt.datetime.now(_dt.timezone.utc)
        for flow in self.next_runs:
            self.set_cell(flow, "next", self._next(flow, now))

    def _next(self, flow: str, now: _dt.datetime) -> str:
        if flow not in self.next_runs:
            return ""
        moment = self.next_runs[flow]
        return "paused" if moment is None else countdown(moment, now)

    def _has_row(self, key: str) -> bool:
        return self.has_row(key)

    def _last(self, flow: str) -> Text:
        row = self.rows_by_key.get(flow)
        if row is not None and row.importing:
            return Text("importing…", style="dim")
        state = self.last_states.get(flow)
        if state is None:
            return Text("")
        return state_text(state)

    def action_scroll_top(self) -> None:
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(row=self.row_count - 1)
