"""The run store: everything runs produced, in SQLite under `state_dir`.

The store is the bus's journal: each batch of events is committed before any
subscriber sees it, so a line on screen is a line on disk. SQLite in WAL mode lets
several flows-tui processes (a TUI and a `serve`) share one state_dir: each write is
one short `BEGIN IMMEDIATE` transaction, readers never block writers.

A store that cannot be written (a read-only state_dir) is refused before a run starts
(StoreNotWritable), or opened read-only where only reading is needed. A write that fails
mid-run (a full disk) rolls back whole: what was committed stays intact and only the rest of
that run's history is missing, said once (see `record`).

Each run records the process that owns it. A run still in flight whose owner is gone
(flows-tui was killed) is marked Crashed by the next flows-tui command that opens the
store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import os
import shutil
import socket
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple
from urllib.parse import quote

from . import events as ev
from flows_tui.project.config import display_path
from flows_tui.errors import FlowsTuiError, UsageError
from .model import FlowRun, RunModel
from flows_tui.states import CRASHED, FINAL_STATES, PENDING, RUNNING

logger = logging.getLogger("flows_tui.store")

STORE_NAME = "flows-tui.db"
BUSY_TIMEOUT_SECONDS = 30.0

# Each entry migrates the schema from version i to i + 1; the version lives in `PRAGMA user_version`.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, flow TEXT NOT NULL, file TEXT, address TEXT,
            parameters TEXT NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 1,
            started TEXT NOT NULL, ended TEXT, message TEXT, traceback TEXT,
            owner_host TEXT, owner_pid INTEGER, owner_started REAL)""",
        "CREATE INDEX runs_by_started ON runs (started)",
        "CREATE INDEX runs_by_flow ON runs (flow, started)",
        "CREATE INDEX runs_in_flight ON runs (ended) WHERE ended IS NULL",
        """CREATE TABLE run_states (
            run_id TEXT NOT NULL, state TEXT NOT NULL, time TEXT NOT NULL, attempt INTEGER NOT NULL,
            message TEXT)""",
        "CREATE INDEX run_states_by_run ON run_states (run_id)",
        """CREATE TABLE task_runs (
            task_run_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, task TEXT NOT NULL, name TEXT NOT NULL,
            map_index INTEGER, upstream TEXT NOT NULL, flow_attempt INTEGER NOT NULL, state TEXT NOT NULL,
            message TEXT, retry_at TEXT, created TEXT NOT NULL, ended TEXT)""",
        "CREATE INDEX task_runs_by_run ON task_runs (run_id)",
        """CREATE TABLE task_states (
            task_run_id TEXT NOT NULL, run_id TEXT NOT NULL, state TEXT NOT NULL, time TEXT NOT NULL,
            message TEXT, retry_at TEXT)""",
        "CREATE INDEX task_states_by_run ON task_states (run_id)",
        """CREATE TABLE attempts (
            task_run_id TEXT NOT NULL, attempt INTEGER NOT NULL, run_id TEXT NOT NULL, state TEXT NOT NULL,
            started TEXT NOT NULL, ended TEXT, error TEXT, traceback TEXT, worker TEXT,
            PRIMARY KEY (task_run_id, attempt))""",
        "CREATE INDEX attempts_by_run ON attempts (run_id)",
        """CREATE TABLE logs (
            id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, task_run_id TEXT, attempt INTEGER,
            time TEXT NOT NULL, level INTEGER NOT NULL, logger TEXT, message TEXT NOT NULL)""",
        "CREATE INDEX logs_by_run ON logs (run_id, id)",
    ],
    [
        # The due time a schedule last fired for (or skipped past), so a restarted `serve`
        # neither fires twice nor skips silently; and whether the user paused it.
        """CREATE TABLE schedules (
            flow TEXT PRIMARY KEY, last_due TEXT, paused INTEGER NOT NULL DEFAULT 0)""",
    ],
    [
        # The schedule's timing ("every 30s") when it last fired: a restart with another timing
        # must not take due times of the new timing before the change for runs it missed.
        "ALTER TABLE schedules ADD COLUMN timing TEXT",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


class ScheduleState(NamedTuple):
    last_due: _dt.datetime | None = None  # the due time it last fired for (or passed over)
    paused: bool = False
    timing: str | None = None  # how it was timed then ("every 30s"); None in stores older than that


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


def _unwritable(error: BaseException) -> bool:
    name = getattr(error, "sqlite_errorname", None)
    if name:
        return name.startswith(_UNWRITABLE_CODES)
    return any(text in str(error).lower() for text in _UNWRITABLE_TEXT)


@dataclass(frozen=True)
class RunSummary:
    """One line of `flows-tui runs`."""

    run_id: str
    flow: str
    state: str
    started: _dt.datetime
    ended: _dt.datetime | None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else (self.ended - self.started).total_seconds()

    def document(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "flow": self.flow, "state": self.state, "started": _iso(self.started),
                "ended": _iso(self.ended)}


@dataclass(frozen=True)
class StoredLine:
    """A log line as stored, with the name of the task run it came from (None for the flow)."""

    id: int
    run_id: str
    task: str | None
    line: ev.LogLine

    def document(self) -> dict[str, Any]:
        return {"time": _iso(self.line.time), "level": logging.getLevelName(self.line.level), "task": self.task,
                "task_id": self.line.task_run_id, "message": self.line.message}


def _iso(moment: _dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _time(text: str | None) -> _dt.datetime | None:
    return None if text is None else _dt.datetime.fromisoformat(text)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _json(value: Any) -> str:
    from flows_tui.parameters import json_default

    return json.dumps(value, default=json_default)


def _encodable(value: Any) -> Any:
    """`value` (an event, or anything in one) with every string UTF-8 can encode: surrogates as `\\udce9`."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (tuple, list)):
        return type(value)(_encodable(item) for item in value)
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _encodable(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    return value


def _process_started(pid: int) -> float | None:
    import psutil  # a dependency of distributed

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _owner_alive(host: str | None, pid: int | None, started: float | None) -> bool:
    """Is the process that owns a run still running? Runs of other hosts are assumed alive."""
    if host != socket.gethostname():
        return True
    if pid is None:
        return False
    created = _process_started(pid)
    if created is None:
        return False
    # A reused pid belongs to a process started later than the owner.
    return started is None or abs(created - started) < 1.0


class Store:
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
        self._owner = (socket.gethostname(), os.getpid(), _process_started(os.getpid()))
        self._owned: set[str] = set()  # runs in flight that this process records
        self._started: dict[str, ev.FlowRunStarted] = {}  # their start, to record them if it was lost
        self._incomplete: dict[str, str] = {}  # run → why its history stopped being recorded
        self._ends: dict[str, ev.FlowStateChanged] = {}  # the final state of such a run, not yet written
        self._identity: tuple[int, int] | None = None  # the database file the writer opened (device, inode)
        self._vanished = False  # said once: the database file was deleted or replaced under the writer

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
                for statements in MIGRATIONS:
                    for statement in statements:
                        connection.execute(statement)
            elif self._uri is not None:
                connection = sqlite3.connect(self._uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS,
                                             isolation_level=None, check_same_thread=False)
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            else:
                connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
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
        if not _unwritable(error):
            failure = StoreError(f"cannot {doing} the run store {display_path(self.path)}: {text}")
            failure.reason = text
            return failure
        reason = self._os_reason() if doing == "open" else self._space_reason()
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
            raise (self._cannot_record(str(error)) if _unwritable(error) else self._error("write", error)) from None

    def _cannot_record(self, said: str) -> StoreNotWritable:
        """The message for a store that cannot be written when a run is to start: where, why, what to do."""
        reason = self._os_reason()
        why = f"{reason}; SQLite: {said}" if reason else f"SQLite: {said}"
        return StoreNotWritable(
            f"cannot record runs: the run store {display_path(self.path)} cannot be written ({why}). Make "
            f"{display_path(self.path.parent)} writable, or set [project] state_dir in flows.toml to a directory "
            "that is", sqlite=said)

    def _os_reason(self) -> str | None:
        """Why the OS refuses to write the store, found by trying (SQLite only says "unable to open")."""
        try:
            if self.path.is_file():
                with open(self.path, "r+b"):
                    pass
            if self.path.parent.is_dir():
                probe = self.path.parent / f".write-check-{os.getpid()}-{threading.get_ident()}"
                probe.touch()
                probe.unlink()
        except OSError as error:
            return error.strerror or str(error)
        return self._space_reason()

    def _space_reason(self) -> str | None:
        """A full disk, or the process's file size limit reached (ulimit -f): what SQLite calls a disk I/O error."""
        sizes = []
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                sizes.append(os.stat(f"{self.path}{suffix}").st_size)
        try:
            import resource

            limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            if limit != resource.RLIM_INFINITY and sizes and max(sizes) + 65536 >= limit:
                return f"the file size limit (ulimit -f) of {limit} bytes is reached"
        except (ImportError, OSError, ValueError):
            pass
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return None
        return f"no space left on the device ({free} bytes free)" if free < 1 << 20 else None

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
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    connection.execute(statement)
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
                    self._write(self._writer, [_encodable(event) for event in events])
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

    def _write(self, connection: sqlite3.Connection, events: list) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            for event in events:
                if event.run_id in self._incomplete:  # only its final state is kept
                    self._incomplete_run_ended(connection, event)
                else:
                    _WRITERS[type(event)](self, connection, event)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:  # a failed COMMIT may have rolled back already
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            raise

    def _keeps(self, event: Any) -> bool:
        if type(event) not in _WRITERS:
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

    def _incomplete_run_ended(self, c: sqlite3.Connection, e: ev.FlowStateChanged) -> None:
        """The final state of a run whose history is incomplete, noted as such (and the run, if its start was lost)."""
        start = self._started.get(e.run_id)
        if start is not None:
            self._flow_run_started(c, start, replace=False)
        note = f"the history of this run is incomplete: {self._incomplete[e.run_id]}"
        self._flow_state_changed(c, dataclasses.replace(e, message=f"{e.message}; {note}" if e.message else note))

    def _flow_run_started(self, c: sqlite3.Connection, e: ev.FlowRunStarted, replace: bool = True) -> None:
        host, pid, started = self._owner
        c.execute(f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO runs (run_id, flow, file, address, "
                  "parameters, state, started, owner_host, owner_pid, owner_started) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (e.run_id, e.flow, e.file, e.address, _json(e.parameters), PENDING, _iso(e.time), host, pid, started))

    def _flow_state_changed(self, c: sqlite3.Connection, e: ev.FlowStateChanged) -> None:
        final = e.state in FINAL_STATES
        c.execute("UPDATE runs SET state = ?, attempt = ?, message = ?, traceback = ?, ended = ? WHERE run_id = ?",
                  (e.state, e.attempt, e.message, e.traceback, _iso(e.time) if final else None, e.run_id))
        c.execute("INSERT INTO run_states (run_id, state, time, attempt, message) VALUES (?, ?, ?, ?, ?)",
                  (e.run_id, e.state, _iso(e.time), e.attempt, e.message))

    def _task_run_created(self, c: sqlite3.Connection, e: ev.TaskRunCreated) -> None:
        c.execute("INSERT OR REPLACE INTO task_runs (task_run_id, run_id, task, name, map_index, upstream, "
                  "flow_attempt, state, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (e.task_run_id, e.run_id, e.task, e.name, e.map_index, json.dumps(list(e.upstream)),
                   e.flow_attempt, PENDING, _iso(e.time)))

    def _task_state_changed(self, c: sqlite3.Connection, e: ev.TaskStateChanged) -> None:
        final = e.state in FINAL_STATES
        c.execute("UPDATE task_runs SET state = ?, message = ?, retry_at = ?, ended = ? WHERE task_run_id = ?",
                  (e.state, e.message, _iso(e.retry_at), _iso(e.time) if final else None, e.task_run_id))
        c.execute("INSERT INTO task_states (task_run_id, run_id, state, time, message, retry_at) "
                  "VALUES (?, ?, ?, ?, ?, ?)",
                  (e.task_run_id, e.run_id, e.state, _iso(e.time), e.message, _iso(e.retry_at)))

    def _attempt_started(self, c: sqlite3.Connection, e: ev.AttemptStarted) -> None:
        c.execute("INSERT OR REPLACE INTO attempts (task_run_id, attempt, run_id, state, started, worker) "
                  "VALUES (?, ?, ?, ?, ?, ?)", (e.task_run_id, e.attempt, e.run_id, RUNNING, _iso(e.time), e.worker))

    def _attempt_ended(self, c: sqlite3.Connection, e: ev.AttemptEnded) -> None:
        updated = c.execute("UPDATE attempts SET state = ?, ended = ?, error = ?, traceback = ? "
                            "WHERE task_run_id = ? AND attempt = ?",
                            (e.state, _iso(e.time), e.error, e.traceback, e.task_run_id, e.attempt)).rowcount
        if not updated:
            c.execute("INSERT INTO attempts (task_run_id, attempt, run_id, state, started, ended, error, traceback) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (e.task_run_id, e.attempt, e.run_id, e.state, _iso(e.time), _iso(e.time), e.error, e.traceback))

    def _log_lines(self, c: sqlite3.Connection, e: ev.LogLines) -> None:
        c.executemany("INSERT INTO logs (run_id, task_run_id, attempt, time, level, logger, message) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)",
                      [(e.run_id, line.task_run_id, line.attempt, _iso(line.time), line.level, line.logger,
                        line.message) for line in e.lines])

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
                   and not _owner_alive(row["owner_host"], row["owner_pid"], row["owner_started"])]
        for run_id in orphans:
            self._mark_crashed(run_id, "flows-tui ended while this run was in flight (the process was killed "
                                       "or the machine restarted)")
        return orphans

    def _mark_crashed(self, run_id: str, reason: str) -> None:
        when = _iso(_now())
        try:
            with self._connection() as c:
                c.execute("BEGIN IMMEDIATE")
                row = c.execute("SELECT attempt FROM runs WHERE run_id = ? AND ended IS NULL", (run_id,)).fetchone()
                if row is None:  # another process recovered it first
                    c.execute("ROLLBACK")
                    return
                c.execute("UPDATE attempts SET state = ?, ended = ?, error = ? WHERE run_id = ? AND ended IS NULL",
                          (CRASHED, when, reason, run_id))
                open_tasks = [r["task_run_id"] for r in c.execute(
                    "SELECT task_run_id FROM task_runs WHERE run_id = ? AND ended IS NULL", (run_id,))]
                c.executemany("INSERT INTO task_states (task_run_id, run_id, state, time, message) "
                              "VALUES (?, ?, ?, ?, ?)", [(t, run_id, CRASHED, when, reason) for t in open_tasks])
                c.execute("UPDATE task_runs SET state = ?, message = ?, ended = ? WHERE run_id = ? AND ended IS NULL",
                          (CRASHED, reason, when, run_id))
                c.execute("UPDATE runs SET state = ?, message = ?, ended = ? WHERE run_id = ?",
                          (CRASHED, reason, when, run_id))
                c.execute("INSERT INTO run_states (run_id, state, time, attempt, message) VALUES (?, ?, ?, ?, ?)",
                          (run_id, CRASHED, when, row["attempt"], reason))
                c.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._error("update", error) from None

    # Queries -----------------------------------------------------------------------------------

    def runs(self, flow: str | None = None, limit: int | None = None) -> list[RunSummary]:
        """Runs newest first, optionally of one flow."""
        query = "SELECT run_id, flow, state, started, ended FROM runs"
        args: list[Any] = []
        if flow is not None:
            query += " WHERE flow = ?"
            args.append(flow)
        query += " ORDER BY started DESC, rowid DESC"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        with self._connection() as c:
            rows = c.execute(query, args).fetchall()
        return [RunSummary(r["run_id"], r["flow"], r["state"], _time(r["started"]), _time(r["ended"])) for r in rows]

    def flows(self) -> list[str]:
        with self._connection() as c:
            return [r[0] for r in c.execute("SELECT DISTINCT flow FROM runs ORDER BY flow")]

    def find_run(self, prefix: str) -> str:
        """The full id of the run whose id starts with `prefix` (as git does with commits)."""
        with self._connection() as c:
            rows = c.execute("SELECT run_id FROM runs WHERE run_id >= ? AND run_id < ? ORDER BY run_id LIMIT 6",
                             (prefix, prefix + "\uffff")).fetchall()
        if not rows:
            raise UsageError(f"no run {prefix!r} in {self.path} (`flows-tui runs` lists them)")
        if len(rows) > 1 and rows[0][0] != prefix:
            candidates = ", ".join(r[0] for r in rows[:5])
            raise UsageError(f"run id {prefix!r} is ambiguous: {candidates}")
        return rows[0][0]

    def load_run(self, run_id: str) -> FlowRun:
        """Rebuild a run's tree by folding its stored history through a RunModel, like a live observer."""
        model = RunModel()
        model.apply_all(self._replay(run_id))
        if run_id not in model.runs:
            raise UsageError(f"no run {run_id!r} in {self.path}")
        return model.runs[run_id]

    def _replay(self, run_id: str) -> Iterator[Any]:
        with self._connection() as c:
            run = c.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if run is None:
                return
            run_states = c.execute("SELECT * FROM run_states WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
            task_runs = c.execute("SELECT * FROM task_runs WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
            task_states = c.execute("SELECT * FROM task_states WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
            attempts = c.execute("SELECT * FROM attempts WHERE run_id = ? ORDER BY task_run_id, attempt",
                                 (run_id,)).fetchall()
        yield ev.FlowRunStarted(run_id, run["flow"], json.loads(run["parameters"]), _time(run["started"]),
                                file=run["file"], address=run["address"])
        for index, row in enumerate(run_states):
            last = index == len(run_states) - 1
            yield ev.FlowStateChanged(run_id, row["state"], _time(row["time"]), row["attempt"], message=row["message"],
                                      traceback=run["traceback"] if last else None)
        for row in task_runs:
            yield ev.TaskRunCreated(run_id, row["task_run_id"], row["task"], row["name"], _time(row["created"]),
                                    row["map_index"], tuple(json.loads(row["upstream"])), row["flow_attempt"])
        for row in attempts:
            yield ev.AttemptStarted(run_id, row["task_run_id"], row["attempt"], _time(row["started"]), row["worker"])
            if row["ended"] is not None:
                yield ev.AttemptEnded(run_id, row["task_run_id"], row["attempt"], row["state"], _time(row["ended"]),
                                      row["error"], row["traceback"])
        for row in task_states:
            yield ev.TaskStateChanged(run_id, row["task_run_id"], row["state"], _time(row["time"]),
                                      message=row["message"], retry_at=_time(row["retry_at"]))

    def is_final(self, run_id: str) -> bool:
        with self._connection() as c:
            row = c.execute("SELECT ended FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row is not None and row[0] is not None

    def logs(self, run_id: str, *, task: str | None = None, after: int = 0, limit: int | None = None,
             level: int = 0) -> list[StoredLine]:
        """The run's log lines in order (optionally of one task: a task run's name or a task's name)."""
        query = ("SELECT logs.*, task_runs.name AS task_name FROM logs "
                 "LEFT JOIN task_runs ON task_runs.task_run_id = logs.task_run_id "
                 "WHERE logs.run_id = ? AND logs.id > ? AND logs.level >= ?")
        args: list[Any] = [run_id, after, level]
        if task is not None:
            query += " AND (task_runs.name = ? OR task_runs.task = ?)"
            args += [task, task]
        query += " ORDER BY logs.id"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        with self._connection() as c:
            rows = c.execute(query, args).fetchall()
        return [StoredLine(r["id"], r["run_id"], r["task_name"],
                           ev.LogLine(_time(r["time"]), r["level"], r["message"], r["task_run_id"], r["attempt"],
                                      r["logger"]))
                for r in rows]

    # Schedules --------------------------------------------------------------------------------

    def schedule_states(self) -> dict[str, ScheduleState]:
        """Per flow: the due time its schedule last fired for, whether it is paused, and its timing then."""
        with self._connection() as c:
            rows = c.execute("SELECT flow, last_due, paused, timing FROM schedules").fetchall()
        return {r["flow"]: ScheduleState(_time(r["last_due"]), bool(r["paused"]), r["timing"]) for r in rows}

    def record_due(self, flow: str, due: _dt.datetime, timing: str | None = None) -> None:
        self._write_schedule("INSERT INTO schedules (flow, last_due, timing) VALUES (?, ?, ?) "
                             "ON CONFLICT (flow) DO UPDATE SET last_due = excluded.last_due, "
                             "timing = coalesce(excluded.timing, timing)", (flow, _iso(due), timing))

    def set_paused(self, flow: str, paused: bool) -> None:
        self._write_schedule("INSERT INTO schedules (flow, paused) VALUES (?, ?) "
                             "ON CONFLICT (flow) DO UPDATE SET paused = excluded.paused", (flow, int(paused)))

    def _write_schedule(self, statement: str, args: tuple) -> None:
        try:
            with self._connection() as c:
                c.execute(statement, args)
        except sqlite3.Error as error:
            raise self._error("update", error) from None

    def task_names(self, run_id: str) -> set[str]:
        with self._connection() as c:
            rows = c.execute("SELECT name, task FROM task_runs WHERE run_id = ?", (run_id,)).fetchall()
        return {r[0] for r in rows} | {r[1] for r in rows}


_WRITERS = {
    ev.FlowRunStarted: Store._flow_run_started,
    ev.FlowStateChanged: Store._flow_state_changed,
    ev.TaskRunCreated: Store._task_run_created,
    ev.TaskStateChanged: Store._task_state_changed,
    ev.AttemptStarted: Store._attempt_started,
    ev.AttemptEnded: Store._attempt_ended,
    ev.LogLines: Store._log_lines,
}


def store_path(state_dir: Path) -> Path:
    return state_dir / STORE_NAME
