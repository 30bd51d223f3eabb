"""Schedules from flows.toml: how to describe them and when they fire next.

A cron expression is read in the flow's `timezone` (an IANA name), else in UTC, as
Prefect, cloud schedulers and Modal do: a server's local zone would make the same
flows.toml fire at different instants on different machines, so the description
always names the zone.

Daylight saving time follows classic cron (vixie cron), which is what a user who
writes a crontab expects:
- spring forward: a wall time that does not exist that day (02:30 in Europe/Berlin
  on the last Sunday of March) fires at the first instant after the gap (03:00);
- fall back: a job with a fixed hour fires once, at the first of the two repeated
  wall times; a job whose hour field is `*` (or `*/n`) fires every real hour, so
  `0 * * * *` runs at 02:00 summer time and again at 02:00 winter time.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo


if TYPE_CHECKING:
    from .config import FlowConfig

UTC = _dt.timezone.utc
# A due time older than this when the scheduler sees it was missed (serve was down, the
# machine slept): the catch-up policy decides. Younger ones fire as on time.
MISSED_AFTER = _dt.timedelta(seconds=60)
# At most this many missed due times are counted per schedule (an every-second schedule
# after a week of downtime must not spin).
MAX_MISSED = 10_000
DEFAULT_TIMEZONE = "UTC"


def format_interval(interval: _dt.timedelta) -> str:
    """The shortest text flows.toml accepts for `interval`: 90s → "1m30s", 1 day → "1d"."""
    seconds = interval.total_seconds()
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if seconds or not parts:
        parts.append(f"{seconds:g}s")
    return "".join(parts)


@dataclass(frozen=True, kw_only=True)
class ScheduleSettings:
    """When a flow runs by itself, and what to do on overlap and after downtime: what a
    `[flows.NAME]` table of flows.toml says (a FlowConfig is these settings and more) and what
    `flow.serve(...)` is given. A Schedule is these settings for one flow, with its run's parameters.
    """

    cron: str | None = None
    interval: _dt.timedelta | None = None
    timezone: str | None = None
    overlap: str = "skip"  # skip | queue | allow
    catchup: str = "skip"  # skip | once | all

    @property
    def scheduled(self) -> bool:
        return bool(self.cron or self.interval)

    @property
    def zone(self) -> _dt.tzinfo:
        """The zone its cron expression is read in (UTC unless `timezone` names one)."""
        return ZoneInfo(self.timezone) if self.timezone else UTC

    def describe(self) -> str:
        """"cron 0 * * * * (Europe/Berlin)", "every 5m", or "" without a schedule."""
        if self.cron:
            return f"cron {self.cron} ({self.timezone or DEFAULT_TIMEZONE})"
        if self.interval:
            return f"every {format_interval(self.interval)}"
        return ""

    def timing(self) -> tuple:
        """What decides when it fires (not what the run is given, nor the overlap and catch-up policies)."""
        return (self.cron, self.interval, self.timezone)


_SETTINGS = tuple(f.name for f in fields(ScheduleSettings))


def describe_schedule(flow_config: ScheduleSettings | None) -> str | None:
    """"cron 0 * * * * (Europe/Berlin)", "every 5m", or None for a flow without a schedule."""
    return (flow_config.describe() or None) if flow_config is not None else None


def next_run(flow_config: ScheduleSettings | None, now: _dt.datetime) -> _dt.datetime | None:
    """When the schedule fires next after `now` (timezone-aware), in the schedule's zone; None if unscheduled."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"next_run needs a timezone-aware time, got {now!r}")
    if flow_config is None:
        return None
    if flow_config.cron:
        return _next_cron(flow_config.cron, flow_config.zone, now)
    if flow_config.interval:
        # To the nearest whole second: sub-second precision is noise in a listing and in JSON.
        moment = now.astimezone(UTC) + flow_config.interval
        seconds = math.floor(moment.timestamp() + 0.5)
        return _dt.datetime.fromtimestamp(seconds, UTC).astimezone(flow_config.zone)
    return None


def _croniter() -> Any:
    """croniter (and dateutil under it), imported when a cron schedule is first read: a project with
    none, and the UI's first frame, do not pay for it."""
    from croniter import croniter

    return croniter


def _next_cron(expression: str, zone: _dt.tzinfo, now: _dt.datetime) -> _dt.datetime:
    croniter = _croniter()
    hour_is_wildcard = _hour_is_wildcard(expression)
    iterator = croniter(expression, now.astimezone(zone))
    # Each skipped candidate is a repeated wall time; a day has at most one such hour, so a
    # few steps always reach a firing time. The bound only guards against a croniter surprise.
    for _ in range(1000):
        candidate = _normalize(iterator.get_next(_dt.datetime), zone)
        if hour_is_wildcard or not _is_repeat(candidate):
            return candidate
    raise RuntimeError(f"cron {expression!r}: no firing time found after {now.isoformat()}")


_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
                ("day of week", 0, 7))


