"""Keys every list pane shares: j/k and g/G as in vi and less (arrows, Home and End work too)."""

from __future__ import annotations

from textual.binding import Binding


def vi_keys(*, down: str = "cursor_down", up: str = "cursor_up", top: str = "scroll_top",
            bottom: str = "scroll_bottom") -> list[Binding]:
    """`j` down, `k` up, `g` to the first line, `G` to the last: the widget's own actions for each."""
    return [
        Binding("j", down, "Down", show=False),
        Binding("k", up, "Up", show=False),
        Binding("g", top, "Top", show=False),
        Binding("G", bottom, "Bottom", show=False),
    ]
