"""Which attempts a worker process was running, readable after the process died.

An attempt's start travels to the engine in the worker's next batch of reports (within
50 ms). A worker that dies before that batch leaves (a task that ends its process at its
first instruction) took the start with it: Dask runs the task again elsewhere, and that
execution would be missing from the record. So each worker process also writes the start of
every attempt it runs into a small file of its own, one fixed slot per thread, cleared when
the attempt ends: when Dask says the worker is gone, the engine reads the starts still there
and records them as Crashed attempts. One `pwrite` per attempt start and end.

The engine finds the file by the worker's address when the worker is on its machine (a
LocalCluster, the common case). A worker elsewhere has a nanny on its own machine, which
reads the file when the worker process ends and sends the starts on (`nanny_ledger`). For a
worker elsewhere without a nanny, the scheduler tells which of its tasks could have been
running (`scheduler_deaths`), unless the file here is that very process's (its pid, slot 0).
A process that wrote one clears away, as it exits, those of processes gone, untouched for 10
minutes (`sweep`).
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SLOT = 512  # bytes per thread's slot; a start that does not fit is not written (rare: a long worker name)
STALE_SECONDS = 600.0  # a file of a gone process, untouched this long, has served (see `sweep`)
SWEEP_AT_MOST = 200  # files removed by one process's exit

_lock = threading.Lock()
_fd: int | None = None
_fd_for: str | None = None  # the address the open file is for
_slots = threading.local()
_next_slot = 1  # slot 0: the process's pid


def ledger_path(address: str) -> Path:
    folder = Path(tempfile.gettempdir()) / f"flows-tui-attempts-{os.getuid() if hasattr(os, 'getuid') else 0}"
    name = "".join(c if c.isalnum() else "_" for c in address)
    return folder / name


def _open(address: str) -> int | None:
    """This process's file (created empty, for a fresh process at an address another one had)."""
    global _fd, _fd_for
    with _lock:
        if _fd_for != address:
            path = ledger_path(address)
            try:
                path.parent.mkdir(mode=0o700, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            except OSError:
                return None
            try:  # the first slot says whose file it is: not the dead worker's when an earlier
                # process at the same address left it (see `written_by`)
                os.pwrite(fd, json.dumps({"pid": os.getpid()}).encode().ljust(SLOT, b"\0"), 0)
            except OSError:
                pass
            if _fd is None:  # this process's first file: as it exits, it clears away those of processes long gone
                atexit.register(_sweep_at_exit, path)
            else:
                os.close(_fd)
            _fd, _fd_for = fd, address
        return _fd


def _sweep_at_exit(own: Path) -> None:
    try:
        sweep(own.parent, keep=own)
    except Exception:  # noqa: BLE001 - never in the way of a process's exit
        pass


def sweep(folder: Path, older_than: float = STALE_SECONDS, limit: int = SWEEP_AT_MOST, keep: Path | None = None) -> int:
    """Remove up to `limit` files in `folder` untouched for `older_than` seconds whose process is gone
    (or unknown), never `keep`; how many. Each served its engine, or its nanny, when its worker
    died: a file is left behind by every worker process that ends (its own is kept as it exits
    normally: a nanny or an engine may still read it), one a worker of every run. Done at exit,
    off any task's way, and bounded, so an exit takes milliseconds even with thousands left."""
    cutoff = time.time() - older_than
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if removed >= limit:
            break
        try:
            if (keep is not None and entry.name == keep.name) or entry.stat().st_mtime > cutoff \
                    or _alive(_pid_in(entry.path)):
                continue
            os.unlink(entry.path)
            removed += 1
        except OSError:
            continue
    return removed


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process holds that pid now: not gone
        return True
    return True


def _slot() -> int:
    global _next_slot
    slot = getattr(_slots, "index", None)
    if slot is None:
        with _lock:
            slot = _slots.index = _next_slot
            _next_slot += 1
    return slot


def started(address: str | None, topic: str, start: dict[str, Any]) -> bool:
    """Write an attempt's start (its wire form, on `topic`) in this thread's slot; whether it was."""
    if address is None:
        return False
    data = json.dumps({"topic": topic, "start": start}).encode()
    if len(data) >= SLOT:
        return False
    fd = _open(address)
    if fd is None:
        return False
    try:
        os.pwrite(fd, data.ljust(SLOT, b"\0"), _slot() * SLOT)
    except OSError:
        return False
    return True


def ended() -> None:
    """This thread's attempt ended (or retries): its slot is empty again."""
    fd, slot = _fd, getattr(_slots, "index", None)
    if fd is None or slot is None:
        return
    try:
        os.pwrite(fd, b"\0", slot * SLOT)
    except OSError:
        pass


def open_starts(address: str, topic: str) -> list[dict[str, Any]]:
    """The starts of `topic` still in the file of the worker that was at `address`."""
    return every_open_start(address).get(topic, [])


def written_by(address: str) -> int | None:
    """The pid of the process that wrote the file at `address`'s name, if there is one here."""
    return _pid_in(ledger_path(address))


def _pid_in(path: Any) -> int | None:
    try:
        with open(path, "rb") as file:
            head = json.loads(file.read(SLOT).rstrip(b"\0"))
    except (OSError, ValueError):
        return None
    pid = head.get("pid") if isinstance(head, dict) else None
    return pid if isinstance(pid, int) else None


def every_open_start(address: str) -> dict[str, list[dict[str, Any]]]:
    """Per topic, the starts still in the file of the worker that was at `address`."""
    try:
        data = ledger_path(address).read_bytes()
    except OSError:
        return {}
    starts: dict[str, list[dict[str, Any]]] = {}
    for offset in range(0, len(data), SLOT):
        chunk = data[offset:offset + SLOT].rstrip(b"\0")
        if not chunk or chunk[:1] == b"\0":
            continue
        try:
            entry = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("topic"), str) and isinstance(entry.get("start"), dict):
            starts.setdefault(entry["topic"], []).append(entry["start"])
    return starts


def remove(address: str) -> None:
    """The file of the worker that was at `address`, once its starts were sent on (by its nanny)."""
    try:
        ledger_path(address).unlink()
    except OSError:
        pass
