"""The logs pane: the run's lines or one task's, with a level filter, search and follow.

Lines arrive in batches from the bridge and are written with one `write_lines` call per
batch (one call per line is ~20x slower in Textual). The pane keeps the most recent
lines in memory for refiltering, each as a flat tuple of strings, numbers and a datetime:
the garbage collector stops tracking such a tuple the first time it sees it, so the 50,000
lines kept cost a full collection nothing (as objects they were 100,000 more to scan, a 0.6 s
stall of the UI while a run logs 10,000 lines a second). The full history of any run is
in the store: an ended run with more lines than the pane shows is read only as far as those
(`show_stored`), and a filter's lines are read from the store, in a worker, when asked for.
"""

from __future__ import annotations

import logging
import textwrap
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional

from textual import work
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


def _text(source: str, moment: Any, level: int, message: str) -> str:
    name = logging.getLevelName(level)
    message = message.replace("\n", "\n" + INDENT)
    return visible(f"{_clock(moment)} {name[:4]:<4} {source}: {message}")


@dataclass(frozen=True)
class Line:
    run_id: str
    source: str  # the task run's name, or "flow"
    task: str | None  # the task's name (every mapped child shares it)
    line: ev.LogLine

    def text(self) -> str:
        return _text(self.source, self.line.time, self.line.level, self.line.message)

    def row(self) -> Row:
        """As the pane keeps it: a tuple the garbage collector stops tracking (see the module's doc)."""
        log = self.line
        return (self.run_id, self.source, self.task, log.time, log.level, log.message, log.task_run_id, log.attempt,
                log.logger, log.id)

    @classmethod
    def of(cls, row: Row) -> Line:
        return cls(row[RUN], row[SOURCE], row[TASK], ev.LogLine(*row[TIME:]))


