"""Requests to the process that owns a run (cancel it), or to the process that fires the
schedules (run a scheduled flow now: `run_id` then holds the flow's name), as rows that process polls.

No socket and no daemon: the asking process adds a row, the owner reads the rows for its runs
a few times a second, acts as if asked locally, and writes its answer in the row.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Callable, NamedTuple

from flows_tui.errors import UsageError
from flows_tui.project.config import display_path

from .owners import Owner, owner_alive

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


class StoreRequests:
    """The store's side of requests; `Store` gives them its connections and its owner."""

    path: Any
    read_only: Any
    _owner: Owner

    def _connection(self) -> Any:
        raise NotImplementedError

    def _error(self, doing: str, error: BaseException) -> Exception:
        raise NotImplementedError

    def run_owner(self, run_id: str) -> tuple[str, str | None, Owner, bool]:
        """(state, when it ended, its owner, whether that process still runs) of a recorded run."""
        with self._connection() as c:
            row = c.execute("SELECT state, ended, owner_host, owner_pid, owner_started, owner_command FROM runs "
                            "WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise UsageError(f"no run {run_id!r} in {display_path(self.path)} (`flows-tui runs` lists them)")
        owner = Owner(row["owner_host"], row["owner_pid"], row["owner_started"], row["owner_command"])
        return row["state"], row["ended"], owner, owner_alive(owner.host, owner.pid, owner.started)

    def ask(self, run_id: str, kind: str, asked_by: str) -> int:
        """Add a request for the owner of `run_id`; its id, to read the answer by."""
        return self._write_request(lambda c: ask(c, run_id, kind, asked_by))

    def answer(self, request_id: int, text: str) -> None:
        self._write_request(lambda c: answer(c, request_id, text))

    def answer_of(self, request_id: int) -> str | None:
        with self._connection() as c:
            return answer_of(c, request_id)

    def requests_for_me(self, schedules: bool = False) -> list[Request]:
        """Unanswered requests about the runs this process records (or with `schedules`, for the process firing them)."""
        if self.read_only is not None:
            return []
        with self._connection() as c:
            return open_for_schedules(c) if schedules else open_for(c, self._owner)

    def _write_request(self, write: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            with self._connection() as c:
                return write(c)
        except sqlite3.Error as error:
            raise self._error("update", error) from None
