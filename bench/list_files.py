"""`flows-tui list` and `flows-tui check` on a flows directory of many files: wall time per command.

    python bench/list_files.py [--files 50] [--repeat 5] [--library dask.dataframe]

Builds `--files` flow files (two tasks, a flow with parameters, a shared helper import each,
and `--library`, an installed library each file imports, as real flow files do)
and a flows.toml giving one flow parameters and a schedule, in a temporary folder, then runs
each command `--repeat` times as a user would (a fresh `python -m flows_tui.cli`). The
baseline is the same command start without a flows directory to read (`flows-tui --version`).
Prints the medians; the machine's load beside them, since other work shares its cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELPER = '''
def clean_row(row):
    return row.strip().lower()
'''

FLOW = '''
import datetime
{library}
from flows_tui import flow, task
from _helpers import clean_row


@task
def extract_{n}(rows):
    return [clean_row(row) for row in rows]


@task
def count_{n}(rows):
    return len(rows)


@flow(name="flow-{n}")
def flow_{n}(rows: list = ["A ", " b"], day: datetime.date = datetime.date(2024, 1, 1), limit: int = 3):
    cleaned = extract_{n}(rows)
    return count_{n}(cleaned)
'''

TOML = '''
[project]
flows_dir = "flows"

[flows.flow-0]
parameters = {{ limit = 5 }}
interval = "1h"
'''


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time, and CPU time of the command and every process it started (steadier on a busy machine)."""
    environment = {**os.environ, "NO_COLOR": "1"}
    environment.pop("DASK_SCHEDULER_ADDRESS", None)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            out.seek(0)
            raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {out.read()[-2000:]!r}")
    return elapsed, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--library", default="", help="an installed module every file imports")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        flows = project / "flows"
        flows.mkdir()
        (flows / "_helpers.py").write_text(HELPER)
        for n in range(options.files):
            (flows / f"flow_{n:03d}.py").write_text(FLOW.format(n=n, library=f"import {options.library}" if options.library else ""))
        (project / "flows.toml").write_text(TOML.format())
        cli = [sys.executable, "-m", "flows_tui.cli"]
        commands = {"--version (start only)": [*cli, "--version"], "list": [*cli, "list"],
                    "list --json": [*cli, "list", "--json"], "check": [*cli, "check"]}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(options.repeat):
            for name, command in commands.items():
                results[name].append(timed(command, project))
        load = os.getloadavg()[0]
        imports = f", each importing {options.library}" if options.library else ""
        print(f"{options.files} flow files{imports}, {options.repeat} runs each, load {load:.1f} on {os.cpu_count()} cores")
        base = statistics.median(wall for wall, _ in results["--version (start only)"])
        base_cpu = statistics.median(cpu for _, cpu in results["--version (start only)"])
        for name, times in results.items():
            wall = statistics.median(w for w, _ in times)
            cpu = statistics.median(c for _, c in times)
            print(f"  {name:24} wall median {wall:6.3f} s (min {min(w for w, _ in times):.3f}, +{wall - base:.3f} "
                  f"over the start)   cpu median {cpu:6.3f} s (+{cpu - base_cpu:.3f})")


if __name__ == "__main__":
    main()
