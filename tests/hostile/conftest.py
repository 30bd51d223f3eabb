"""Hostile input: a corpus of strings a task may read from a file or the network, and a
terminal to show them on (a real pty), to check that nothing in them drives the terminal.

The corpus goes everywhere user text goes: flow and task names, log lines, prints,
exception messages, parameter values, flow file names. What must never reach the
terminal from it: an OSC sequence (window title, clipboard, hyperlink), BEL, a
screen-clearing CSI, a C1 control; and `[/]` must never be taken for markup.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

ESC, BEL = "\x1b", "\x07"
OSC_TITLE = f"{ESC}]0;PWNED-TITLE{BEL}"
OSC_CLIPBOARD = f"{ESC}]52;c;UFdORUQ={BEL}"
OSC_LINK = f"{ESC}]8;;https://evil.example/{ESC}\\link{ESC}]8;;{ESC}\\"
CLEAR_SCREEN = f"{ESC}[2J{ESC}[H"
C1_CSI = "\x9b2J"
LONE_SURROGATE = "\udce9"  # what os.listdir gives for a latin-1 "é" in a file name
BIDI = "\u202e"
EVIL = (f"title{OSC_TITLE} clip{OSC_CLIPBOARD} link{OSC_LINK} clear{CLEAR_SCREEN} bell{BEL} c1{C1_CSI} "
        f"markup bad[/]name [red]x[/red] [link=https://evil.example/]y[/link] lone{LONE_SURROGATE} bidi{BIDI}")

# Bytes that only user data could have put there: our own output styles text (SGR) and
# moves the cursor of a live display, and never sets a title, the clipboard, a link, or
# clears the screen.
FORBIDDEN = {
    "OSC": b"\x1b]",
    "BEL": b"\x07",
    "CSI 2J": b"\x1b[2J",
    "DCS": b"\x1bP",
    "C1 CSI": "\x9b".encode(),
    "C1 OSC": "\x9d".encode(),
}

# A flow file whose every name, line and error carries the corpus (`{evil!r}` is ASCII source).
HOSTILE_FLOW = f'''
import logging
import warnings

from flows_tui import flow, get_run_logger, task

EVIL = {EVIL!r}


@task(name="bad[/]task" + {OSC_TITLE!r})
def shout(text):
    get_run_logger().warning("log " + EVIL)
    print("print " + EVIL)
    logging.getLogger("some.library").error("library " + EVIL)
    warnings.warn("warning " + EVIL)
    raise ValueError("error " + EVIL + text)


@flow(name="flow[bold]name" + {OSC_TITLE!r}, log_prints=True)
def hostile(text: str = "[red]default" + {CLEAR_SCREEN!r}):
    get_run_logger().info("body " + EVIL)
    print("body print " + EVIL)
    shout(text)
'''

# A flow file that does not import, under a name that carries escapes, raising the corpus.
BROKEN_NAME = f"broken{ESC}]0;FILE-TITLE{BEL}[red].py"
BROKEN_FLOW = f"raise RuntimeError({EVIL!r})\n"
LATIN1_NAME = os.fsdecode(b"caf\xe9.py")  # a latin-1 file name: a lone surrogate in Python


def leaks(output: bytes) -> dict[str, int]:
    """The forbidden sequences in `output`, with how often each occurs."""
    return {name: output.count(sequence) for name, sequence in FORBIDDEN.items() if sequence in output}


@dataclass
class Terminal:
    """What a command wrote to its terminal, and how it ended."""

    output: bytes
    returncode: int
    seconds: float

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


_AS_A_SHELL_STARTS_IT = ("import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                         "os.execv(sys.executable, [sys.executable, '-m', 'flows_tui.cli', *sys.argv[1:]])")


class Session:
    """`flows-tui ARGS` on a real pseudo-terminal, as a user has it: keys in, bytes out.

    Every wait has a deadline; past it the process is killed and the test fails.
    """

    def __init__(self, *args: str, cwd: Path, env: dict | None = None, columns: int = 200, rows: int = 50) -> None:
        self.args = args
        environment = {k: v for k, v in os.environ.items() if k not in ("DASK_SCHEDULER_ADDRESS", "CI", "NO_COLOR")}
        environment.update({"TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(rows), **(env or {})})
        self.controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.started = time.monotonic()
        # In a session of its own with the pty as its controlling terminal, as a shell starts it:
        # closing the terminal sends it SIGHUP.
        self.process = subprocess.Popen([sys.executable, "-c", _AS_A_SHELL_STARTS_IT, *args], cwd=cwd, env=environment,
                                        stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True)
        os.close(terminal)
        self.output = bytearray()
        self.closed = False

    def _read(self, seconds: float) -> None:
        if self.closed:
            return
        ready, _, _ = select.select([self.controller], [], [], seconds)
        if ready:
            try:
                chunk = os.read(self.controller, 65536)
            except OSError:  # EIO: every end of the terminal closed, the command is gone
                chunk = b""
            if chunk:
                self.output.extend(chunk)
            else:
                self.closed = True

    def expect(self, wanted: bytes, deadline: float = 30.0) -> None:
        """Read until `wanted` was written (after what was read so far counts too)."""
        end = time.monotonic() + deadline
        while wanted not in self.output:
            if self.closed or time.monotonic() > end:
                self.kill()
                raise AssertionError(f"flows-tui {' '.join(self.args)} did not show {wanted!r} within "
                                     f"{deadline:g}s; it wrote: {bytes(self.output)[-2000:]!r}")
            self._read(min(0.2, max(0.0, end - time.monotonic())))

    def send(self, keys: str) -> None:
        os.write(self.controller, keys.encode())

    def wait(self, deadline: float = 60.0) -> Terminal:
        """Read until the command exits; kill it and fail past `deadline`."""
        end = time.monotonic() + deadline
        while True:
            if time.monotonic() > end:
                self.kill()
                raise AssertionError(f"flows-tui {' '.join(self.args)} did not finish within {deadline:g}s; "
                                     f"it wrote: {bytes(self.output)[-2000:]!r}")
            self._read(0.2)
            if self.closed or (self.process.poll() is not None and not select.select([self.controller], [], [], 0.2)[0]):
                break
        os.close(self.controller)
        returncode = self.process.wait(10)
        return Terminal(bytes(self.output), returncode, time.monotonic() - self.started)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def in_terminal(*args: str, cwd: Path, env: dict | None = None, deadline: float = 60.0) -> Terminal:
    """Run `flows-tui ARGS` on a real pseudo-terminal until it exits (at most `deadline` seconds)."""
    return Session(*args, cwd=cwd, env=env).wait(deadline)
