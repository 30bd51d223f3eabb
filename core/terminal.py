"""The terminal a command writes to, once it is gone."""

from __future__ import annotations

import contextlib
import os
import stat


def silence_terminal() -> None:
    """Stdout and stderr to /dev/null where they were a terminal: after SIGHUP (the terminal or SSH
    session closed) every write to it fails, and the last words of a command have nowhere to go.
    A hung-up terminal no longer says it is a tty, so character devices are what is looked for."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                if stat.S_ISCHR(os.fstat(fd).st_mode):
                    os.dup2(null, fd)
        os.close(null)


def silence_stderr() -> None:
    """Stderr to /dev/null from here on: what other threads still write as the process ends is not the user's."""
    with contextlib.suppress(OSError):
        import sys

        sys.stderr.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)


def exit_now(status: int) -> None:
    """End the process with `status` now, once what it owes is recorded and written.

    A task that goes on after its run was cancelled (an endless loop, a C call) keeps a thread
    of the embedded cluster that the interpreter would join at exit, forever: the process ends
    without waiting for it, and stops the worker processes it started.
    """
    import multiprocessing
    import sys

    for child in multiprocessing.active_children():
        child.terminate()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)
