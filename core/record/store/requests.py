"""Requests to the process that owns a run (cancel it), or to the process that fires the
schedules (run a scheduled flow now: `run_id` then holds the flow's name), as rows that process polls.

No socket and no daemon: the asking process adds a row, the owner reads the rows for its runs
a few times a second, acts as if asked locally, and writes its answer in the row.
"""

from __future__ import annotations

import sqlite3
import time
from typing import NamedTuple

from .owners import Owner

CANCEL = "cancel"
RUN_NOW = "run now"  # a scheduled flow, outside its schedule (`t`), by the process that fires the schedules


class Request(NamedTuple):
    id: int
    run_id: str
    kind: str
    asked_by: str


def ask(c: sqlite3.Connection, run_id: str, kind: str, asked_by: str) -> int:
    return c.execute("INSERT INTO requests (run_id, kind, asked_by, asked) VALUES (?, ?, ?, ?)",
                     (run_id, kind, asked_by, time.time())).lastrowid


def open_for(c: sqlite3.Connection, owner: Owner) -> list[Request]:
    """The unanswered requests about runs `owner` records (one indexed read: usually none)."""
    rows = c.execute("SELECT requests.id, requests.run_id, kind, asked_by FROM requests "
                     "JOIN runs ON runs.run_id = requests.run_id "
                     "WHERE answered IS NULL AND runs.owner_pid = ? AND runs.owner_host = ? ORDER BY requests.id",
                     (owner.pid, owner.host)).fetchall()
    return [Request(*row) for row in rows]


def open_for_schedules(c: sqlite3.Connection) -> list[Request]:
    """The unanswered requests to whoever fires the schedules."""
    rows = c.execute("SELECT id, run_id, kind, asked_by FROM requests WHERE answered IS NULL AND kind = ? "
                     "ORDER BY id", (RUN_NOW,)).fetchall()
    return [Request(*row) for row in rows]


def answer(c: sqlite3.Connection, request_id: int, text: str) -> None:
    c.execute("UPDATE requests SET answered = ?, answer = ? WHERE id = ?", (time.time(), text, request_id))


def answer_of(c: sqlite3.Connection, request_id: int) -> str | None:
    row = c.execute("SELECT answer FROM requests WHERE id = ?", (request_id,)).fetchone()
    return None if row is None else row[0]
