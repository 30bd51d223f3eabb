"""The Store: opening the SQLite file of a state_dir, recording batches of events, crash recovery."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import logging
import functools
import os
import socket
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from flows_tui.project.config import display_path
from flows_tui.record import events as ev
from flows_tui.states import FINAL_STATES

from . import journal, writes
from . import prune as prune_rows
from .errors import StoreError, StoreNotWritable, os_reason, space_reason, unwritable
from .owners import Owner, owner_alive
from .reading import StoreReading
from .requests import StoreRequests
from .rows import encodable, iso, utc_now
from .schema import BUSY_TIMEOUT_SECONDS, MIGRATIONS, SCHEMA_VERSION, STORE_NAME, apply, create

logger = logging.getLogger("flows_tui.store")


class Store(StoreReading, StoreRequests):
    """The SQLite store of one state_dir. `record` is the bus journal; the rest are queries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The first write that failed (None: everything handed to `record` is on disk).
        self.failure: StoreError | None = None
        # Why this store was opened read-only (None: it records). See `open(read_only_ok=True)`.
        self.read_only: StoreError | None = None
        # Each "history incomplete" message, once per run; `on_problem` (else the log) hears them as they happen.
        self.problems: list[str] = []
        self.on_problem: Callable[[str], None] | None = None
        self._uri: str | None = None  # a read-only connection's URI
        self._empty = False  # nothing readable: an empty in-memory store stands in
        self._writer: sqlite3.Connection | None = None
        self._writer_lock = threading.Lock()
        self._writer_name = f"{socket.gethostname()}:{os.getpid()}"
        self._owned: set[str] = set()  # runs in flight that this process records
        self._started: dict[str, ev.FlowRunStarted] = {}  # their start, to record them if it was lost
        self._incomplete: dict[str, str] = {}  # run → why its history stopped being recorded
        self._ends: dict[str, ev.FlowStateChanged] = {}  # the final state of such a run, not yet written
        self._identity: tuple[int, int] | None = None  # the database file the writer opened (device, inode)
        self._batches = 0  # batches journaled, to trim the journal every so many
        self._vanished = False  # said once: the database file was deleted or replaced under the writer

    @functools.cached_property
    def _owner(self) -> Owner:
        """This process, as the owner of the runs it records: its start time is read (through psutil)
        when it first records one, so that `runs` and `logs` neither import nor ask it."""
        return Owner.this_process()

    @classmethod
    def open(cls, state_dir: Path, *, read_only_ok: bool = False) -> "Store":
        """Open (creating or migrating) the store in `state_dir`, and mark orphaned runs Crashed.

        StoreNotWritable if the store cannot be written, so that nothing runs unrecorded; with
        `read_only_ok` (the history commands) a store that can still be read opens read-only
        instead (`read_only` says why) and crash recovery is left to a process that can write.
        """
        store = cls(state_dir / STORE_NAME)
        try:
            try:
                # Logs, parameters and tracebacks are the user's alone on a shared machine: the
                # directory we create is 0700, the database 0600 (SQLite gives its -wal and -shm
                # files the database's mode). What already exists keeps the mode it was given.
                state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as error:
                raise StoreNotWritable(f"cannot create the state directory {display_path(state_dir)}: "
                                       f"{error.strerror or error} (set [project] state_dir in flows.toml to a "
                                       "directory that can be written)") from None
            if not store.path.exists():
                with contextlib.suppress(OSError):  # a read-only directory: opening the store says so
                    os.close(os.open(store.path, os.O_WRONLY | os.O_CREAT, 0o600))
            with store._connection() as connection:
                store._migrate(connection)
                store._check_writable(connection)
                journal.trim(connection)
            store.recover()
        except StoreNotWritable as error:
            if not read_only_ok or not store.path.is_file():
                raise (store._cannot_record(error.sqlite) if error.sqlite else error) from None
            store._open_read_only(error)
        return store

    @classmethod
    def unrecorded(cls, state_dir: Path, error: StoreError) -> "Store":
        """For the UI when `open` failed: the history read-only if it can be read, else an empty one."""
        store = cls(state_dir / STORE_NAME)
        try:
            store._open_read_only(error)
        except StoreError:
            store._empty, store._uri, store.read_only = True, None, error
        return store

    def _open_read_only(self, why: StoreError) -> None:
        """Read what can be read: `mode=ro` needs the WAL's -shm file, `immutable` reads the file as it is."""
        self.read_only = why
        failure: BaseException | None = None
        for options in ("mode=ro", "immutable=1"):
            self._uri = f"file:{quote(str(self.path))}?{options}"
            try:
                with self._connection() as connection:
                    version = connection.execute("PRAGMA user_version").fetchone()[0]
                if version == SCHEMA_VERSION:
                    return
                failure = StoreError(f"the run store {display_path(self.path)} has schema {version}, this flows-tui "
                                     f"reads {SCHEMA_VERSION}, and it cannot be written to upgrade it: {why}")
                break
            except StoreError as error:
                failure = error
        self._uri = None
        raise failure if failure is not None else why

    # Connections -----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            if self._empty:
                connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                create(connection)
            elif self._uri is not None:
                connection = sqlite3.connect(self._uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS,
                                             isolation_level=None, check_same_thread=False)
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            else:
                # `mode=rw`: never create the file (`open` does, once). A store deleted under a running
                # flows-tui must not come back empty because a reader (a tail, the request poller)
                # connected: the writer would then find its file replaced and stop recording.
                connection = sqlite3.connect(f"file:{quote(str(self.path))}?mode=rw", uri=True,
                                             timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                             check_same_thread=False)
                with contextlib.suppress(OSError):
                    info = os.stat(self.path)
                    self._identity = (info.st_dev, info.st_ino)
                connection.execute("PRAGMA journal_mode=WAL")
                # NORMAL is durable against a killed process (the OS keeps the WAL); only a power
                # loss may take the last commits.
                connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as error:
            raise self._error("open", error) from None
        connection.row_factory = sqlite3.Row
        return connection

    def _connection(self) -> "contextlib.closing[sqlite3.Connection]":
        return contextlib.closing(self._connect())

    def _error(self, doing: str, error: BaseException) -> StoreError:
        """One clear message: the store's path as the user would type it, SQLite's words, and why if known."""
        text = said = str(error)
        if not unwritable(error):
            failure = StoreError(f"cannot {doing} the run store {display_path(self.path)}: {text}")
            failure.reason = text
            return failure
        reason = os_reason(self.path) if doing == "open" else space_reason(self.path)
        if reason is None and ("unable to open" in text or "readonly" in text):
            reason = "is the state_dir writable?"
        elif reason is None and ("disk is full" in text or "I/O" in text):
            reason = "is the disk full?"
        text = f"{text}; {reason}" if reason else text
        failure = StoreNotWritable(f"cannot {doing} the run store {display_path(self.path)}: {text}", sqlite=said)
        failure.reason = text
        return failure

    def _check_writable(self, connection: sqlite3.Connection) -> None:
        """Fail now, not at the run's first event, if the store cannot be written (nothing is changed)."""
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                connection.execute(f"PRAGMA user_version = {int(version)}")  # dirties page 1; rolled back
            finally:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
        except sqlite3.Error as error:
            raise (self._cannot_record(str(error)) if unwritable(error) else self._error("write", error)) from None

    def _cannot_record(self, said: str) -> StoreNotWritable:
        """The message for a store that cannot be written when a run is to start: where, why, what to do."""
        reason = os_reason(self.path)
        why = f"{reason}; SQLite: {said}" if reason else f"SQLite: {said}"
        return StoreNotWritable(
            f"cannot record runs: the run store {display_path(self.path)} cannot be written ({why}). Make "
            f"{display_path(self.path.parent)} writable, or set [project] state_dir in flows.toml to a directory "
            "that is", sqlite=said)

    def _migrate(self, connection: sqlite3.Connection) -> None:
        try:
            if connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                return  # the usual case: no write lock taken
            connection.execute("BEGIN IMMEDIATE")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                connection.execute("ROLLBACK")
                raise StoreError(f"the run store {self.path} was written by a newer flows-tui (schema {version}; "
                                 f"this one knows up to {SCHEMA_VERSION}): upgrade flows-tui")
            for steps in MIGRATIONS[version:]:
                apply(connection, steps)
            if version < SCHEMA_VERSION:
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise self._error("open", error) from None

    # Writing: the bus journal ------------------------------------------------------------------

    def record(self, batch: list) -> None:
        """Commit one batch of events in one transaction (called on the bus's journal thread).

        A batch that cannot be written (a full disk, a store made read-only meanwhile) is rolled
        back whole, so what was committed before stays intact. The history of each run in it is
        then incomplete: that is said once per run (`on_problem`), the run's later events are
        left out so the store keeps a consistent beginning of it, and its final state is still
        written when it comes, with a note, so `runs` shows how it ended. Other runs, and runs
        started once the store can be written again, are recorded as usual.
        """
        with self._writer_lock:
            events = [event for event in batch if self._keeps(event)]
            if not events:
                return
            try:
                if self._writer is None:
                    self._writer = self._connect()
                try:
                    self._write(self._writer, events)
                except UnicodeEncodeError:
                    # A lone surrogate (a latin-1 file name read with os.listdir, half of a pair) is
                    # not UTF-8: the batch goes again with such characters written as `\udce9`.
                    self._write(self._writer, [encodable(event) for event in events])
                except sqlite3.Error:
                    if not all(event.run_id in self._incomplete for event in events):
                        raise
                    self._write_in_little_space(self._writer, lambda journaled: self._write(
                        self._writer, events, journaled))
            except (sqlite3.Error, StoreError) as error:
                self._lost(events, error)
                return
            for event in events:
                self._committed(event)
            self._check_still_there(events)

    def _check_still_there(self, events: list) -> None:
        """SQLite goes on writing into a database file that was deleted (`rm -rf .flows-tui`) as if
        nothing happened: say once that what it records now is lost."""
        if self._vanished or self._identity is None:
            return
        try:
            info = os.stat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                return
        except OSError:
            pass
        self._vanished = True
        runs = sorted({event.run_id for event in events} | self._owned)
        which = f" (run {', '.join(runs)})" if runs else ""
        self._report(f"the run store {display_path(self.path)} was deleted while runs were recorded: the history "
                     f"of the runs in progress{which} is lost; they go on, and the next run starts a new store")

    def _write(self, connection: sqlite3.Connection, events: list, journaled: bool = True) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            entries = []
            complete = [event for event in events if event.run_id not in self._incomplete]
            written = iter(writes.write_batch(connection, complete, self._owner))
            for event in events:
                if event.run_id in self._incomplete:  # only its final state is kept
                    entries.append(journal.encode(self._incomplete_run_ended(connection, event)))
                else:
                    entries.append(journal.encode(event, next(written)))
            if journaled:
                journal.append(connection, entries, self._writer_name)
                self._batches += 1
                journal.trim_when_due(connection, self._batches, events)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:  # a failed COMMIT may have rolled back already
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            raise

    def _keeps(self, event: Any) -> bool:
        if type(event) not in writes.WRITERS:
            return False
        if type(event) is ev.FlowRunStarted:
            self._started[event.run_id] = event
        if event.run_id in self._incomplete:
            return type(event) is ev.FlowStateChanged and event.state in FINAL_STATES
        return True

    def _committed(self, event: Any) -> None:
        if type(event) is ev.FlowRunStarted:
            self._owned.add(event.run_id)
        elif type(event) is ev.FlowStateChanged and event.state in FINAL_STATES:
            self._owned.discard(event.run_id)
            for held in (self._started, self._incomplete, self._ends):
                held.pop(event.run_id, None)

    def _lost(self, events: list, error: BaseException) -> None:
        """A batch was not written: its runs' histories are incomplete; say so once per run."""
        failure = error if isinstance(error, StoreError) else self._error("write", error)
        if self.failure is None:
            self.failure = failure
        why = getattr(failure, "reason", None) or str(failure)
        newly = []
        for event in events:
            if type(event) is ev.FlowStateChanged and event.state in FINAL_STATES:
                self._ends[event.run_id] = event  # tried again at close
            if event.run_id not in self._incomplete:
                self._incomplete[event.run_id] = why
                newly.append(event.run_id)
        for run_id in newly:
            start = self._started.get(run_id)
            name = f"run {run_id} ({start.flow!r})" if start is not None else f"run {run_id}"
            self._report(f"the history of {name} is incomplete: the run store {display_path(self.path)} could not "
                         f"be written ({why}). The run goes on; what was recorded before is intact, and runs are "
                         "recorded again once the store can be written")

    def _report(self, message: str) -> None:
        self.problems.append(message)
        listener = self.on_problem
        if listener is None:
            logger.error("%s", message)
            return
        try:
            listener(message)
        except Exception:  # the UI may be gone; the message stays in `problems`
            logger.debug("store problem listener failed", exc_info=True)

    def _incomplete_run_ended(self, c: sqlite3.Connection, e: ev.FlowStateChanged) -> ev.FlowStateChanged:
        """The final state of a run whose history is incomplete, noted as such (and the run, if its start was lost)."""
        start = self._started.get(e.run_id)
        if start is not None:
            writes.flow_run_started(c, start, self._owner, replace=False)
        note = f"the history of this run is incomplete: {self._incomplete[e.run_id]}"
        ended = dataclasses.replace(e, message=f"{e.message}; {note}" if e.message else note)
        writes.flow_state_changed(c, ended, self._owner)
        return ended

    def close(self, reason: str = "flows-tui stopped while the run was in flight") -> None:
        """Mark the runs this process still had in flight Crashed, then close the writer.

        Never raises: a store that cannot be written was reported already. The final state of a
        run whose history is incomplete is tried once more (space may be back).
        """
        with self._writer_lock:
            ends = list(self._ends.values())
        if ends:
            self.record(ends)
        with self._writer_lock:
            in_flight, self._owned = list(self._owned), set()
        for run_id in in_flight:
            try:
                self._mark_crashed(run_id, reason)
            except StoreError as error:
                logger.debug("%s", error)
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    # Crash recovery ----------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Mark Crashed every run in flight whose owning process is gone; returns their ids."""
        if self.read_only is not None:
            return []  # left to a process that can write
        with self._connection() as connection:
            rows = connection.execute("SELECT run_id, owner_host, owner_pid, owner_started FROM runs "
                                      "WHERE ended IS NULL").fetchall()
        orphans = [row["run_id"] for row in rows
                   if row["run_id"] not in self._owned
                   and not owner_alive(row["owner_host"], row["owner_pid"], row["owner_started"])]
        for run_id in orphans:
            self._mark_crashed(run_id, "flows-tui ended while this run was in flight (the process was killed "
                                       "or the machine restarted)")
        return orphans

    def _mark_crashed(self, run_id: str, reason: str) -> None:
        try:
            try:
                self._write_crashed(run_id, reason, journaled=True)
            except sqlite3.Error:
                with self._connection() as c:
                    self._write_in_little_space(c, lambda journaled: self._write_crashed(run_id, reason, journaled))
        except sqlite3.Error as error:
            raise self._error("update", error) from None

    @staticmethod
    def _write_in_little_space(connection: sqlite3.Connection, write: Callable[[bool], None]) -> None:
        """A run's end, written where a batch did not fit (a full disk, a file size limit): the WAL
        moved into the database first (which frees the WAL's length), then without the journal's row
        if it still does not fit: the end of a run is worth more than the tails hearing of it."""
        with contextlib.suppress(sqlite3.Error):
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            write(True)
        except sqlite3.Error:
            write(False)

    def _write_crashed(self, run_id: str, reason: str, journaled: bool) -> None:
        with self._connection() as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                changes = writes.run_crashed(c, run_id, reason, utc_now())
                if journaled:  # no process's bus saw this: every tail reads it (the owner is gone)
                    journal.append(c, [journal.encode(event, written) for event, written in changes], writer=None)
                c.execute("COMMIT")
            finally:
                if c.in_transaction:
                    c.execute("ROLLBACK")

    # Keeping history small ---------------------------------------------------------------------

    def prune(self, older_than: _dt.timedelta | None = None, keep: int | None = None,
              now: _dt.datetime | None = None) -> prune_rows.Pruned:
        """Remove the ended runs started before `now - older_than` or not among the newest `keep`."""
        try:
            with self._connection() as c:
                return prune_rows.prune(c, older_than, keep, now or utc_now())
        except sqlite3.Error as error:
            raise self._error("prune", error) from None

    def vacuum(self) -> tuple[int, int]:
        """Rewrite the file without its free pages; returns its size in bytes before and after."""
        def size() -> int:
            return sum(path.stat().st_size for path in (self.path, self.path.with_name(self.path.name + "-wal"))
                       if path.exists())

        before = size()
        try:
            with self._connection() as c:
                c.execute("VACUUM")
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            raise self._error("vacuum", error) from None
        return before, size()

    # Schedules --------------------------------------------------------------------------------

    def record_due(self, flow: str, due: _dt.datetime, timing: str | None = None) -> None:
        self._write_schedule("INSERT INTO schedules (flow, last_due, timing) VALUES (?, ?, ?) "
                             "ON CONFLICT (flow) DO UPDATE SET last_due = excluded.last_due, "
                             "timing = coalesce(excluded.timing, timing)", (flow, iso(due), timing))

    def set_paused(self, flow: str, paused: bool) -> None:
        self._write_schedule("INSERT INTO schedules (flow, paused) VALUES (?, ?) "
                             "ON CONFLICT (flow) DO UPDATE SET paused = excluded.paused", (flow, int(paused)))

    def _write_schedule(self, statement: str, args: tuple) -> None:
        try:
            with self._connection() as c:
                c.execute(statement, args)
        except sqlite3.Error as error:
            raise self._error("update", error) from None

