"""What goes wrong with a store, in words a user can act on."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from pathlib import Path

from flows_tui.errors import FlowsTuiError


class StoreError(FlowsTuiError):
    """The run store cannot be opened or written (a read-only state_dir, a full disk, a newer schema)."""


class StoreNotWritable(StoreError):
    """The state_dir or its run store cannot be written: read-only, no permission, no space left."""

    def __init__(self, message: str, *, sqlite: str | None = None) -> None:
        super().__init__(message)
        self.sqlite = sqlite  # SQLite's own words, when it said it


# What SQLite says when the file system, not the data, is at fault (names from Python 3.11's
# `sqlite_errorname`; the message text for Python 3.10).
_UNWRITABLE_CODES = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_PERM")
_UNWRITABLE_TEXT = ("readonly", "unable to open", "disk is full", "disk i/o error", "access permission denied")


def unwritable(error: BaseException) -> bool:
    name = getattr(error, "sqlite_errorname", None)
    if name:
        return name.startswith(_UNWRITABLE_CODES)
    return any(text in str(error).lower() for text in _UNWRITABLE_TEXT)



def os_reason(path: Path) -> str | None:
    """Why the OS refuses to write the store at `path`, found by trying (SQLite only says "unable to open")."""
    try:
        if path.is_file():
            with open(path, "r+b"):
                pass
        if path.parent.is_dir():
            probe = path.parent / f".write-check-{os.getpid()}-{threading.get_ident()}"
            probe.touch()
            probe.unlink()
    except OSError as error:
        return error.strerror or str(error)
    return space_reason(path)


def space_reason(path: Path) -> str | None:
    """A full disk, or the process's file size limit reached (ulimit -f): what SQLite calls a disk I/O error."""
    sizes = []
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            sizes.append(os.stat(f"{path}{suffix}").st_size)
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and sizes and max(sizes) + 65536 >= limit:
            return f"the file size limit (ulimit -f) of {limit} bytes is reached"
    except (ImportError, OSError, ValueError):
        pass
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return None
    return f"no space left on the device ({free} bytes free)" if free < 1 << 20 else None
