"""Which process owns a run, and whether it still runs: how a run in flight is found orphaned."""

from __future__ import annotations

import os
import socket
from typing import NamedTuple


class Owner(NamedTuple):
    """The process recording a run: its host, pid, and when it started (a reused pid starts later)."""

    host: str
    pid: int
    started: float | None

    @classmethod
    def this_process(cls) -> "Owner":
        return cls(socket.gethostname(), os.getpid(), process_started(os.getpid()))


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
