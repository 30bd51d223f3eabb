"""The UI's first frame, drawn before Textual loads.

Textual takes ~0.5 s to import and paint its first frame (an empty app on a 2-core machine);
over SSH that is half a second of the old shell screen and no sign of life. This module, which
imports nothing of Textual's, draws at once the panes as the UI lays them out, with the flows'
names read from their files' syntax trees (as the UI lists them before their import), in the
terminal's alternate screen. Textual's driver then takes over that screen (tui/driver.py does
not enter it a second time, which would save the cursor again and lose the shell's) and paints
over every cell.

While the frame is up, keys typed are not echoed onto it (Ctrl-C still interrupts); the
terminal's own settings are back before Textual reads them, so Textual restores them on exit.
On every other way out (an error, Ctrl-C, SIGTERM or SIGHUP before Textual started) `undo()`
gives the terminal back as it was.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

from flows_tui.safe_text import visible

LISTING_BUDGET = 0.15  # seconds to read the flows' names from their source; more: "loading…" only
ENTER = "\x1b[?1049h\x1b[?25l\x1b[H"  # the alternate screen (which entering clears), the cursor hidden
LEAVE = "\x1b[?25h\x1b[?1049l"  # the cursor shown, the shell's screen and cursor back
ROUND = "╭╮╰╯─│"
ASCII = "++++-|"


def wanted(environ: Any = os.environ) -> bool:
    """A first frame only on a terminal that Textual will draw on (both ends a tty, a TERM that
    knows cursor addressing), and unless FLOWS_TUI_FIRST_FRAME=0."""
    if environ.get("FLOWS_TUI_FIRST_FRAME", "1") == "0" or environ.get("TERM", "") in ("", "dumb"):
        return False
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _names(flows_dir: Path, budget: float) -> list[str] | None:
    """The flows' names from their source, sorted as the flows pane sorts them; None past the budget."""
    from flows_tui.project.flow_paths import flow_files, flow_names_in_source

    deadline = time.monotonic() + budget
    names: list[str] = []
    try:
        files = flow_files(flows_dir) if flows_dir.is_dir() else ([flows_dir] if flows_dir.is_file() else [])
        for path in files:
            if time.monotonic() > deadline:
                return None
            names.extend(flow_names_in_source(path))
    except (OSError, ValueError, RecursionError):
        return None
    return sorted(names, key=str.lower)


def _box(title: str, rows: list[str], width: int, height: int, subtitle: str, glyphs: str) -> list[str]:
    """A pane: a rounded border `width` x `height`, `title` on its top edge, `subtitle` at the right of
    its bottom edge, `rows` inside (cut to fit)."""
    tl, tr, bl, br, h, v = glyphs
    inner = width - 2
    if inner < 1 or height < 2:
        return [" " * width] * max(height, 0)
    top = f"{h} {title} " if title and inner > len(title) + 3 else ""
    top = tl + (top + h * inner)[:inner] + tr
    sub = f" {subtitle} {h}" if subtitle and inner > len(subtitle) + 3 else ""
    bottom = bl + (h * inner + sub)[-inner:] + br
    lines = [top]
    for index in range(height - 2):
        text = rows[index] if index < len(rows) else ""
        lines.append(v + (" " + text)[:inner].ljust(inner) + v)
    lines.append(bottom)
    return lines


def compose(flows_dir: Path, names: list[str] | None, width: int, height: int, *, unicode: bool = True) -> list[str]:
    """The frame's lines (each exactly `width` wide): the UI's four panes as tui/app.tcss lays them out
    (the left column 36% of the width, 30 to 60 columns; flows and tasks 3 fifths of the height above
    runs and logs), the flows pane listing `names`, a status line saying the UI is starting."""
    glyphs = ROUND if unicode else ASCII
    body = max(height - 2, 0)  # the status bar and the footer below
    left = min(max(int(width * 0.36), 30), 60, width)
    right = width - left
    top = body * 3 // 5
    bottom = body - top
    title = visible(f"flows · {flows_dir.name}", one_line=True)
    listed = ["flow"] + [visible(name, one_line=True) for name in names] if names else []
    flows = _box(title, listed, left, top, "loading…" if unicode else "loading...", glyphs)
    tasks = _box("tasks", [], right, top, "", glyphs)
    runs = _box("runs", [], left, bottom, "", glyphs)
    logs = _box("logs", [], right, bottom, "", glyphs)
    lines = [a + b for a, b in zip(flows, tasks)] + [a + b for a, b in zip(runs, logs)]
    lines.append((" flows-tui is starting" + ("…" if unicode else "...")).ljust(width)[:width])
    lines.append(" " * width)
    return [line[:width].ljust(width) for line in lines[:height]]


