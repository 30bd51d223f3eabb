"""Watch-run: run one flow again after every save that changes it, one run at a time.

Shared by `flows-tui run FLOW --watch` and the TUI's `w`. A save of the flow's file, or of
a helper module it imports, reloads the file (`FlowsDirectory`) and names the flow in
`FlowsReloaded.flows_changed`; that asks for a run. Saves that arrive while a run is in
progress are coalesced into one run after it, on the newest code. The caller's `run`
gives each run the session, so tasks whose code and inputs did not change are reused.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from flows_tui.flows import Flow
from flows_tui.project.flows_directory import FlowsDirectory, FlowsReloaded

log = logging.getLogger("flows_tui.watch_run")


class WatchRun:
    """Runs flow `flow_name` of `directory` through `run(flow)` now (optionally) and after each change."""

    def __init__(self, directory: FlowsDirectory, flow_name: str, run: Callable[[Flow], Any], *,
                 on_missing: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self.flow_name = flow_name
        self._run = run
        self._on_missing = on_missing  # told when the flow is gone from the directory (renamed, deleted)
        self._wanted = threading.Event()  # a run is asked for: set by saves, cleared as a run starts
        self._stopped = threading.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._loop, name=f"flows-tui-watch-run-{flow_name}", daemon=True)
        self.runs_started = 0

    def start(self, *, run_now: bool = True) -> None:
        """Follow the directory's reloads (watching it is the caller's part) and, by default, run at once."""
        self._unsubscribe = self.directory.subscribe(self._on_reload)
        if run_now:
            self._wanted.set()
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """No more runs; waits up to `timeout` (None: for ever, 0: not at all) for a run in progress to end."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stopped.set()
        self._wanted.set()
        if timeout != 0 and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _on_reload(self, event: FlowsReloaded) -> None:
        if self.flow_name in event.flows_changed or self.flow_name in event.flows_added:
            self._wanted.set()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopped.is_set():
                return
            # Cleared before the flow is read: a save from now on asks for one more run after this one.
            self._wanted.clear()
            flow = self.directory.flows.get(self.flow_name)
            if flow is None:
                if self._on_missing is not None:
                    self._on_missing(self.flow_name)
                continue
            self.runs_started += 1
            try:
                self._run(flow)
            except Exception:  # one run that could not start must not end the watch
                log.exception("watch-run of %s failed to run", self.flow_name)
