"""The flows and runs panes' tables: columns that fit the pane and stay put, rows that change in place.

A pane's columns are sized from the pane's width, never from what the rows hold: a state that
changes from "▶ Running" to "✓ Completed", a flow that starts watching, a reload, do not move
them. When the pane is too narrow for every column, the least needed ones are left out (the zoomed
pane, `z`, shows them all) and the one elastic column (the flow's name) takes the room left; a
longer text in it ends with "…". Every cell is kept, shown or not (`cell`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

NOTE = "note"  # the key of the one column an empty pane shows its note in
GAP = 1  # a space before each column (DataTable's own padding puts two between columns)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int = 0  # 0: the elastic column, which takes the room the others leave
    least: int = 0  # the elastic column's narrowest useful width
    drop: int = 0  # a narrow pane leaves out the column with the highest `drop` first; 0: never


def fit(columns: tuple[Column, ...], room: int, hidden: frozenset[str] = frozenset()) -> dict[str, int]:
    """The columns shown in `room` cells, each with its width (and one space before it), in order."""
    shown = [column for column in columns if column.key not in hidden]
    while True:
        taken = sum(column.width + GAP for column in shown if column.width)
        elastic = [column for column in shown if not column.width]
        rest = room - taken - GAP * len(elastic)
        droppable = [column for column in shown if column.drop]
        if rest >= sum(column.least for column in elastic) or not droppable:
            break
        shown.remove(max(droppable, key=lambda column: column.drop))
    share = max(1, rest // len(elastic)) if elastic else 0
    return {column.key: column.width or share for column in shown}


def clipped(value: Any, width: int) -> Text:
    """`value` on one line of at most `width` cells, ending with "…" when cut; never read as markup."""
    text = value.copy() if isinstance(value, Text) else Text("" if value is None else str(value))
    text.no_wrap = True
    text.end = ""
    if text.cell_len > width:
        text.truncate(width, overflow="ellipsis")
    return text


def _unwrapped(value: Any) -> Text:
    text = clipped(value, 10_000)
    text.no_wrap = False
    return text


def spaced(text: Text) -> Text:
    return Text(" " * GAP, end="") + text


class MeasuredTable(DataTable):
    """A DataTable that draws its rows again once it has measured its rows.

    DataTable measures new rows and changed cells when it is idle, but keeps the lines it drew
    before in a cache: on a busy process those lines could stay on screen until something else
    changed. After each measure the cache is dropped and the table drawn again."""

    async def _on_idle(self, event: Any) -> None:
        measuring = self._require_update_dimensions or bool(self._updated_cells)
        await super()._on_idle(event)
        if measuring:
            self._clear_caches()
            self.refresh()


class FittedTable(MeasuredTable):
    """A table of `COLUMNS` fitted to its width (see the module's doc)."""

    DEFAULT_CSS = """
    FittedTable {
        scrollbar-gutter: stable;
        scrollbar-size-vertical: 1;
    }
    """
    COLUMNS: tuple[Column, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cell_padding=0, **kwargs)
        self.hidden_columns: frozenset[str] = frozenset()  # left out whatever the width (e.g. no schedules: no "next")
        self._cells: dict[str, dict[str, Any]] = {}  # row key → column → value, in the rows' order
        self._note: tuple[Any, ...] = ()
        self._widths: dict[str, int] = {}

    @property
    def shown_columns(self) -> tuple[str, ...]:
        return tuple(self._widths)

    def cell(self, key: str, column: str) -> Any:
        """What the row `key` holds in `column`, whole, shown or not."""
        return self._cells[key][column]

    def has_row(self, key: str) -> bool:
        return key in self._cells

    def on_resize(self, event: Any) -> None:
        self._refit()

    def hide_columns(self, keys: frozenset[str]) -> None:
        if keys != self.hidden_columns:
            self.hidden_columns = keys
            self._refit()

    def fill(self, rows: list[tuple[str, dict[str, Any]]], note: tuple[Any, ...] = ()) -> None:
        """Show `rows` ((key, {column: value}) in order), or, with no rows, `note`'s lines across the
        pane. The same keys as shown: cells change in place; other keys: the rows are added again."""
        self._cells = {key: dict(values) for key, values in rows}
        self._note = note if not rows else ()
        widths = self._fitted()
        if widths != self._widths:
            self._rebuild(widths)
            return
        if [key for key, _ in self._displayed()] == [key.value for key in self.rows]:
            for key, values in self._displayed():
                for column, value in values.items():
                    if self.get_cell(key, column) != value:
                        self.update_cell(key, column, value)
            return
        self.clear()
        self._add_rows()

    def set_cell(self, key: str, column: str, value: Any) -> None:
        """One cell of a listed row changes."""
        if key not in self._cells:
            return
        self._cells[key][column] = value
        if column in self._widths and self._note == ():
            self.update_cell(key, column, spaced(self.clip(column, value, self._widths[column])))

    def _fitted(self) -> dict[str, int]:
        room = self.scrollable_content_region.width
        if room <= 0:  # not laid out yet: on_resize fits it
            room = 200
        if self._note:
            return {NOTE: max(1, room - GAP)}
        return fit(self.COLUMNS, room, self.hidden_columns)

    def _refit(self) -> None:
        widths = self._fitted()
        if widths != self._widths:
            self._rebuild(widths)

    def _rebuild(self, widths: dict[str, int]) -> None:
        row = self.cursor_row
        self._widths = widths
        self.clear(columns=True)
        labels = {column.key: column.label for column in self.COLUMNS}
        for key, width in widths.items():
            self.add_column(spaced(clipped(labels.get(key, ""), width)), key=key, width=width + GAP)
        self._add_rows()
        if self.row_count:
            self.move_cursor(row=min(max(row, 0), self.row_count - 1), scroll=False)

    def _displayed(self) -> list[tuple[str, dict[str, Text]]]:
        if self._note:  # each line of the note wrapped to the pane
            width = self._widths[NOTE]
            lines = [part for line in self._note for part in _unwrapped(line).wrap(self.app.console, max(width, 1))]
            return [(f"note:{number}", {NOTE: spaced(clipped(line, width))}) for number, line in enumerate(lines)]
        return [(key, {column: spaced(self.clip(column, values.get(column), width))
                       for column, width in self._widths.items()})
                for key, values in self._cells.items()]

    def clip(self, column: str, value: Any, width: int) -> Text:
        """How `value` shows in `column`'s `width` cells."""
        return clipped(value, width)

    def _add_rows(self) -> None:
        for key, values in self._displayed():
            self.add_row(*values.values(), key=key)