class FirstFrame:
    """The frame on the terminal until Textual takes the screen over (`hand_over`), or is given back
    (`undo`)."""

    def __init__(self, out: Any, fd: int | None, attrs: Any) -> None:
        self._out = out
        self._fd = fd
        self._attrs = attrs  # the terminal's settings before the frame (None: not a termios terminal)
        self._signals: dict[int, Any] = {}
        self.on_screen = True  # the alternate screen is ours until Textual's driver takes it (taken())
        self.taken = False

    def hand_over(self) -> None:
        """Just before Textual starts: the terminal's own settings back (Textual saves them, and
        restores them as it exits), the signals' handlers back (the UI installs its own)."""
        self._restore_settings()
        for signum, handler in self._signals.items():
            try:
                signal.signal(signum, handler)
            except (OSError, ValueError):
                pass
        self._signals.clear()

    def undo(self) -> None:
        """The terminal as it was: the frame gone, the shell's screen and cursor back, echo on. Nothing
        once Textual has taken the screen (its own exit gives it back)."""
        self.hand_over()
        if self.on_screen and not self.taken:
            self.on_screen = False
            try:
                self._out.write(LEAVE)
                self._out.flush()
            except (OSError, ValueError):
                pass

    def _restore_settings(self) -> None:
        if self._attrs is not None:
            import termios

            try:
                termios.tcsetattr(self._fd, termios.TCSANOW, self._attrs)
            except (termios.error, OSError, ValueError):
                pass
            self._attrs = None

    def _until_textual(self, signum: int, frame: Any) -> None:
        """SIGTERM or SIGHUP before the UI started: the terminal given back, and the exit a signal makes."""
        self.undo()
        os._exit(128 + signum)


CURRENT: FirstFrame | None = None  # the frame on screen, for the driver taking it over


def draw(flows_dir: Path, *, out: Any = None, environ: Any = os.environ) -> FirstFrame | None:
    """Draw the first frame on the terminal (None where there is none to draw on, see `wanted`)."""
    global CURRENT
    if not wanted(environ):
        return None
    out = out or sys.stdout
    try:
        size = os.get_terminal_size(out.fileno())
    except (OSError, ValueError):
        return None
    encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "")
    names = _names(flows_dir, LISTING_BUDGET)
    lines = compose(flows_dir, names, size.columns, size.lines, unicode=encoding.startswith("utf"))
    attrs = _quiet(out.fileno())  # the terminal's settings (stdin's: both ends are the same terminal)
    frame = FirstFrame(out, out.fileno(), attrs)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        try:
            frame._signals[signum] = signal.signal(signum, frame._until_textual)
        except (OSError, ValueError):  # not the main thread
            pass
    try:
        out.write(ENTER + "\r\n".join(lines) + "\x1b[H")
        out.flush()
    except (OSError, ValueError, UnicodeError):
        frame.undo()
        return None
    CURRENT = frame
    return frame


def _quiet(fd: int) -> Any:
    """Keys typed while the frame is up are not echoed onto it (they stay queued for the UI); Ctrl-C
    still interrupts. Returns the settings to restore (None: not a terminal termios knows)."""
    try:
        import termios
    except ImportError:
        return None
    try:
        attrs = termios.tcgetattr(fd)
        quiet = list(attrs)
        quiet[3] = quiet[3] & ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except (termios.error, OSError, ValueError):
        return None
    return attrs


def taken() -> Callable[[str], bool] | None:
    """For the driver: a test of what it writes, true for the one write it must leave out (entering
    the alternate screen the frame is already in); None when there is no frame."""
    frame = CURRENT
    if frame is None or not frame.on_screen:
        return None

    def entering(text: str) -> bool:
        if not frame.taken and text == "\x1b[?1049h":
            frame.taken = True
            return True
        return False

    return entering
