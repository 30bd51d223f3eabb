"""Pruning history: the runs older than a cutoff, or beyond the newest N, with everything they recorded.

A run still in flight is never removed. What is removed is gone from every table in one
transaction; the pages it took are free for the next runs inside the same file, and only a
`VACUUM` (asked for, since it rewrites the whole file) gives them back to the disk. Cached
task results live under `state_dir/cache` and keep their own expiry.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from dataclasses import dataclass

from .rows import iso

# Tables that hold a run's history, each with how its rows name their run ({} the run ids), by an index.
_RUNS = "SELECT id FROM runs WHERE run_id IN ({})"
_TASKS = f"SELECT id FROM task_runs WHERE run IN ({_RUNS})"
_HISTORY = {"logs": f"run IN ({_RUNS})", "attempts": f"task IN ({_TASKS})", "task_states": f"task IN ({_TASKS})",
            "task_runs": f"run IN ({_RUNS})", "run_states": "run_id IN ({})", "requests": "run_id IN ({})",
            "runs": "run_id IN ({})"}
# Run ids per DELETE statement: SQLite binds at most 32,766 variables.
_CHUNK = 500


@dataclass(frozen=True)
class Pruned:
    """What a prune removed."""

    runs: int = 0
    task_runs: int = 0
    log_lines: int = 0
    bytes: int = 0  # the data in those rows (without SQLite's own overhead), now room for new runs

    def describe(self) -> str:
        from flows_tui.record.progress import format_size

        if not self.runs:
            return "nothing to remove"
        return (f"removed {self.runs:,} run{'s' if self.runs != 1 else ''}, {self.task_runs:,} task run"
                f"{'s' if self.task_runs != 1 else ''}, {self.log_lines:,} log line"
                f"{'s' if self.log_lines != 1 else ''} (about {format_size(self.bytes)} of data)")


def runs_to_prune(c: sqlite3.Connection, older_than: _dt.timedelta | None, keep: int | None,
                  now: _dt.datetime) -> list[str]:
    """The ended runs that started before `now - older_than`, or are not among the newest `keep`."""
    doomed: set[str] = set()
    if older_than is not None:
        cutoff = iso(now - older_than)
        doomed.update(row[0] for row in c.execute(
            "SELECT run_id FROM runs WHERE ended IS NOT NULL AND started < ?", (cutoff,)))
    if keep is not None:
        doomed.update(row[0] for row in c.execute(
            "SELECT run_id FROM runs WHERE ended IS NOT NULL AND run_id NOT IN "
            "(SELECT run_id FROM runs ORDER BY started DESC LIMIT ?)", (max(0, keep),)))
    return sorted(doomed)


def _data_bytes(c: sqlite3.Connection, table: str, where: str, args: list) -> int:
    """The bytes of the values in `table`'s rows matching `where` (as SQLite's length() counts them)."""
    columns = [row[1] for row in c.execute(f"PRAGMA table_info({table})")]
    total = " + ".join(f"coalesce(length({column}), 0)" for column in columns)
    return c.execute(f"SELECT coalesce(sum({total}), 0) FROM {table} WHERE {where}", args).fetchone()[0]


def prune(c: sqlite3.Connection, older_than: _dt.timedelta | None, keep: int | None,
          now: _dt.datetime) -> Pruned:
    """Remove the runs `runs_to_prune` picks, in one transaction; returns what went."""
    c.execute("BEGIN IMMEDIATE")
    try:
        run_ids = runs_to_prune(c, older_than, keep, now)
        if not run_ids:
            c.execute("ROLLBACK")
            return Pruned()
        task_runs = log_lines = data = 0
        for start in range(0, len(run_ids), _CHUNK):
            chunk = run_ids[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for table, where in _HISTORY.items():
                data += _data_bytes(c, table, where.format(marks), chunk)
                deleted = c.execute(f"DELETE FROM {table} WHERE {where.format(marks)}", chunk).rowcount
                if table == "task_runs":
                    task_runs += deleted
                elif table == "logs":
                    log_lines += deleted
        # The journal's copies of what those runs did: rows older than every run kept are no one's
        # history any more (a tail that had not read them is told to reload, as after a trim).
        oldest = c.execute("SELECT min(started) FROM runs").fetchone()[0]
        since = _dt.datetime.fromisoformat(oldest).timestamp() if oldest is not None else now.timestamp()
        data += _data_bytes(c, "journal", "time < ?", [since])
        c.execute("DELETE FROM journal WHERE time < ?", (since,))
        c.execute("COMMIT")
    except BaseException:
        if c.in_transaction:
            c.execute("ROLLBACK")
        raise
    return Pruned(len(run_ids), task_runs, log_lines, data)
