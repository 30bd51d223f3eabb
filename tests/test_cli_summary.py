"""What `run`, `logs --follow` and `--help` print for a person reading a terminal."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import cli, wait_until, write_project

FLOWS = """
    import os
    import time
    from flows_tui import flow, task

    @task(retries=2, retry_delay_seconds=0)
    def flaky(marker: str) -> int:
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise ValueError("first try fails")
        return 1

    @task
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @task
    def explode():
        raise RuntimeError("kaboom")

    @flow
    def mixed(marker: str, seconds: float = 0.3):
        flaky(marker)
        naps = nap.map([seconds] * 4)
        explode.submit(wait_for=naps)
"""


def test_the_summary_counts_retries_shows_elapsed_time_and_each_failure_once(tmp_path):
    project = write_project(tmp_path, {"mixed.py": FLOWS})
    result = cli("run", "mixed", "-p", f"marker={tmp_path / 'marker'}", cwd=project)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    header = next(line for line in out.splitlines() if line.split()[:2] == ["task", "runs"])
    assert header.split() == ["task", "runs", "states", "retries", "elapsed"]
    flaky_row = next(line for line in out.splitlines() if line.split()[:1] == ["flaky"])
    assert flaky_row.split()[1] == "1/1" and flaky_row.split()[-2] == "1"  # one retry
    # Four naps of 0.3 s side by side on two threads: about 0.6 s of wall time, not 1.2 s of task time.
    nap_row = next(line for line in out.splitlines() if line.split()[:1] == ["nap"])
    elapsed = float(nap_row.split()[-1].rstrip("s"))
    assert 0.55 <= elapsed < 1.15, nap_row
    assert out.count("✗ Failed explode-0: RuntimeError: kaboom") == 1, out


def test_logs_follow_ends_with_how_the_run_ended(tmp_path):
    project = write_project(tmp_path, {"mixed.py": FLOWS})
    running = subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "run", "mixed", "-p",
                                f"marker={tmp_path / 'marker'}", "-p", "seconds=2", "--json"], cwd=project,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        def recorded_run() -> str | None:
            lines = cli("runs", "--json", cwd=project).stdout.splitlines()
            return json.loads(lines[0])["run_id"] if lines else None

        run_id = wait_until(recorded_run, timeout=60, interval=0.2, message="the run to be recorded")
        followed = cli("logs", run_id, "--follow", cwd=project, timeout=90)
    finally:
        running.wait(timeout=90)
    last = followed.stdout.strip().splitlines()[-1]
    assert re.match(rf"✗ Failed flow run 'mixed' \({run_id}\) in \d", last), followed.stdout


def test_help_lists_every_command_whole_at_80_columns(tmp_path):
    result = cli("--help", cwd=tmp_path, env={"COLUMNS": "80"})
    commands = result.stdout.split("Commands:", 1)[1].strip().splitlines()
    assert len(commands) >= 8
    for line in commands:
        assert not line.rstrip().endswith("...") and len(line) <= 80, line
