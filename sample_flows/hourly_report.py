"""Hourly report: "run this every hour; if it fails, ping me on Slack".

Every hour (`cron = "0 * * * *"` under `[flows.hourly_report]` in flows.toml) it
loads the last full hour of events from `source` (generated: the same hour always
gives the same events), checks there are at least `min_rows`, and writes a small
JSON report under `data_dir`. A run that fails sends the `[notify.slack]` message
configured in flows.toml.

Bad input fails clearly, in one of two ways. A value of the wrong type or outside
a Literal (`-p source=clicks`) is rejected before anything runs (exit 2). A value
the tasks reject (`-p min_rows=-1`), or an hour with fewer rows than `min_rows`,
is a Failed run (exit 1) that names the parameter, and notifies.

    flows-tui run hourly_report -p source=payments
    flows-tui run hourly_report -p hour=2024-05-01T13:00 -p min_rows=5000   # fails: too few rows
    flows-tui serve                                                          # every hour, headless
"""

import datetime as _dt
import json
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from flows_tui import flow, get_run_logger, task

Source = Literal["orders", "payments", "signups"]
EVENTS_PER_HOUR = {"orders": 2400, "payments": 1800, "signups": 300}


def report_hour(hour: _dt.datetime | None) -> _dt.datetime:
    """The start of the hour to report on: the given one, else the last full hour (UTC)."""
    if hour is None:
        hour = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(hours=1)
    elif hour.tzinfo is None:
        hour = hour.replace(tzinfo=_dt.timezone.utc)
    return hour.astimezone(_dt.timezone.utc).replace(minute=0, second=0, microsecond=0)


@task
def load_events(source: str, start: _dt.datetime) -> pd.DataFrame:
    # Seeded by source and hour, so a re-run of an hour reports the same figures.
    rng = np.random.default_rng(zlib.crc32(f"{source} {start:%Y-%m-%dT%H}".encode()))
    rows = int(rng.poisson(EVENTS_PER_HOUR[source]))
    return pd.DataFrame({
        "time": start + pd.to_timedelta(np.sort(rng.uniform(0, 3600, rows)), unit="s"),
        "amount": rng.gamma(2.0, 20.0, rows).round(2) if source != "signups" else np.zeros(rows),
        "latency_ms": rng.lognormal(4.5, 0.6, rows).round(1),
        "status": rng.choice(["ok", "failed"], rows, p=[0.97, 0.03]),
    })


@task
def check_row_count(events: pd.DataFrame, min_rows: int, source: str, start: _dt.datetime) -> int:
    if min_rows < 0:
        raise ValueError(f"parameter min_rows must be 0 or more, got {min_rows}")
    if len(events) < min_rows:
        raise ValueError(f"only {len(events)} {source} rows in the hour from {start:%Y-%m-%d %H:%M} UTC, "
                         f"fewer than min_rows={min_rows}: is the source late?")
    return len(events)


@task
def summarize_hour(events: pd.DataFrame, source: str, start: _dt.datetime) -> dict:
    return {
        "source": source,
        "hour": start.isoformat(),
        "rows": len(events),
        "failed_share": round(float((events["status"] == "failed").mean()), 4),
        "amount": round(float(events["amount"].sum()), 2),
        "p95_latency_ms": round(float(events["latency_ms"].quantile(0.95)), 1),
    }


@task
def write_report(report: dict, directory: str) -> dict:
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{report['source']}-{report['hour'][:13]}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    get_run_logger().info("%s %s: %d rows, %.1f%% failed, amount %.2f, p95 latency %.0f ms → %s",
                          report["source"], report["hour"], report["rows"], report["failed_share"] * 100,
                          report["amount"], report["p95_latency_ms"], path)
    return {**report, "path": str(path)}


@flow(name="hourly_report")
def hourly_report(source: Source = "orders", min_rows: int = 100, hour: _dt.datetime | None = None,
                  data_dir: str = ".flows-tui/data") -> dict:
    start = report_hour(hour)
    # Submitted, not called: the events go from worker to worker, never through this process.
    events = load_events.submit(source, start)
    # Called: the flow waits for the check, and a rejected value ends the run here with its message.
    check_row_count(events, min_rows, source, start)
    report = summarize_hour.submit(events, source, start)
    # Resolved here, in the process driving the flow, so the path does not depend on a worker's directory.
    return write_report(report, str(Path(data_dir).resolve() / "hourly_report"))


if __name__ == "__main__":
    print(hourly_report())
