"""Filling a DataTable whose rows come back often (the flows and the runs panes)."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable


def fill(table: DataTable, rows: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Show `rows` ((key, cells) in order). The same keys as shown: cells change in place, so the
    columns keep their widths and nothing flickers (a rebuilt table sizes its columns only on a
    later refresh); other keys: the table is rebuilt."""
    if [key for key, _ in rows] == [key.value for key in table.rows]:
        for key, values in rows:
            for column, value in zip(table.columns, values):
                if table.get_cell(key, column) != value:
                    table.update_cell(key, column, value, update_width=True)
        return
    table.clear()
    for key, values in rows:
        table.add_row(*values, key=key)


class MeasuredTable(DataTable):
    """A DataTable that draws its rows again once it has measured its columns.

    DataTable measures new rows and changed cells when it is idle, but keeps the lines it drew
    before in a cache: on a busy process those lines (cut at the header's width: "slee" for
    "sleepy", "1a2" for a run id) could stay on screen until something else changed. After
    each measure the cache is dropped and the table drawn again."""

    async def _on_idle(self, event: Any) -> None:
        measuring = self._require_update_dimensions or bool(self._updated_cells)
        await super()._on_idle(event)
        if measuring:
            self._clear_caches()
            self.refresh()
