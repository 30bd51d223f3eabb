"""The scheduler loop that fires flows when their schedules are due, and the lock that
lets one process per project do it (`serve` or the UI; the others stand by).

What a schedule is and when it is next due: `flows_tui.project.schedules`.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from flows_tui.project.schedules import (MAX_MISSED, MISSED_AFTER, UTC, Schedule, due_when_served, first_due,
                                        first_due_after_change, next_start)
from flows_tui.record.store import ScheduleState


class Clock:
    """Real time; tests pass one they move by hand."""

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(UTC)

    def wait(self, wake: threading.Event, seconds: float) -> None:
        wake.wait(max(0.0, seconds))


@dataclass
class _Entry:
    schedule: Schedule
    due: _dt.datetime
    paused: bool = False
    queued: list[_dt.datetime] = field(default_factory=list)


LOCK_NAME = "schedules.lock"


class ScheduleLock:
    """Which process fires the schedules of a state_dir: the one holding this lock; the others stand by.

    `serve` and the UI on one project would otherwise both fire every schedule. The lock is
    an OS file lock (flock) on `state_dir/schedules.lock`: it goes with its process however
    that ends (SIGKILL included), so a standby takes over within a second. The file says who
    holds it, for the standby's message. Where there is no flock (Windows) every process fires.
    """

    def __init__(self, state_dir: Path, who: str) -> None:
        self.path = Path(state_dir) / LOCK_NAME
        self.who = f"{who} (pid {os.getpid()} on {socket.gethostname()})"
        self._fd: int | None = None  # the lock file, open from the first try on
        self._locked = False

    def acquire(self) -> bool:
        """Take the lock if it is free; True while this process holds it."""
        if self._locked:
            return True
        try:
            import fcntl
        except ImportError:
            return True
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:  # a state_dir that cannot be written: nothing is recorded, nobody to share with
                return True
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        self._locked = True
        try:
            os.ftruncate(self._fd, 0)
            os.write(self._fd, self.who.encode("utf-8"))
        except OSError:
            pass
        return True

    def holder_alive(self) -> bool:
        """Whether the process the lock file names still runs (another host's: assumed so)."""
        import re

        from flows_tui.record.store.owners import owner_alive

        found = re.search(r"\(pid (\d+) on (.+)\)$", self.holder())
        return found is None or owner_alive(found.group(2), int(found.group(1)), None)

    def holder(self) -> str:
        """Who holds the lock, as it wrote itself down."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        return text or "another flows-tui"

    def release(self) -> None:
        fd, self._fd, self._locked = self._fd, None, False
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock


class Scheduler:
    """Fires due schedules: one loop for `serve` and the TUI.

    `start_run(schedule, due)` starts a run and returns something with `done() -> bool`
    (a concurrent Future, say). The due time each schedule last fired for is kept in the
    store, so a restart resumes where it left off; missed due times follow the schedule's
    catch-up policy and every skip is logged through `log(message)`.
    """

    def __init__(self, store: Any, start_run: Callable[[Schedule, _dt.datetime], Any], *,
                 log: Callable[[str], None] = lambda message: None, clock: Clock | None = None,
                 lock: ScheduleLock | None = None) -> None:
        self.store = store
        self.start_run = start_run
        self.log = log
        self.clock = clock or Clock()
        # With a lock, only its holder fires; a standby follows the holder's due times in the store.
        self.lock = lock
        self.standing_by: str | None = None  # who fires the schedules instead of this process
        self._entries: dict[str, _Entry] = {}
        self._running: dict[str, list[Any]] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # What is scheduled -----------------------------------------------------------------------

    def set_schedules(self, schedules: list[Schedule]) -> None:
        """Replace the schedules (at start and on every reload); unchanged ones keep their due time."""
        states = self.store.schedule_states()
        now = self.clock.now()
        with self._lock:
            entries = {}
            for schedule in schedules:
                old = self._entries.get(schedule.flow)
                last, paused, timing = states.get(schedule.flow, ScheduleState())
                if old is not None and old.schedule.timing() == schedule.timing():
                    old.schedule = schedule  # new parameters or policies: the due time stays
                    entries[schedule.flow] = old
                    continue
                if old is not None:  # re-timed while served: nothing before the change was due
                    due = first_due_after_change(schedule, last, now)
                else:
                    due = due_when_served(schedule, last, timing, now)
                entries[schedule.flow] = _Entry(schedule, due, paused)
            self._entries = entries
        self._wake.set()

    def next_due(self) -> dict[str, _dt.datetime | None]:
        """Per flow, when it next starts a run (None while paused): a due time passed while nothing served
        is shown as the tick will handle it (at once, or, missed and skipped, the next one)."""
        now = self.clock.now()
        with self._lock:
            return {flow: None if entry.paused else next_start(entry.schedule, entry.due, now)
                    for flow, entry in self._entries.items()}

    def pause(self, flow: str, paused: bool = True) -> None:
        """Pause or resume; kept in the store, where the process that fires the schedules reads it."""
        entry = self._entries[flow]
        self.store.set_paused(flow, paused)  # first: a tick in between reads the new value, not the old
        with self._lock:
            passed = _set_paused(entry, paused, self.clock.now())
        if passed is not None:
            # What fell due while paused counts as handled: a restart, or the process that takes the
            # schedules over, must not take it for runs missed while nothing served.
            self.store.record_due(flow, passed, entry.schedule.describe())
        self._wake.set()

    def trigger(self, flow: str) -> None:
        """Run now, outside the schedule (its due time is unchanged)."""
        with self._lock:
            entry = self._entries[flow]
        self._launch(entry, self.clock.now())

    # The loop --------------------------------------------------------------------------------

    def tick(self) -> float:
        """Fire what is due; returns the seconds until the next due time (at most 1)."""
        now = self.clock.now()
        if self.lock is not None and not self._hold_lock(now):
            return 1.0
        if self.lock is not None:
            self._run_now_asked(now)
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            self._start_queued(entry)
            if entry.paused or entry.due > now:
                continue
            self._fire_due(entry, now)
        with self._lock:
            upcoming = [e.due for e in self._entries.values() if not e.paused]
        if not upcoming:
            return 1.0
        return max(0.0, min(1.0, (min(upcoming) - self.clock.now()).total_seconds()))

    def _run_now_asked(self, now: _dt.datetime) -> None:
        """`t` pressed in a process that stands by (the UI beside serve): the run starts here."""
        asked = getattr(self.store, "requests_for_me", None)
        for request in asked(schedules=True) if asked is not None else []:
            with self._lock:
                entry = self._entries.get(request.run_id)
            if entry is None:
                self.store.answer(request.id, f"{request.run_id} has no schedule in {self.lock.who}")
                continue
            self.log(f"{request.run_id}: run now, asked from {request.asked_by}")
            self._launch(entry, now)
            self.store.answer(request.id, f"started by {self.lock.who}")

    def _hold_lock(self, now: _dt.datetime) -> bool:
        """With a lock: whether this process fires. Either way the entries follow the store, where
        the holder records what it fired and any process records a pause."""
        held = self.lock.acquire()
        if not held:
            self._follow_store(now)
            if self.standing_by is None:  # said once, not again each second
                self.standing_by = self.lock.holder()
                self.log(f"the schedules are fired by {self.standing_by}; standing by to take over when it stops")
            return False
        if self.standing_by is not None:
            # The holder stopped: start from what it fired; what fell due since follows `catchup`.
            self._follow_store(now, taking_over=True)
            self.log(f"firing the schedules now: {self.standing_by} stopped")
            self.standing_by = None
        else:
            self._follow_store(now, paused_only=True)
        return True

    def _follow_store(self, now: _dt.datetime, *, taking_over: bool = False, paused_only: bool = False) -> None:
        states = self.store.schedule_states()
        with self._lock:
            for flow, entry in self._entries.items():
                last, paused, _ = states.get(flow, ScheduleState())
                if paused != entry.paused:
                    _set_paused(entry, paused, now)
                if paused_only or last is None:
                    continue
                if taking_over:
                    entry.due = first_due(entry.schedule, last, now)
                elif not paused:  # standing by: when the holder fires next
                    entry.due = max(entry.schedule.next_after(last), now)

    def _fire_due(self, entry: _Entry, now: _dt.datetime) -> None:
        schedule = entry.schedule
        due_times = [entry.due]
        while len(due_times) < MAX_MISSED:
            following = schedule.next_after(due_times[-1])
            if following > now:
                break
            due_times.append(following)
        missed = [due for due in due_times if now - due > MISSED_AFTER]
        on_time = [due for due in due_times if now - due <= MISSED_AFTER]
        if missed:
            keep = {"skip": [], "once": missed[-1:], "all": missed}[schedule.catchup]
            skipped = len(missed) - len(keep)
            if skipped:
                self.log(f"{schedule.flow}: skipped {skipped} run(s) missed while not serving "
                         f"(due {_short(missed[0])} … {_short(missed[-1])}; catchup = {schedule.catchup!r})")
            for due in keep:
                self._fire(entry, due, catching_up=True)
        for due in on_time:
            self._fire(entry, due)
        last = due_times[-1]
        with self._lock:
            entry.due = schedule.next_after(last)
        # After moving on: a store that cannot be written (a full disk) must not make it fire again.
        self.store.record_due(schedule.flow, last, schedule.describe())

    def _fire(self, entry: _Entry, due: _dt.datetime, catching_up: bool = False) -> None:
        schedule = entry.schedule
        busy = self._busy(schedule.flow)
        if busy and schedule.overlap == "skip" and not catching_up:
            self.log(f"{schedule.flow}: skipped the run due {_short(due)}: the previous run is still running "
                     "(overlap = 'skip')")
            return
        if (busy or entry.queued) and schedule.overlap != "allow":
            with self._lock:
                entry.queued.append(due)
            return
        self._launch(entry, due)

    def _start_queued(self, entry: _Entry) -> None:
        with self._lock:
            if not entry.queued or self._busy(entry.schedule.flow):
                return
            due = entry.queued.pop(0)
        self._launch(entry, due)

    def _busy(self, flow: str) -> bool:
        with self._lock:
            running = [run for run in self._running.get(flow, []) if not run.done()]
            self._running[flow] = running
            return bool(running)

    def _launch(self, entry: _Entry, due: _dt.datetime) -> None:
        try:
            run = self.start_run(entry.schedule, due)
        except Exception as error:  # a flow that cannot start must not stop the other schedules
            self.log(f"{entry.schedule.flow}: could not start the run due {_short(due)}: {error}")
            return
        if run is not None:
            with self._lock:
                self._running.setdefault(entry.schedule.flow, []).append(run)
            add_callback = getattr(run, "add_done_callback", None)
            if add_callback is not None:
                add_callback(lambda _: self._wake.set())  # a queued run may start now

    def running(self) -> list[Any]:
        with self._lock:
            return [run for runs in self._running.values() for run in runs if not run.done()]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="flows-tui-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop firing (a standby takes over); runs already started go on."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self.lock is not None:
            self.lock.release()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                delay = self.tick()
            except Exception as error:  # keep scheduling; say what went wrong once per tick
                self.log(f"the scheduler failed: {type(error).__name__}: {error}")
                delay = 1.0
            if self._stop.is_set():
                return
            self.clock.wait(self._wake, delay)


def _set_paused(entry: Any, paused: bool, now: _dt.datetime) -> _dt.datetime | None:
    """Returns the last due time a resume passed over (None if none)."""
    entry.paused = paused
    passed = None
    if not paused:  # resuming does not replay what fell due while paused
        while entry.due <= now:
            passed = entry.due
            entry.due = entry.schedule.next_after(entry.due)
    return passed


def _short(moment: _dt.datetime) -> str:
    return moment.isoformat(timespec="seconds")
