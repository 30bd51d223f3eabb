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