def cron_problem(expression: str) -> str | None:
    """What is wrong with a cron expression, field by field; None when croniter accepts it."""
    croniter = _croniter()
    if croniter.is_valid(expression):
        return None
    fields = expression.split()
    if expression.strip().startswith("@"):
        return "unknown alias (known: @hourly, @daily, @weekly, @monthly, @yearly)"
    if len(fields) != 5:
        return (f"expected five fields (minute hour day-of-month month day-of-week), got {len(fields)}, "
                'e.g. "0 * * * *"')
    for position, (field_text, (name, low, high)) in enumerate(zip(fields, _CRON_FIELDS)):
        alone = ["*"] * 5
        alone[position] = field_text
        if croniter.is_valid(" ".join(alone)):
            continue
        numbers = [int(n) for n in re.findall(r"\d+", field_text)]
        outside = [n for n in numbers if not low <= n <= high]
        if outside:
            return f"field {position + 1} ({name}) {field_text!r}: {outside[0]} is outside {low}-{high}"
        return f"field {position + 1} ({name}) {field_text!r} is not valid"
    return "the fields do not make a valid schedule together"


def _normalize(moment: _dt.datetime, zone: _dt.tzinfo) -> _dt.datetime:
    """Through UTC and back: the offset and `fold` then say which of two repeated wall times it is."""
    return moment.astimezone(UTC).astimezone(zone)


def _is_repeat(moment: _dt.datetime) -> bool:
    """The second occurrence of a wall time repeated when the clocks go back."""
    return moment.fold == 1 and moment.replace(fold=0).utcoffset() != moment.utcoffset()


_ALIASES_WITH_WILDCARD_HOUR = {"@hourly"}


def _hour_is_wildcard(expression: str) -> bool:
    """vixie cron's rule: an hour field starting with `*` means "every hour", not a fixed hour."""
    expression = expression.strip()
    if expression.startswith("@"):
        return expression.lower() in _ALIASES_WITH_WILDCARD_HOUR
    fields = expression.split()
    return len(fields) > 1 and fields[1].startswith("*")


@dataclass(frozen=True)
class Schedule(ScheduleSettings):
    """A flow's schedule, as the Scheduler fires it: the settings, and the parameters its runs get."""

    flow: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, flow: str, flow_config: "FlowConfig | None") -> "Schedule | None":
        """The schedule `[flows.KEY]` gives the flow named `flow`; None without cron or interval."""
        if flow_config is None or not flow_config.scheduled:
            return None
        return cls(flow, dict(flow_config.parameters), **{name: getattr(flow_config, name) for name in _SETTINGS})

    def next_after(self, moment: _dt.datetime) -> _dt.datetime:
        """The first due time strictly after `moment`."""
        if self.cron:
            return _next_cron(self.cron, self.zone, moment)
        assert self.interval is not None
        return moment + self.interval


def first_due(schedule: Schedule, last_due: _dt.datetime | None, now: _dt.datetime) -> _dt.datetime:
    """When a schedule is due once served: after the due time it last fired for, else from now.

    An interval schedule that never fired is due at once, so "every hour" runs when first served.
    """
    if last_due is not None:
        return schedule.next_after(last_due)
    return schedule.next_after(now) if schedule.cron else now


def next_start(schedule: Schedule, due: _dt.datetime, now: _dt.datetime) -> _dt.datetime:
    """When a schedule due at `due` starts its next run, as the scheduler's tick handles what fell due
    by `now`: a due time more than MISSED_AFTER past was missed, and with catchup = "skip" starts
    nothing (the next one after now does); the others start at once."""
    if due > now:
        return due
    last = due
    for _ in range(MAX_MISSED):
        following = schedule.next_after(last)
        if following > now:
            break
        last = following
    if schedule.catchup != "skip" or now - last <= MISSED_AFTER:
        return now
    return schedule.next_after(last)


def due_when_served(schedule: Schedule, last_due: _dt.datetime | None, last_timing: str | None,
                    now: _dt.datetime) -> _dt.datetime:
    """When a schedule is due as `serve` (or the UI) starts, given what the store says of it.

    It resumes where it left off, unless its timing changed since it last fired (`last_timing`):
    then it starts afresh, as `first_due_after_change` says.
    """
    if last_due is not None and last_timing is not None and last_timing != schedule.describe():
        return first_due_after_change(schedule, last_due, now)
    return first_due(schedule, last_due, now)


def first_due_after_change(schedule: Schedule, last_due: _dt.datetime | None, now: _dt.datetime) -> _dt.datetime:
    """When a schedule whose timing was just changed (flows.toml saved while served) is due.

    Due times before the change were never due: none of them fires, whatever `catchup` says.
    An interval keeps its rhythm from the last run it fired (the first such time after now);
    a cron expression fires at its next time after now.
    """
    if schedule.cron or last_due is None:
        return first_due(schedule, None, now) if last_due is None else schedule.next_after(now)
    assert schedule.interval is not None
    due = schedule.next_after(last_due)
    if due <= now:
        steps = (now - due) // schedule.interval + 1
        due += steps * schedule.interval
    return due
