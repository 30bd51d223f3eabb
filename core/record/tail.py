"""Following the project's journal: other processes' runs, as events, as they are committed.

A `JournalTail` starts from the runs in flight (rebuilt from the store's tables) and then hands
its callback every batch other processes commit, in commit order, the same events their own
buses delivered. A run it meets in the middle (it started before the tail did, or the tail
fell behind the journal's trimming) is rebuilt from the tables first, so a RunModel folding
what the tail hands it holds the same tree as the owner's.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from . import events as ev

logger = logging.getLogger("flows_tui.tail")

POLL_SECONDS = 0.05  # an idle tail is one indexed read of the journal's last rows this often
RECOVER_SECONDS = 1.0  # how often a tail that may write looks for runs whose owner is gone


class JournalTail:
    """A thread that reads the store's journal after the last row it read and hands on what it finds."""

    def __init__(self, store: Any, on_events: Callable[[list], None], *, interval: float = POLL_SECONDS,
                 on_resync: Callable[[], None] | None = None, recover: bool = False) -> None:
        self.store = store
        self.on_events = on_events
        self.interval = interval
        self.on_resync = on_resync
        # Mark Crashed the runs in flight whose owner is gone (killed -9), by the store's own rule,
        # so a watcher sees them end without waiting for the next command to open the store.
        self.recover = recover
        self.last = 0  # the journal row read last
        self._known: set[str] = set()  # runs the callback has been given from their start
        self._rebuilt_at: dict[str, int] = {}  # run → the journal row its rebuild already holds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._after: int | None = None

    def start(self, after: int | None = None) -> "JournalTail":
        """Follow from now, beginning with the runs in flight; or from journal row `after` (read before
        what the caller read of the store, so nothing committed since is missed)."""
        self._after = after
        self._thread = threading.Thread(target=self._run, name="flows-tui-journal-tail", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            if self._after is None:
                self._catch_up()
            else:
                self.last = self._after
        except Exception:  # a store that cannot be read now: the next round tries again
            logger.debug("journal tail: first read failed", exc_info=True)
        recovered = began = time.monotonic()
        # One read every `interval` at most: the time the last read took (with the callback, which may
        # hold it back to pace the UI's redraws) counts towards the wait, not on top of it.
        while not self._stop.wait(max(0.0, self.interval - (time.monotonic() - began))):
            began = time.monotonic()
            try:
                if self.recover and time.monotonic() - recovered >= RECOVER_SECONDS:
                    recovered = time.monotonic()
                    self.store.recover()
                self.poll()
            except Exception:
                logger.debug("journal tail: read failed", exc_info=True)

    def _catch_up(self) -> None:
        """Start from the runs in flight, rebuilt from the tables, and the journal's last row."""
        self.last, events = self.store.replay_runs()
        self._hand_on(events)

    def poll(self) -> int:
        """Read what was committed since the last read; returns how many events were handed on."""
        handed = 0
        while not self._stop.is_set():
            read = self.store.follow(self.last)
            if read.resync:  # rows it never read were trimmed: rebuild what is in flight
                self._known.clear()
                self._catch_up()
                if self.on_resync is not None:
                    self.on_resync()
                return handed
            events = self._rebuild_unknown(read.entries)
            self.last = read.last
            self._hand_on(events)
            handed += len(events)
            if not read.more:
                return handed
        return handed

    def _rebuild_unknown(self, entries: list) -> list:
        """Events of runs met mid-way are replaced by the runs rebuilt from the tables. The tables are
        read after the journal rows, so they may hold later rows too: those rows are left out when
        read (`_rebuilt_at`), and nothing is applied twice. Log lines are not part of a rebuild: they
        are always handed on."""
        events = [event for row, event in entries
                  if type(event) is ev.LogLines or row > self._rebuilt_at.get(event.run_id, 0)]
        unknown = {e.run_id for e in events if e.run_id not in self._known}
        unknown -= {e.run_id for e in events if type(e) is ev.FlowRunStarted}
        if not unknown:
            return events
        head, rebuilt = self.store.replay_runs(sorted(unknown))
        for run_id in unknown:
            self._rebuilt_at[run_id] = head
            self._known.add(run_id)  # even if it was not found (pruned meanwhile): asked once
        return rebuilt + [e for e in events if e.run_id not in unknown or type(e) is ev.LogLines]

    def _hand_on(self, events: list) -> None:
        for event in events:
            if type(event) is ev.FlowRunStarted:
                self._known.add(event.run_id)
        if events:
            self.on_events(events)