# A kept line: (run_id, source, task, then ev.LogLine's fields in order: time, level, message,
# task_run_id, attempt, logger, id).
Row = tuple
RUN, SOURCE, TASK, TIME, LEVEL, MESSAGE, TASK_RUN, ATTEMPT, LOGGER, ID = range(10)
# The last lines of a run from the store that match (task run id, task, level, search), at most so many.
Reader = Callable[[Optional[str], Optional[str], int, str, int], List[Row]]


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
        self.rows: deque[Row] = deque(maxlen=KEPT_LINES)  # the lines kept, as Line.row()
        self.run_id: str | None = None
        self.task_run_id: str | None = None
        self.task_name: str | None = None
        self.level = logging.DEBUG
        self.search = ""
        self.follow = True
        self.wrap = True
        self._wrapped_at = 0  # the width the lines on screen were folded at
        self.floor = 0  # the last stored line id of the shown run already here
        self.reader: Reader | None = None  # how the lines of a big past run that match are read (show_stored)
        self.title: str | None = None  # how the header names the run
        self.task_label: str | None = None  # how it names the task followed
        self.ended: str | None = None  # the shown run's final state, once it has ended: nothing more to follow

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

    @property
    def lines(self) -> list[Line]:
        """The lines kept, oldest first."""
        return [Line.of(row) for row in self.rows]

    def kept(self, run_id: str) -> list[Line]:
        """The lines kept of `run_id`, oldest first."""
        return [Line.of(row) for row in self.rows if row[RUN] == run_id]

    # Feeding ------------------------------------------------------------------------------------

    def show_run(self, run_id: str | None, lines: Iterable[Line] = (), *, title: str | None = None,
                 ended: str | None = None) -> None:
        """Switch to `run_id` (its lines so far, e.g. from the store), following the whole run.

        Lines of another process's run carry their ids in the store: those the bridge brought
        after the store was read are kept, and any it brings again later are left out."""
        self._show([line.row() for line in lines], run_id, None, title, ended)

    def show_stored(self, run_id: str, rows: list[Row], reader: Reader | None, *, title: str | None = None,
                    ended: str | None = None) -> None:
        """Switch to a run read from the store: its last lines as rows (`Line.row()`), and, for a run with
        more lines than the pane shows (only those were read), how to read the lines a filter shows."""
        self._show(rows, run_id, reader, title, ended)

    def run_ended(self, run_id: str, state: str) -> None:
        """The shown run ended (`state`, its final state): the header says so instead of "following"."""
        if run_id == self.run_id and self.ended != state:
            self.ended = state
            self._show_header()

    def _show(self, rows: list[Row], run_id: str | None, reader: Reader | None, title: str | None,
              ended: str | None) -> None:
        self.reader = reader
        self.ended = ended
        self.floor = max((row[ID] for row in rows if row[ID] is not None), default=0)
        later = [row for row in self.rows if row[RUN] == run_id and row[ID] is not None and row[ID] > self.floor]
        self.run_id = run_id
        self.title = title or run_id
        self.task_run_id = self.task_name = self.task_label = None
        self.rows.clear()
        self.rows.extend(rows)
        self.rows.extend(later)
        if later:
            self.floor = max(row[ID] for row in later)
        self._refill()

    def add(self, lines: list[Line]) -> None:
        """New lines from the bridge: kept, and written if they match what is shown.

        A batch holds several workers' reports one after the other: in time order, a task's line
        comes after the lines of the tasks it waited for."""
        rows = sorted((line.row() for line in lines if line.line.id is None or line.run_id != self.run_id
                       or line.line.id > self.floor), key=lambda row: row[TIME])
        self.rows.extend(rows)
        matching = [self._shown(row) for row in rows if self._matches(row)]
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

    def _matches(self, row: Row) -> bool:
        if row[RUN] != self.run_id or row[LEVEL] < self.level:
            return False
        if self.task_run_id is not None and row[TASK_RUN] != self.task_run_id:
            return False
        if self.task_name is not None and row[TASK] != self.task_name:
            return False
        return not self.search or self.search.lower() in row[MESSAGE].lower()

    def _width(self) -> int:
        return self.output.scrollable_content_region.width

    def _shown(self, row: Row) -> str:
        text = _text(row[SOURCE], row[TIME], row[LEVEL], row[MESSAGE])
        return wrapped(text, self._wrapped_at) if self.wrap else text

    def on_resize(self, event: Any) -> None:
        if self.wrap and self._width() != self._wrapped_at:
            self._refill()

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap
        self._refill()

    def _refill(self) -> None:
        self._wrapped_at = self._width()
        if self.reader is not None and not self._all_kept_match():
            # A big past run: the lines that match are read from the store, off the UI's thread (a search
            # through 100,000 lines takes a tenth of a second); what the pane showed goes at once.
            self.output.clear()
            self._show_header()
            self._read_matching(self._wanted())
            return
        shown = []  # the last SHOWN_LINES that match, formatted: a big run's 100,000 lines are not all
        for row in reversed(self.rows):
            if self._matches(row):
                shown.append(self._shown(row))
                if len(shown) == SHOWN_LINES:
                    break
        shown.reverse()
        self.output.clear()
        if shown:
            self.output.write_lines(shown, scroll_end=self.follow)
        self._show_header()

    def _wanted(self) -> tuple:
        return self.reader, self.run_id, self.task_run_id, self.task_name, self.level, self.search

    @work(thread=True, exclusive=True, group="log-lines", exit_on_error=False)
    def _read_matching(self, wanted: tuple) -> None:
        reader, _, task_run_id, task, level, search = wanted
        rows = reader(task_run_id, task, level, search, SHOWN_LINES)
        self.app.call_from_thread(self._show_matching, wanted, rows)

    def _show_matching(self, wanted: tuple, rows: list[Row]) -> None:
        if wanted != self._wanted():
            return  # the filter changed meanwhile: its own read follows
        shown = [self._shown(row) for row in rows]
        self.output.clear()
        if shown:
            self.output.write_lines(shown, scroll_end=self.follow)

    def _all_kept_match(self) -> bool:
        """No filter leaves out any of the shown run's lines kept (the last that the pane shows)."""
        if self.task_run_id is not None or self.task_name is not None or self.search:
            return False
        return all(row[LEVEL] >= self.level for row in self.rows if row[RUN] == self.run_id)

    def _show_header(self) -> None:
        # Short words: the whole header fits in the logs pane at 100 columns.
        parts = ["no run" if self.run_id is None else f"{self.title}"]
        parts.append("all tasks" if self.task_run_id is None and self.task_name is None else
                     f"task {self.task_label or self.task_name or self._source_of(self.task_run_id)}")
        parts.append(f"≥ {logging.getLevelName(self.level)}")
        if self.search:
            parts.append(f"search {self.search!r}")
        if self.ended is not None:
            parts.append(f"run ended {self.ended}")
        else:
            parts.append("following" if self.follow else "paused (f follows)")
        if not self.wrap:
            parts.append("no wrap")
        self.query_one("#log-header", Static).update(plain(" · ".join(parts), one_line=True))

    def _source_of(self, task_run_id: str | None) -> str:
        for row in reversed(self.rows):
            if row[TASK_RUN] == task_run_id:
                return row[SOURCE]
        return task_run_id or ""
