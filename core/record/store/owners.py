"""Which process owns a run, and whether it still runs: how a run in flight is found orphaned."""

from __future__ import annotations

import os
import socket
import sys
from typing import NamedTuple


class Owner(NamedTuple):
    """The process recording a run: its host, pid, when it started (a reused pid starts later), and
    the command it runs, as a user would recognise it ("flows-tui serve", "python etl.py")."""

    host: str
    pid: int
    started: float | None
    command: str | None = None

    @classmethod
    def this_process(cls) -> "Owner":
        return cls(socket.gethostname(), os.getpid(), process_started(os.getpid()), command_line())


def command_line(limit: int = 200) -> str:
    """This process's command: `flows-tui ...` for ours however started, else the interpreter's argv."""
    argv = list(sys.argv) or ["python"]
    program = os.path.basename(argv[0])
    if program in ("flows-tui", "__main__.py") or argv[0].endswith(os.path.join("flows_tui", "cli")):
        words = ["flows-tui", *argv[1:]]
    elif program.endswith(".py") or not program:
        words = ["python", *argv]
    else:
        words = [program, *argv[1:]]
    text = " ".join(words)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def process_started(pid: int) -> float | None:
    import psutil  # a dependency of distributed

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def owner_alive(host: str | None, pid: int | None, started: float | None) -> bool:
    """Is the process that owns a run still running? Runs of other hosts are assumed alive."""
    if host != socket.gethostname():
        return True
    if pid is None:
        return False
    created = process_started(pid)
    if created is None:
        return False
    # A reused pid belongs to a process started later than the owner.
    return started is None or abs(created - started) < 1.0
