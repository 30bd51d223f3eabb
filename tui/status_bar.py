"""The status bar: first, in red, a run store that cannot be written; the next scheduled run; the cluster
(kind or address, workers, threads, memory, dashboard); the cache."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from rich.text import Text
from textual.widgets import Static

from flows_tui.record.progress import format_duration, format_size
from flows_tui.safe_text import plain, visible
from flows_tui.tui.tables import clipped


class StatusBar(Static):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.cluster: Text = Text("cluster: starting…", style="yellow")
        self.dashboard: str | None = None
        self.flow_clusters: Text | None = None  # the clusters of flows that choose their own, in use
        self.next_run: tuple[str, _dt.datetime] | None = None
        self.cache_size = 0  # bytes of cached results under state_dir; shown only when there are some
        self.store_problem: str | None = None  # e.g. "runs not recorded": the run store cannot be written
        self.notify_off: str | None = None  # e.g. "slack off: SLACK_WEBHOOK_URL unset"

    def on_mount(self) -> None:
        self._draw()

    def set_cluster(self, text: Text | str, dashboard: str | None = None) -> None:
        """The cluster's description, and its dashboard's link (None: none, or not known)."""
        self.cluster = text if isinstance(text, Text) else plain(text)
        self.dashboard = dashboard
        self._draw()

    def set_flow_clusters(self, text: Text | None) -> None:
        self.flow_clusters = text
        self._draw()

    def set_next_run(self, flow: str | None, moment: _dt.datetime | None) -> None:
        self.next_run = None if flow is None or moment is None else (flow, moment)
        self._draw()

    def set_cache_size(self, size: int) -> None:
        self.cache_size = size
        self._draw()

    def set_store_problem(self, problem: str | None) -> None:
        self.store_problem = problem
        self._draw()

    def set_notify_off(self, off: dict[str, tuple[str, ...]]) -> None:
        """Notifiers configured in flows.toml but off, each with the variables it waits for."""
        self.notify_off = "  ".join(f"{name} off: {', '.join(names)} unset" for name, names in off.items()) or None
        self._draw()

    def on_resize(self, event: Any) -> None:
        self._draw()

    def _draw(self) -> None:
        # What changes by the second comes before the cluster's long line. When the line is wider
        # than the terminal it is said shorter, then the cluster's description is cut: its
        # dashboard link always shows whole.
        width = self.size.width or 10_000
        text = self._line(compact=False)
        if text.cell_len > width:
            text = self._line(compact=True)
        if text.cell_len > width:
            text = self._line(compact=True, room=width)
        self.update(text)

    def _line(self, *, compact: bool, room: int | None = None) -> Text:
        gap = " · " if compact else "  ·  "
        head = Text()
        if self.store_problem:
            head.append_text(plain(f"✗ {self.store_problem}", "bold red"))
            head.append(gap)
        if self.next_run is not None:
            flow, moment = self.next_run
            seconds = max(0.0, (moment - _dt.datetime.now(_dt.timezone.utc)).total_seconds())
            head.append(f"next: {visible(flow, one_line=True)} in {format_duration(seconds)}", style="cyan")
            head.append(gap)
        if self.notify_off:
            head.append(visible(self.notify_off, one_line=True), style="yellow")
            head.append(gap)
        cluster = self.cluster
        if compact and cluster.plain.startswith("cluster: "):
            cluster = cluster[len("cluster: "):]
        tail = Text()
        if self.dashboard:
            tail.append(f" · {visible(self.dashboard, one_line=True)}", style="dim")
        if self.flow_clusters is not None:
            tail.append(f"{gap}also ")
            tail.append_text(self.flow_clusters)
        if self.cache_size:
            tail.append(f"{gap}cache {format_size(self.cache_size)}")
        if room is not None:
            cluster = clipped(cluster, max(8, room - head.cell_len - tail.cell_len))
        return Text.assemble(head, cluster, tail)
