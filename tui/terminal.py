"""Leaving the UI for the terminal a moment: a task run under the debugger, a file in the editor.

Both suspend the app (`App.suspend()`: the terminal is given back as it was before the UI
started), run in the foreground, and resume where the UI was.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from flows_tui.safe_text import visible

# Editors that open FILE at LINE with `+LINE FILE`.
PLUS_LINE = {"vi", "vim", "nvim", "gvim", "view", "nano", "pico", "emacs", "emacsclient", "micro", "joe", "jed",
             "ne", "mcedit", "kak", "ed", "ex", "vis", "mg"}
# With `--goto FILE:LINE` (VS Code and its kin).
GOTO = {"code", "code-insiders", "codium", "vscodium", "cursor", "windsurf"}
# With `FILE:LINE`.
COLON = {"subl", "hx", "helix", "zed", "mate"}

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)', re.MULTILINE)


def editor_command(path: str, line: int | None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """`$VISUAL`, else `$EDITOR`, else vi, with the arguments that open `path` at `line`."""
    words = shlex.split(environ.get("VISUAL") or environ.get("EDITOR") or "vi")
    name = Path(words[0]).name
    if line is None:
        return [*words, path]
    if name in GOTO:
        return [*words, "--goto", f"{path}:{line}"]
    if name in COLON:
        return [*words, f"{path}:{line}"]
    if name in PLUS_LINE:
        return [*words, f"+{line}", path]
    return [*words, path]  # an editor we do not know: the file, at least


def frames_of(traceback: str, root: Path) -> list[tuple[str, int]]:
    """(file, line) of every frame of `traceback` whose file exists, resolved against `root`."""
    found = []
    for match in _FRAME.finditer(traceback or ""):
        path = Path(match["path"])
        if not path.is_absolute():
            path = root / path
        if path.is_file():
            found.append((str(path), int(match["line"])))
    return found


def edit(app: Any, path: str, line: int | None) -> str | None:
    """Open `path` at `line` in the user's editor, the UI suspended; returns a problem to tell, or None."""
    command = editor_command(path, line)
    try:
        with app.suspend():
            completed = subprocess.run(command)
    except FileNotFoundError:
        return f"editor {visible(command[0], one_line=True)!r} not found: set $VISUAL or $EDITOR"
    except Exception as error:  # SuspendNotSupported (Textual Web), an editor that cannot start
        return f"could not open the editor: {visible(error)}"
    if completed.returncode != 0:
        return f"the editor exited with status {completed.returncode}"
    return None


def debug_here(app: Any, reached: Any, lines: list[str], log_level: int) -> str | None:
    """Run a reached task run in the terminal under the debugger, the UI suspended; then back."""
    from flows_tui.launch.debug import run_under_debugger

    try:
        with app.suspend():
            out = sys.stderr
            for line in lines:
                out.write(line + "\n")
            try:
                run_under_debugger(reached, out=out, log_level=log_level)
            except KeyboardInterrupt:
                out.write("interrupted\n")
            out.write("press enter to go back to flows-tui ")
            out.flush()
            try:
                sys.stdin.readline()
            except (OSError, ValueError):  # no terminal to read from
                pass
    except Exception as error:  # SuspendNotSupported
        return f"could not leave the UI for the debugger: {visible(error)}"
    return None


def where_to_edit(app: Any) -> tuple[str, int | None] | list[tuple[str, int]] | str:
    """The file and line `e` opens, from what is on screen; or why there is none.

    A traceback screen: its frames in files that exist, innermost first, when there are several
    (the user picks one), else the one. The
    tasks pane: the failed attempt's. The flows pane: a broken file's error line, or a flow's
    definition.
    """
    from flows_tui.project.flow_files import definition_line

    from .flow_list import FlowList
    from .screens import TextScreen
    from .task_tree import TaskTree

    roots = [Path.cwd(), app.flows_dir, app.flows_dir.parent]

    def innermost(traceback: str | None) -> tuple[str, int] | None:
        for root in roots:
            frames = frames_of(traceback or "", root)
            if frames:
                return frames[-1]
        return None

    screen = app.screen
    if isinstance(screen, TextScreen):
        if screen.location is not None:
            return screen.location
        frames = next((found for found in (frames_of(screen.body, root) for root in roots) if found), [])
        if len(frames) > 1:
            return list(reversed(frames))  # the caller asks which one
        return frames[0] if frames else "no file of yours in this text"
    focused = app.focused
    if isinstance(focused, TaskTree):
        attempt = focused.selected_attempt()
        if attempt is None or not attempt.traceback:
            return "put the cursor on a failed attempt (e opens its failing line)"
        return innermost(attempt.traceback) or "this traceback names no file of yours"
    if isinstance(focused, FlowList):
        row = focused.current()
        if row is None:
            return "no flow selected"
        if row.error is not None:
            return row.error.path, getattr(row.error, "line", None)
        if row.flow is not None and row.flow.file:
            return row.flow.file, definition_line(row.flow)
    return "e opens the editor on a failed attempt (tasks), a broken file or a flow (flows), or a traceback"
