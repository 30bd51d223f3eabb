"""Worker processes of the embedded cluster leave Ctrl-C to flows-tui: a Dask worker plugin.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group, and the embedded
cluster's worker processes are in it. Each one died of it (a KeyboardInterrupt traceback on
the terminal) while flows-tui was cancelling the run, so the run could end Crashed (its
workers lost) rather than Cancelled. flows-tui handles the signal, cancels the run and
closes the cluster; the workers ignore it.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


class LeaveCtrlCToParent(WorkerPlugin):
    idempotent = True

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # a worker of a thread cluster shares flows-tui's own process: its signals stay
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except (ValueError, OSError):
            pass
