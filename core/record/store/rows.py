"""What the store's queries return, and how values are written in its columns."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

from flows_tui.record import events as ev


class ScheduleState(NamedTuple):
    last_due: _dt.datetime | None = None  # the due time it last fired for (or passed over)
    paused: bool = False
    timing: str | None = None  # how it was timed then ("every 30s"); None in stores older than that


@dataclass(frozen=True)
class RunSummary:
    """One line of `flows-tui runs`."""

    run_id: str
    flow: str
    state: str
    started: _dt.datetime
    ended: _dt.datetime | None
    error: str | None = None  # why it did not complete: the first failure's message
    owner: dict[str, Any] | None = None  # the process that ran it: host, pid, command
    cluster: str | None = None  # the cluster that ran it: its profile, else its class or address

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else (self.ended - self.started).total_seconds()

    def document(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "flow": self.flow, "state": self.state, "started": iso(self.started),
                "ended": iso(self.ended), "error": self.error, "owner": self.owner, "cluster": self.cluster}


@dataclass(frozen=True)
class StoredLine:
    """A log line as stored, with the name of the task run it came from (None for the flow)."""

    id: int
    run_id: str
    task: str | None
    line: ev.LogLine

    def document(self) -> dict[str, Any]:
        return {"time": iso(self.line.time), "level": logging.getLevelName(self.line.level), "task": self.task,
                "task_id": self.line.task_run_id, "message": self.line.message}


def iso(moment: _dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def parse_time(text: str | None) -> _dt.datetime | None:
    return None if text is None else _dt.datetime.fromisoformat(text)


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def to_json(value: Any) -> str:
    from flows_tui.parameters import json_default

    return json.dumps(value, default=json_default)


def encodable(value: Any) -> Any:
    """`value` (an event, or anything in one) with every string UTF-8 can encode: surrogates as `\\udce9`."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (tuple, list)):
        return type(value)(encodable(item) for item in value)
    if isinstance(value, dict):
        return {encodable(key): encodable(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: encodable(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    return value

