"""`flows-tui init`: a new project folder with one flow and a commented flows.toml."""

from __future__ import annotations

from pathlib import Path

from flows_tui.errors import UsageError

FIRST_FLOW = '''\
"""A first flow: clean chunks of numbers in parallel, then pick the best of each.

    flows-tui run riders -p chunks=8     # headless: live progress, a summary, exit 0/1/2
    flows-tui                            # the UI: r runs it, p asks for parameters
"""

from flows_tui import flow, task, unmapped


@task(retries=3, retry_delay_seconds=2)
def clean(rows: list[int]) -> list[int]:
    return [r for r in rows if r >= 0]


@task
def best(rows: list[int], limit: int) -> int:
    return max(r for r in rows if r <= limit)


@flow(name="riders", log_prints=True)
def riders(chunks: int = 4, limit: int = 10_000):
    data = [[i, -1, i * 7] for i in range(chunks)]
    cleaned = clean.map(data)                   # one task run per chunk, in parallel
    bests = best.map(cleaned, unmapped(limit))  # futures go in as arguments
    print("best of all:", max(b.result() for b in bests))
'''

CONFIG = '''\
# flows-tui configuration: every key is optional. Reference: the README's flows.toml section.

[project]
flows_dir = "flows"               # where the flow files are
state_dir = ".flows-tui"          # run history (SQLite) and cached results; created by the first run
# log_level = "INFO"              # what runs capture from logging, print and warnings

[cluster]                         # no address: an embedded Dask LocalCluster
n_workers = 2
threads_per_worker = 1
processes = true
# address = "tcp://127.0.0.1:8786"   # attach to a Dask scheduler that already runs

# A schedule, for `flows-tui serve` (and the UI while it is open):
# [flows.riders]
# interval = "1h"                 # or cron = "0 * * * *" (with timezone = "Europe/Berlin")
# parameters = { chunks = 6 }

# A Slack message when a run fails. While SLACK_WEBHOOK_URL is not set, this notifier is off
# (flows-tui says so once at start); ${VAR:-default} gives a default.
# [notify.slack]
# webhook_url = "${SLACK_WEBHOOK_URL}"
# on = ["Failed", "Crashed"]
'''

IGNORE = ".flows-tui/\n__pycache__/\n"


def create_project(directory: Path) -> list[Path]:
    """Write flows/riders.py, flows.toml and (if there is none) .gitignore under `directory`.

    Returns what was written. Nothing is overwritten: when the flow or flows.toml exists
    already, nothing is written at all.
    """
    files = {
        directory / "flows" / "riders.py": FIRST_FLOW,
        directory / "flows.toml": CONFIG,
    }
    existing = [path for path in files if path.exists()]
    if existing:
        names = ", ".join(str(path) for path in existing)
        raise UsageError(f"{names} already exist{'s' if len(existing) == 1 else ''}: nothing was written "
                         "(init starts a new project; pick an empty or new folder)")
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is a file, not a folder")
    if not (directory / ".gitignore").exists():
        files[directory / ".gitignore"] = IGNORE
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)
