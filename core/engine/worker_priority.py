"""Worker processes that yield the CPU to the UI: a Dask worker plugin lowering their priority.

Imported by `cluster` only when the UI starts an embedded cluster, and by each worker
process when the scheduler hands it the plugin.
"""

from __future__ import annotations

import os
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


def niceness() -> int:
    """This process's nice value (0 where there is none, as on Windows)."""
    try:
        return os.getpriority(os.PRIO_PROCESS, 0)
    except (AttributeError, OSError):
        return 0


class YieldToUI(WorkerPlugin):
    """Lowers its worker process's CPU priority to `niceness` (never raises it back).

    Every thread of the process is set: on Linux a nice value belongs to a thread, and threads
    started later inherit it from the thread that starts them.
    """

    idempotent = True

    def __init__(self, niceness: int) -> None:
        self.niceness = min(19, niceness)

    def setup(self, worker: Any) -> None:
        if not hasattr(os, "setpriority"):
            return
        try:
            threads = [int(tid) for tid in os.listdir("/proc/self/task")]
        except OSError:  # no /proc (macOS): there the value is the whole process's
            threads = [0]
        for thread in threads:
            try:
                if os.getpriority(os.PRIO_PROCESS, thread) < self.niceness:
                    os.setpriority(os.PRIO_PROCESS, thread, self.niceness)
            except OSError:  # a thread that ended meanwhile
                pass
