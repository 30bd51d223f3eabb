"""The journal: every committed batch of events, as rows with increasing ids, for any process to tail.

Each `Store.record` transaction appends one row holding its events, so a process that reads
the rows after the last id it saw gets exactly what was committed since, in commit order
(SQLite serialises writers, and AUTOINCREMENT never reuses an id). Log lines are not copied:
a batch's lines are referred to by the range of their ids in `logs`, read back with them.

The journal only serves live tailing: what it holds is in the tables too. Rows older than
`GRACE_SECONDS` (and beyond the last `KEPT_ROWS`) are trimmed when a store is opened for
writing, when a run ends and every `TRIM_EVERY` batches, so a store at rest keeps next to
none of them; a reader that fell further behind is told to resynchronise
(`JournalRead.resync`) and rebuilds what is in flight from the tables.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import operator
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from flows_tui.record import events as ev
from flows_tui.states import FINAL_STATES

from .compact import Clock
from .rows import iso, parse_time, to_json

KEPT_ROWS = 100_000
GRACE_SECONDS = 60.0  # a tail polls every 50 ms: one a minute behind reloads instead
TRIM_EVERY = 500  # batches a writer commits between trims, so a long run's journal stays short too

_TYPES = {cls.__name__: cls for cls in (ev.FlowRunStarted, ev.FlowStateChanged, ev.TaskRunCreated,
                                        ev.TaskStateChanged, ev.AttemptStarted, ev.AttemptEnded)}
_TIMES = ("time", "retry_at")


@dataclass(frozen=True)
class JournalRead:
    """What `Store.follow` found: the events after `after`, and the id to read from next time."""

    last: int
    entries: list  # (journal row id, event), in commit order
    more: bool = False  # the read stopped at its limit: more rows wait
    resync: bool = False  # rows the reader had not read were trimmed: reload what it shows

    @property
    def events(self) -> list:
        return [event for _, event in self.entries]


def encode(event: Any, log_ids: tuple[int, int] | None = None) -> list:
    """One event as JSON-ready data; LogLines as the range of its rows in `logs`.

    The fields go by position, in the event type's order, without the ones left at None at
    the end: a big run's journal is mostly task-run events, and their field names and nulls
    took half its bytes (~900 per task run). `decode` reads this and the older form by name.
    """
    kind = type(event)
    if kind is ev.LogLines:
        assert log_ids is not None
        return ["LogLines", {"run_id": event.run_id, "first": log_ids[0], "last": log_ids[1]}]
    fields, times = _shape(kind)
    values = list(fields(event))
    for index in times:  # only these hold moments (`decode` reads them back)
        value = values[index]
        if isinstance(value, _dt.datetime):
            values[index] = _text(value)
    while values and values[-1] is None:
        values.pop()
    return [kind.__name__, values]


_last_time: tuple[Any, str | None] = (None, None)


def _text(moment: _dt.datetime) -> str | None:
    """`iso(moment)`, remembered for the last moment: a task run's start and its Running state, its
    end and its final state, a map's creations, carry one datetime object (isoformat was a third of
    the journal's time)."""
    global _last_time
    last = _last_time
    if last[0] is moment:
        return last[1]
    text = iso(moment)
    _last_time = (moment, text)
    return text


