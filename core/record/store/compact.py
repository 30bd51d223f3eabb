"""How the task runs' rows are kept small: a big map writes hundreds of thousands of them.

Since schema 7 a task run is one row with an integer id that its states, attempts and log
lines refer to (not its 16-character id again); states are small integers; times are whole
microseconds after the run's start (a few bytes, exact, not 32 characters of ISO text);
worker addresses and logger names are written once in `names` and referred to by number;
a task run's name is left out when it is the task's name with its map index.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
from typing import Any

from .rows import parse_time

# A state as the number of its place here (never reordered: rows hold these numbers); a state
# not listed is written as its name.
STATES = ("Pending", "Scheduled", "Running", "Retrying", "Completed", "Cached", "Failed", "TimedOut",
          "Crashed", "Cancelled", "NotRun")
_CODES = {state: code for code, state in enumerate(STATES)}

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_MICROSECOND = _dt.timedelta(microseconds=1)

# A task run's name as `logs` and the tree show it, from a `task_runs` row aliased `t`.
NAME_SQL = ("coalesce(t.name, CASE WHEN t.map_index IS NULL THEN t.task "
            "ELSE t.task || '-' || t.map_index END)")


def code(state: str) -> int | str:
    return _CODES.get(state, state)


def state_of(value: int | str) -> str:
    return STATES[value] if isinstance(value, int) else value


def micros(moment: _dt.datetime) -> int:
    if moment.tzinfo is None:  # times are UTC everywhere; a naive one is read as UTC
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return (moment - EPOCH) // _MICROSECOND


def moment(value: int) -> _dt.datetime:
    return EPOCH + _dt.timedelta(microseconds=value)


def short_name(task: str, name: str, map_index: int | None) -> str | None:
    """None when the name says nothing more than the task and map index (NAME_SQL gives it back)."""
    return None if name == (task if map_index is None else f"{task}-{map_index}") else name


class Runs:
    """Within one transaction: each run's integer id and the start its rows' times count from."""

    def __init__(self, c: sqlite3.Connection) -> None:
        self.c = c
        self._known: dict[str, tuple[int, int] | None] = {}

    def get(self, run_id: str) -> tuple[int, int] | None:
        if run_id not in self._known:
            row = self.c.execute("SELECT id, started FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            self._known[run_id] = None if row is None else (row[0], micros(parse_time(row[1])))
        return self._known[run_id]

    def forget(self, run_id: str) -> None:
        self._known.pop(run_id, None)


class Clock:
    """Times of one run's rows, read back: offsets from its start, as datetimes (`at`, a plain
    function: a big run's replay calls it 700,000 times)."""

    def __init__(self, started: str) -> None:
        self.base = micros(parse_time(started))
        start, delta = EPOCH + _dt.timedelta(microseconds=self.base), _dt.timedelta
        self.at = lambda offset: None if offset is None else start + delta(0, 0, offset)


def intern(c: sqlite3.Connection, texts: Any) -> None:
    """Give each text (a worker's address, a logger's name) its row in `names` if it has none."""
    fresh = {text for text in texts if text is not None}
    if fresh:
        c.executemany("INSERT OR IGNORE INTO names (text) VALUES (?)", [(text,) for text in fresh])


NAME_ID = "(SELECT id FROM names WHERE text = ?)"
