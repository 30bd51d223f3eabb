"""Schema 7: the compact tables (see `compact`), and the conversion of a store of schema 6 in place."""

from __future__ import annotations

import sqlite3

from .compact import code, micros, short_name
from .rows import parse_time

TABLES = [
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, flow TEXT NOT NULL, file TEXT, address TEXT,
        parameters TEXT NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 1,
        started TEXT NOT NULL, ended TEXT, message TEXT, traceback TEXT,
        owner_host TEXT, owner_pid INTEGER, owner_started REAL, owner_command TEXT, cluster TEXT,
        error TEXT)""",  # the first attempt's error, for `runs`
    "CREATE INDEX runs_by_started ON runs (started)",
    "CREATE INDEX runs_by_flow ON runs (flow, started)",
    "CREATE INDEX runs_in_flight ON runs (ended) WHERE ended IS NULL",
    # Times in the rows below: microseconds after their run's `started`.
    """CREATE TABLE task_runs (
        id INTEGER PRIMARY KEY, run INTEGER NOT NULL, task_run_id TEXT NOT NULL UNIQUE, task TEXT NOT NULL,
        name TEXT, map_index INTEGER, upstream TEXT, flow_attempt INTEGER NOT NULL, state NOT NULL,
        message TEXT, retry_at INTEGER, created INTEGER NOT NULL, ended INTEGER)""",
    "CREATE INDEX task_runs_by_run ON task_runs (run)",
    """CREATE TABLE task_states (
        task INTEGER NOT NULL, n INTEGER NOT NULL, state NOT NULL, time INTEGER NOT NULL, message TEXT,
        retry_at INTEGER, PRIMARY KEY (task, n)) WITHOUT ROWID""",
    """CREATE TABLE attempts (
        task INTEGER NOT NULL, attempt INTEGER NOT NULL, state NOT NULL, started INTEGER NOT NULL,
        ended INTEGER, error TEXT, traceback TEXT, worker INTEGER, PRIMARY KEY (task, attempt)) WITHOUT ROWID""",
    """CREATE TABLE logs (
        id INTEGER PRIMARY KEY, run INTEGER NOT NULL, task INTEGER, attempt INTEGER, time INTEGER NOT NULL,
        level INTEGER NOT NULL, logger INTEGER, message TEXT NOT NULL)""",
    "CREATE INDEX logs_by_run ON logs (run, id)",
    "CREATE TABLE names (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE)",
]

_OLD = {"runs": ("runs_by_started", "runs_by_flow", "runs_in_flight"), "task_runs": ("task_runs_by_run",),
        "task_states": ("task_states_by_run",), "attempts": ("attempts_by_run",), "logs": ("logs_by_run",)}


def migrate(c: sqlite3.Connection) -> None:
    for table, indexes in _OLD.items():
        for index in indexes:
            c.execute(f"DROP INDEX IF EXISTS {index}")
        c.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
    for statement in TABLES:
        c.execute(statement)
    for table in ("task_runs", "task_states", "attempts", "logs"):  # each run's rows, found by index
        c.execute(f"CREATE INDEX old_{table}_by_run ON old_{table} (run_id)")
    c.execute("""INSERT INTO runs (run_id, flow, file, address, parameters, state, attempt, started, ended, message,
        traceback, owner_host, owner_pid, owner_started, owner_command, cluster, error)
        SELECT run_id, flow, file, address, parameters, state, attempt, started, ended, message, traceback,
        owner_host, owner_pid, owner_started, owner_command, cluster,
        (SELECT error FROM old_attempts a WHERE a.run_id = r.run_id AND error IS NOT NULL ORDER BY ended LIMIT 1)
        FROM old_runs r ORDER BY rowid""")
    c.execute("INSERT OR IGNORE INTO names (text) SELECT worker FROM old_attempts WHERE worker IS NOT NULL")
    c.execute("INSERT OR IGNORE INTO names (text) SELECT logger FROM old_logs WHERE logger IS NOT NULL")
    names = dict(c.execute("SELECT text, id FROM names"))
    for run, run_id, started in c.execute("SELECT id, run_id, started FROM runs").fetchall():
        _convert_run(c, run, run_id, micros(parse_time(started)), names)
    for table in _OLD:
        c.execute(f"DROP TABLE old_{table}")


def _at(text: str | None, base: int) -> int | None:
    return None if text is None else micros(parse_time(text)) - base


def _convert_run(c: sqlite3.Connection, run: int, run_id: str, base: int, names: dict) -> None:
    ids: dict[str, int] = {}
    for r in c.execute("SELECT task_run_id, task, name, map_index, upstream, flow_attempt, state, message, retry_at, "
                       "created, ended FROM old_task_runs WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall():
        upstream = None if r[4] in (None, "[]") else r[4]
        cursor = c.execute("INSERT OR IGNORE INTO task_runs (run, task_run_id, task, name, map_index, upstream, "
                           "flow_attempt, state, message, retry_at, created, ended) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (run, r[0], r[1], short_name(r[1], r[2], r[3]), r[3], upstream, r[5], code(r[6]), r[7],
                            _at(r[8], base), _at(r[9], base), _at(r[10], base)))
        if cursor.rowcount:
            ids[r[0]] = cursor.lastrowid
    counts: dict[int, int] = {}
    states = []
    for task_run_id, state, time, message, retry_at in c.execute(
            "SELECT task_run_id, state, time, message, retry_at FROM old_task_states WHERE run_id = ? "
            "ORDER BY rowid", (run_id,)):
        task = ids.get(task_run_id)
        if task is not None:
            counts[task] = counts.get(task, 0) + 1
            states.append((task, counts[task], code(state), _at(time, base), message, _at(retry_at, base)))
    c.executemany("INSERT INTO task_states VALUES (?, ?, ?, ?, ?, ?)", states)
    c.executemany("INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  [(ids[r[0]], r[1], code(r[2]), _at(r[3], base), _at(r[4], base), r[5], r[6], names.get(r[7]))
                   for r in c.execute("SELECT task_run_id, attempt, state, started, ended, error, traceback, worker "
                                      "FROM old_attempts WHERE run_id = ?", (run_id,)) if r[0] in ids])
    c.executemany("INSERT INTO logs (id, run, task, attempt, time, level, logger, message) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  [(r[0], run, ids.get(r[1]), r[2], _at(r[3], base), r[4], names.get(r[5]), r[6])
                   for r in c.execute("SELECT id, task_run_id, attempt, time, level, logger, message FROM old_logs "
                                      "WHERE run_id = ?", (run_id,))])


