"""`flow.to_deployment(...)` and `serve(*deployments)`: Prefect 3's way to serve several flows
from one script, here without a server.

    if __name__ == "__main__":
        serve(hourly.to_deployment("hourly", interval=3600),
              nightly.to_deployment("nightly", cron="0 2 * * *", parameters={"full": True}))

runs each flow on its schedule, headless, in one session (one cluster), as `flows-tui serve`
does for the schedules in flows.toml. A deployment here is only that: a flow, a schedule and
parameters. Prefect's server-side options (work pools, images, triggers) are not read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .definitions import BANNED_NAME_CHARACTERS

_SCHEDULE_OPTIONS = ("interval", "cron", "rrule", "schedule", "schedules")


@dataclass
class RunnerDeployment:
    """A flow with the schedule and parameters it is served with (Prefect's RunnerDeployment)."""

    name: str
    flow: Any  # Flow
    cron: str | None = None
    interval: Any = None
    timezone: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    version: str | None = None
    storage: Any = None  # where the flow was loaded from (`Flow.from_source`), as Prefect keeps it


def to_deployment(flow: Any, name: str, *, interval: Any = None, cron: str | None = None, rrule: Any = None,
                  schedule: Any = None, schedules: Any = None, parameters: dict[str, Any] | None = None,
                  description: str | None = None, tags: list[str] | None = None, version: str | None = None,
                  timezone: str | None = None, **ignored: Any) -> RunnerDeployment:
    """Prefect's checks and messages; a schedule this cannot run (rrule, schedule objects) is refused."""
    from .exceptions import InvalidNameError

    given = {"interval": interval, "cron": cron, "rrule": rrule, "schedule": schedule, "schedules": schedules}
    if sum(given[option] is not None for option in _SCHEDULE_OPTIONS) > 1:
        raise ValueError("Only one of interval, cron, rrule, schedule, or schedules can be provided.")
    if not isinstance(name, str) or any(character in name for character in BANNED_NAME_CHARACTERS):
        raise InvalidNameError(f"Name {name!r} contains an invalid character. "
                               f"Must not contain any of: {BANNED_NAME_CHARACTERS}.")
    for option in ("rrule", "schedule", "schedules"):
        if given[option] is not None:
            raise ValueError(f"{flow.name}.to_deployment({name!r}): {option}= is not supported here; "
                             "give cron=... or interval=...")
    return RunnerDeployment(name, flow, cron, interval, timezone, dict(parameters or {}),
                            description or flow.description, list(tags or []), version or flow.version,
                            getattr(flow, "_storage", None))
