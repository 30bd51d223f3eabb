"""A stored log line as `logs --json` prints it, written straight from its row.

The text is exactly `json.dumps(StoredLine.document())`: the same keys in the same order, the
strings escaped by the same C function `json.dumps` uses (every control character and every
non-ASCII character as `\\uXXXX`). Built without the dict, the datetime and the encoder's
machinery, a line costs a fraction of a microsecond more than reading its row: `logs --json`
of a 100,000-task run was two thirds encoding.
"""

from __future__ import annotations

import datetime as _dt
import logging
from json.encoder import encode_basestring_ascii as _quoted  # what json.dumps escapes strings with
from typing import Callable

from .compact import EPOCH


def line_document(base: int) -> Callable[[int, int, str | None, str | None, str], str]:
    """A function of a line's (time, level, task name, task run id, message) giving its JSON text, for
    the lines of a run whose times count from `base` (microseconds since the epoch, `Clock.base`)."""
    levels: dict[int, str] = {}
    second, stamp = None, ""  # the last second a line was stamped with, in ISO text without its zone

    def document(time: int, level: int, task: str | None, task_id: str | None, message: str) -> str:
        nonlocal second, stamp
        whole, micro = divmod(base + time, 1_000_000)
        if whole != second:  # lines come in time order, many in a second: one isoformat per second
            second, stamp = whole, (EPOCH + _dt.timedelta(seconds=whole)).replace(tzinfo=None).isoformat()
        when = f"{stamp}.{micro:06d}+00:00" if micro else f"{stamp}+00:00"  # as datetime.isoformat() in UTC
        name = levels.get(level)
        if name is None:
            name = levels[level] = _quoted(logging.getLevelName(level))
        return (f'{{"time": "{when}", "level": {name}, "task": {"null" if task is None else _quoted(task)}, '
                f'"task_id": {"null" if task_id is None else _quoted(task_id)}, "message": {_quoted(message)}}}')

    return document
