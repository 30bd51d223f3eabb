"""The terminal driver: Textual's own, with output that outlives the terminal.

When the terminal goes away (the SSH session drops, the window closes), a write to it fails
with EIO. Textual's writer thread does not catch that: it ends, its queue of frames fills
(30 of them) and the next frame the app draws, or the stop that ends the app, waits on that
queue for ever. SIGHUP then never ends the UI. Here a failed write marks the terminal gone
and every later write goes nowhere, so the UI ends as `q` ends it: runs cancelled and
recorded, worker processes stopped.
"""

from __future__ import annotations

from typing import IO, Any


class TerminalOutput:
    """A text file (the terminal) whose writes, once one fails, go nowhere instead of raising."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._file.write(text)
            except (OSError, ValueError):  # EIO: the terminal hung up; ValueError: the file closed
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._file.flush()
            except (OSError, ValueError):
                self.gone = True

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding: the terminal's own
        return getattr(self._file, name)


def driver_class() -> type | None:
    """Textual's driver for this terminal with its output kept alive; None where Textual's own
    choice stands (Windows, or a driver named in TEXTUAL_DRIVER)."""
    import sys

    from textual import constants

    if sys.platform == "win32" or constants.DRIVER is not None:
        return None
    from textual.drivers.linux_driver import LinuxDriver

    from . import first_frame

    class Driver(LinuxDriver):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._file = TerminalOutput(self._file)
            # The first frame (tui/first_frame.py) is already in the alternate screen: entering it again
            # would save the cursor a second time, and the shell's would be lost when the UI exits.
            self._left_out = first_frame.taken()

        def write(self, data: str) -> None:
            if self._left_out is not None and self._left_out(data):
                self._left_out = None
                return
            super().write(data)

    return Driver
