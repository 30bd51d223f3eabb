"""The logs pane: the run's lines or one task's, with a level filter, search and follow.

Lines arrive in batches from the bridge and are written with one `write_lines` call per
batch (one call per line is ~20x slower in Textual). The pane keeps the most recent
lines in memory for refiltering; the full history of any run is in the store.
"""

from __future__ import annotations

import logging
import textwrap
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Log, Static

from flows_tui.record import events as ev
from flows_tui.safe_text import plain, visible
from flows_tui.tui.keys import vi_keys

# What the pane keeps to refilter; what the Log widget holds on screen.
KEPT_LINES = 50_000
SHOWN_LINES = 5_000
LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
INDENT = "    "  # before a message's own later lines, and the rest of a wrapped line


def wrapped(text: str, width: int) -> str:
    """`text`'s lines folded at `width` columns (at spaces where it can), the rest indented."""
    if width <= len(INDENT) + 1 or all(len(line) <= width for line in text.split("\n")):
        return text
    folded = []
    for line in text.split("\n"):
        if len(line) <= width:
            folded.append(line)
            continue
        folded.extend(textwrap.wrap(line, width, initial_indent="", subsequent_indent=INDENT, break_long_words=True,
                                    break_on_hyphens=False, replace_whitespace=False, drop_whitespace=True)
                      or [line[:width]])
    return "\n".join(folded)


_clock_shown: tuple[int, str] = (-1, "")  # the last second a line was stamped with, as HH:MM:SS


def _clock(moment: Any) -> str:
    """`moment` as local HH:MM:SS. Lines come in time order, many in each second: the formatting (two
    thirds of a line's cost, while a run logs 10,000 lines a second) is done once per second."""
    global _clock_shown
    second = int(moment.timestamp())
    shown = _clock_shown
    if shown[0] != second:
        shown = _clock_shown = (second, f"{moment.astimezone():%H:%M:%S}")
    return shown[1]


@dataclass(frozen=True)
class Line:
    run_id: str
    source: str  # the task run's name, or "flow"
    task: str | None  # the task's name (every mapped child shares it)
    line: ev.LogLine

    def text(self) -> str:
        level = logging.getLevelName(self.line.level)
        message = self.line.message.replace("\n", "\n" + INDENT)
        return visible(f"{_clock(self.line.time)} {level[:4]:<4} {self.source}: {message}")