def _names(kind: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(field.name for field in dataclasses.fields(kind))
    return names


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _shape(kind: type) -> tuple[Any, tuple[int, ...]]:
    """What reads an event's fields in one call (a big run's journal encodes hundreds of thousands),
    and the places of its moments among them."""
    shape = _SHAPES.get(kind)
    if shape is None:
        names = _names(kind)
        getter = operator.attrgetter(*names) if len(names) > 1 else (lambda event: (getattr(event, names[0]),))
        shape = _SHAPES[kind] = (getter, tuple(index for index, name in enumerate(names) if name in _TIMES))
    return shape


_SHAPES: dict[type, tuple[Any, tuple[int, ...]]] = {}


def append(c: sqlite3.Connection, entries: list, writer: str | None) -> None:
    """Add one row for a transaction's events (already `encode`d), inside that transaction."""
    if entries:
        c.execute("INSERT INTO journal (time, writer, events) VALUES (?, ?, ?)",
                  (time.time(), writer, to_json(entries)))


def head(c: sqlite3.Connection) -> int:
    """The id of the last row (0 for none)."""
    return c.execute("SELECT coalesce(max(id), 0) FROM journal").fetchone()[0]


def read(c: sqlite3.Connection, after: int, skip_writer: str | None, limit: int) -> JournalRead:
    """The events of the rows after `after` (at most `limit` rows), leaving out `skip_writer`'s own."""
    rows = c.execute("SELECT id, writer, events FROM journal WHERE id > ? ORDER BY id LIMIT ?",
                     (after, limit)).fetchall()
    resync = False
    if after and (not rows or rows[0]["id"] > after + 1):
        first, last = c.execute("SELECT min(id), max(id) FROM journal").fetchone()
        # Rows it had not read were trimmed, or the store was replaced by a younger one.
        resync = (first is not None and first > after + 1) or (last or 0) < after
    entries: list = []
    for row in rows:
        if skip_writer is not None and row["writer"] == skip_writer:
            continue
        for name, fields in json.loads(row["events"]):
            if name == "LogLines":
                entries.append((row["id"], _log_lines(c, fields["run_id"], fields["first"], fields["last"])))
            else:
                entries.append((row["id"], decode(name, fields)))
    return JournalRead(rows[-1]["id"] if rows else after, entries, len(rows) == limit, resync)


def decode(name: str, fields: dict | list) -> Any:
    cls = _TYPES[name]
    values = dict(zip(_names(cls), fields)) if isinstance(fields, list) else dict(fields)
    for key in _TIMES:
        if key in values:
            values[key] = parse_time(values[key])
    if "upstream" in values:
        values["upstream"] = tuple(values["upstream"])
    return cls(**values)


def _log_lines(c: sqlite3.Connection, run_id: str, first: int, last: int) -> ev.LogLines:
    # Plain tuples: a tail reads every line a run logs (10,000 a second, say).
    cursor = c.cursor()
    cursor.row_factory = None
    started = cursor.execute("SELECT started FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if started is None:
        return ev.LogLines(run_id, ())
    at = Clock(started[0]).at
    rows = cursor.execute("SELECT l.time, l.level, l.message, t.task_run_id, l.attempt, n.text, l.id FROM logs l "
                          "LEFT JOIN task_runs t ON t.id = l.task LEFT JOIN names n ON n.id = l.logger "
                          "WHERE l.id BETWEEN ? AND ? ORDER BY l.id", (first, last)).fetchall()
    return ev.LogLines(run_id, tuple(ev.LogLine(at(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows))


def trim_when_due(c: sqlite3.Connection, batches: int, events: list) -> None:
    """After a writer's `batches`-th batch: trim when a run ended in it, or every TRIM_EVERY batches."""
    if batches % TRIM_EVERY == 0 or any(type(e) is ev.FlowStateChanged and e.state in FINAL_STATES for e in events):
        trim(c)


def trim(c: sqlite3.Connection, now: float | None = None) -> None:
    """Remove the rows older than GRACE_SECONDS and beyond the last KEPT_ROWS, always keeping the
    last row (a tail tells a trim from a younger store by it). Deleting by id range costs only the
    rows deleted; the newest old row is found from the end, reading only the rows of the grace."""
    last = c.execute("SELECT max(id) FROM journal").fetchone()[0]
    if last is None:
        return
    cutoff = (time.time() if now is None else now) - GRACE_SECONDS
    old = c.execute("SELECT id FROM journal WHERE time < ? ORDER BY id DESC LIMIT 1", (cutoff,)).fetchone()
    upto = max(old[0] if old else 0, last - KEPT_ROWS)
    upto = min(upto, last - 1)
    if upto > 0 and c.execute("SELECT 1 FROM journal WHERE id <= ? LIMIT 1", (upto,)).fetchone():
        c.execute("DELETE FROM journal WHERE id <= ?", (upto,))  # else no write lock is taken
