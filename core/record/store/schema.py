"""The store's tables, and the migrations that bring an older store up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Union

from . import compact_migration

STORE_NAME = "flows-tui.db"

BUSY_TIMEOUT_SECONDS = 30.0

# Each entry migrates the schema from version i to i + 1; the version lives in `PRAGMA user_version`.
# A step is a statement, or a function given the connection (for what SQL alone cannot convert).
Step = Union[str, Callable[[Any], None]]
MIGRATIONS: list[list[Step]] = [
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
    [
        # The project's journal: each committed batch of events, in commit order, for every
        # process to tail from the last id it read (see `journal`). `writer` is the process whose
        # own bus delivered the batch already ("host:pid"; NULL for a crash found by another).
        """CREATE TABLE journal (
            id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, writer TEXT, events TEXT NOT NULL)""",
    ],
    [
        # The command of the process that owns a run ("flows-tui serve"), for `runs --json`'s owner.
        "ALTER TABLE runs ADD COLUMN owner_command TEXT",
        # Requests to the process that owns a run (cancel it), which that process polls; `answer`
        # says what became of one ("cancelled", "ended already", "its process is gone").
        """CREATE TABLE requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, kind TEXT NOT NULL,
            asked_by TEXT NOT NULL, asked REAL NOT NULL, answered REAL, answer TEXT)""",
        "CREATE INDEX requests_open ON requests (run_id) WHERE answered IS NULL",
    ],
    [
        # Which cluster ran the run, in one word (`runs` lists it): its profile, else its class or
        # address. Older runs take it from `address`, where "SLURMCluster (profile big)" names the profile.
        "ALTER TABLE runs ADD COLUMN cluster TEXT",
        """UPDATE runs SET cluster = CASE WHEN instr(address, ' (profile ') > 0
            THEN substr(address, instr(address, ' (profile ') + 10, length(address) - instr(address, ' (profile ') - 10)
            ELSE address END""",
    ],
    [
        # Big maps take a few hundred bytes per task run: integer ids, states as numbers, times as
        # microseconds after the run's start, names written once (see `compact`); the runs keep
        # their first failure, so `runs` reads no task rows. The rows of schema 6 are converted.
        compact_migration.migrate,
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def apply(connection: Any, steps: list[Step]) -> None:
    for step in steps:
        if isinstance(step, str):
            connection.execute(step)
        else:
            step(connection)


def create(connection: Any) -> None:
    """Every table of the current schema in an empty database."""
    for steps in MIGRATIONS:
        apply(connection, steps)


def store_path(state_dir: Path) -> Path:
    return state_dir / STORE_NAME