class LogView(Vertical):
    """`Log` with a one-line header saying what is shown: run, task, level, search, follow."""

    BINDINGS = [
        Binding("f", "toggle_follow", "Follow"),
        Binding("v", "cycle_level", "Level"),
        Binding("a", "show_all", "All tasks"),
        # As k9s's logs: lines fold at the pane's edge; off, each stays on one line (scroll sideways).
        Binding("w", "toggle_wrap", "Wrap lines"),
        *vi_keys(down="scroll_down", up="scroll_up", top="scroll_home", bottom="scroll_end"),
    ]
    can_focus = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lines: deque[Line] = deque(maxlen=KEPT_LINES)
        self.run_id: str | None = None
        self.task_run_id: str | None = None
        self.task_name: str | None = None
        self.level = logging.DEBUG
        self.search = ""
        self.follow = True
        self.wrap = True
        self._wrapped_at = 0  # the width the lines on screen were folded at
        self.floor = 0  # the last stored line id of the shown run already here
        self.title: str | None = None  # how the header names the run
        self.task_label: str | None = None  # how it names the task followed

    def compose(self) -> ComposeResult:
        yield Static(id="log-header")
        yield Log(id="log-lines", max_lines=SHOWN_LINES, auto_scroll=True)

    def on_mount(self) -> None:
        self._show_header()

    @property
    def output(self) -> Log:
        return self.query_one("#log-lines", Log)

    def shown_lines(self) -> list[str]:
        return [str(line) for line in self.output.lines]

    # Feeding ------------------------------------------------------------------------------------

    def show_run(self, run_id: str | None, lines: Iterable[Line] = (), *, title: str | None = None) -> None:
        """Switch to `run_id` (its lines so far, e.g. from the store), following the whole run.

        Lines of another process's run carry their ids in the store: those the bridge brought
        after the store was read are kept, and any it brings again later are left out."""
        lines = list(lines)
        self.floor = max((line.line.id for line in lines if line.line.id is not None), default=0)
        later = [line for line in self.lines
                 if line.run_id == run_id and line.line.id is not None and line.line.id > self.floor]
        self.run_id = run_id
        self.title = title or run_id
        self.task_run_id = self.task_name = self.task_label = None
        self.lines.clear()
        self.lines.extend(lines)
        self.lines.extend(later)
        if later:
            self.floor = max(line.line.id for line in later)
        self._refill()

    def add(self, lines: list[Line]) -> None:
        """New lines from the bridge: kept, and written if they match what is shown.

        A batch holds several workers' reports one after the other: in time order, a task's line
        comes after the lines of the tasks it waited for."""
        lines = sorted((line for line in lines if line.line.id is None or line.run_id != self.run_id
                        or line.line.id > self.floor), key=lambda line: line.line.time)
        self.lines.extend(lines)
        matching = [self._shown(line) for line in lines if self._matches(line)]
        if matching:
            self.output.write_lines(matching, scroll_end=self.follow)

    def focus_task(self, task_run_id: str | None, task: str | None, *, name: str | None = None) -> None:
        """Show only the lines of one task run (or of every run of a task); both None: the whole run.
        `name` is how the header names it (the task run's name, not its id)."""
        if (task_run_id, task) == (self.task_run_id, self.task_name):
            return
        self.task_run_id, self.task_name, self.task_label = task_run_id, task, name
        self._refill()

    def set_search(self, text: str) -> None:
        self.search = text
        self._refill()

    # Actions ------------------------------------------------------------------------------------

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.output.auto_scroll = self.follow
        if self.follow:
            self.output.scroll_end(animate=False)
        self._show_header()

    def action_cycle_level(self) -> None:
        self.level = LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)] if self.level in LEVELS else logging.DEBUG
        self._refill()

    def action_show_all(self) -> None:
        self.focus_task(None, None)

    def action_scroll_down(self) -> None:
        self.output.scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.output.scroll_up(animate=False)

    def action_scroll_home(self) -> None:
        self.output.scroll_home(animate=False)

    def action_scroll_end(self) -> None:
        self.output.scroll_end(animate=False)

    # Internals ----------------------------------------------------------------------------------

    def _matches(self, line: Line) -> bool:
        if line.run_id != self.run_id or line.line.level < self.level:
            return False
        if self.task_run_id is not None and line.line.task_run_id != self.task_run_id:
            return False
        if self.task_name is not None and line.task != self.task_name:
            return False
        return not self.search or self.search.lower() in line.line.message.lower()

    def _width(self) -> int:
        return self.output.scrollable_content_region.width

    def _shown(self, line: Line) -> str:
        return wrapped(line.text(), self._wrapped_at) if self.wrap else line.text()

    def on_resize(self, event: Any) -> None:
        if self.wrap and self._width() != self._wrapped_at:
            self._refill()

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap
        self._refill()

    def _refill(self) -> None:
        self._wrapped_at = self._width()
        shown = [self._shown(line) for line in self.lines if self._matches(line)][-SHOWN_LINES:]
        self.output.clear()
        if shown:
            self.output.write_lines(shown, scroll_end=self.follow)
        self._show_header()

    def _show_header(self) -> None:
        parts = ["no run" if self.run_id is None else f"run {self.title}"]
        parts.append("all tasks" if self.task_run_id is None and self.task_name is None else
                     f"task {self.task_label or self.task_name or self._source_of(self.task_run_id)}")
        parts.append(f"level ≥ {logging.getLevelName(self.level)}")
        if self.search:
            parts.append(f"search {self.search!r}")
        parts.append("following" if self.follow else "paused (f follows)")
        if not self.wrap:
            parts.append("no wrap")
        self.query_one("#log-header", Static).update(plain(" · ".join(parts), one_line=True))

    def _source_of(self, task_run_id: str | None) -> str:
        for line in reversed(self.lines):
            if line.line.task_run_id == task_run_id:
                return line.source
        return task_run_id or ""
