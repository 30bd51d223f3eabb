"""How long the UI takes to be useful: first paint, flows listed, cluster ready, `r` to a result, `q` to exit.

Runs the real `flows-tui` command in a pseudo-terminal (as a user's terminal runs it) on a
project holding the bundled sample flows, reads what it draws, and times:

- first paint: the first frame (the panes' borders) on the terminal, which flows-tui draws before
  Textual loads (tui/first_frame.py);
- flows listed: every sample flow's name on screen (in that frame, read from the files' source);
- Textual's first paint: the UI's own frame (its footer's keys), from which keys are taken;
- cluster ready: the status bar naming the LocalCluster;
- first result: `r` pressed at launch, until the run's ✓ Completed is on screen;
- quit: `q` pressed once idle, until the process has exited.

    python bench/startup.py              # 3 rounds, medians printed
    python bench/startup.py --rounds 5
    python bench/startup.py --start-only # first paint, flows listed and quit only (no cluster, no raw Dask)

Targets (issue 20): first paint ≤ 0.3 s, flows listed ≤ 0.5 s, q exits ≤ 1 s.

In the same rounds, for scale: an empty Textual app's first paint, the same Textual widgets as
flows-tui's first frame painted empty (the floor under it), and raw Dask's `LocalCluster` (the
same two worker processes) from `python` to a first result.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ["dask_summary", "github_etl", "hourly_report", "map_reduce", "taxi_tips"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>]")


class Screen:
    """What the program wrote so far, escape sequences removed (enough to find words in it)."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.text = ""

    def read(self) -> None:
        try:
            chunk = self.child.read_nonblocking(1 << 16, timeout=0.01)
        except (pexpect.TIMEOUT, pexpect.EOF):
            return
        self.text += ANSI.sub("", chunk)

    def wait(self, found, deadline: float, what: str) -> float:
        while not found(self.text):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within the deadline")
            self.read()
        return time.monotonic()


def _env(**extra: str) -> dict[str, str]:
    """The environment a user's terminal gives: Python caches the bytecode it compiles (an environment
    that says not to makes every launch compile the modules pip did not compile at install, which an
    editable install's are, and no user's second launch does), no NO_COLOR."""
    env = {**os.environ, **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("NO_COLOR", None)
    return env


def one_round(project: Path, run_flow: str, start_only: bool = False) -> dict[str, float]:
    # No history: the UI shows a flow's last run when it opens, which an earlier round's run would be
    # (its ✓ Completed on screen before `r`'s run ended).
    shutil.rmtree(project / ".flows-tui", ignore_errors=True)
    env = _env(TERM="xterm-256color", COLUMNS="120", LINES="40")
    started = time.monotonic()
    child = pexpect.spawn(sys.executable, ["-m", "flows_tui.cli"], cwd=str(project), env=env,
                          dimensions=(40, 120), encoding="utf-8", codec_errors="replace")
    screen = Screen(child)
    deadline = started + 120
    try:
        painted = screen.wait(lambda text: "flows" in text and "tasks" in text, deadline, "first paint")
        listed = screen.wait(lambda text: all(name in text for name in SAMPLES), deadline, "flows listed")
        # Textual's first frame (the first frame above is drawn before Textual loads): the footer's keys.
        interactive = screen.wait(lambda text: "Quit" in text, deadline, "the UI taking keys")
        firsts = {"first paint": painted - started, "flows listed": listed - started,
                  "Textual's first paint (keys taken)": interactive - started}
        if start_only:
            time.sleep(0.5)
            screen.read()
            child.send("q")
            quit_pressed = time.monotonic()
            child.expect(pexpect.EOF, timeout=30)
            return {**firsts, "q to exit": time.monotonic() - quit_pressed}
        # `r` on the flow under the cursor (the first one) as soon as the flows are listed.
        child.send("r")
        pressed = time.monotonic()
        ready = screen.wait(lambda text: "LocalCluster ·" in text, deadline, "cluster ready")
        result = screen.wait(lambda text: f"✓ Completed  {run_flow}" in text, deadline, "a result")
        time.sleep(0.5)  # idle a moment, as a user reads the result
        screen.read()
        child.send("q")
        quit_pressed = time.monotonic()
        child.expect(pexpect.EOF, timeout=30)
        exited = time.monotonic()
    finally:
        if child.isalive():
            child.terminate(force=True)
    return {**firsts, "cluster ready": ready - started,
            "first result": result - started, "r to result": result - pressed, "q to exit": exited - quit_pressed}


EMPTY_APP = """
from textual.app import App
from textual.widgets import Static
class Empty(App):
    def compose(self):
        yield Static("flows tasks")
Empty().run()
"""

# The same Textual widgets flows-tui's first frame shows (two tables, a tree, a log, a status line
# and the footer, in bordered panes), empty and from one module: what Textual itself takes to
# paint this layout, the floor under flows-tui's own first paint.
SAME_PANES_APP = """
from textual.app import App
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Log, Static, Tree
class Panes(App):
    CSS = "DataTable, Tree, Log { border: round gray; height: 1fr; }"
    BINDINGS = [("r", "noop", "Run"), ("q", "quit", "Quit")]
    def compose(self):
        with Horizontal():
            with Vertical():
                flows = DataTable(); flows.border_title = "flows"; yield flows
                runs = DataTable(); runs.border_title = "runs"; yield runs
            with Vertical():
                tree = Tree("tasks"); tree.border_title = "tasks"; yield tree
                log = Log(); log.border_title = "logs"; yield log
        yield Static("cluster")
        yield Footer()
    def on_mount(self):
        for table in self.query(DataTable):
            table.add_columns("flow", "last")
Panes().run()
"""

RAW_DASK = """
import time
from dask.distributed import Client, LocalCluster
if __name__ == "__main__":
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    print("ready", flush=True)
    client = Client(cluster)
    print("result", client.submit(sum, [1, 2]).result(), flush=True)
    client.close(); cluster.close()
"""


def baselines(folder: Path, start_only: bool = False) -> dict[str, float]:
    env = _env(TERM="xterm-256color")
    started = time.monotonic()
    child = pexpect.spawn(sys.executable, ["-c", EMPTY_APP], env=env, dimensions=(40, 120), encoding="utf-8",
                          codec_errors="replace")
    paint = Screen(child).wait(lambda text: "flows tasks" in text, started + 60, "an empty app's paint") - started
    child.terminate(force=True)
    started = time.monotonic()
    child = pexpect.spawn(sys.executable, ["-c", SAME_PANES_APP], env=env, dimensions=(40, 120), encoding="utf-8",
                          codec_errors="replace")
    panes = Screen(child).wait(lambda text: "flows" in text and "tasks" in text, started + 60,
                               "the same panes' paint") - started
    child.terminate(force=True)
    if start_only:
        return {"empty Textual app, first paint": paint, "Textual, the same panes empty": panes}
    script = folder / "raw_dask.py"
    script.write_text(RAW_DASK)
    started = time.monotonic()
    child = pexpect.spawn(sys.executable, [str(script)], cwd=str(folder), env=env, encoding="utf-8")
    child.expect("ready", timeout=120)
    ready = time.monotonic() - started
    child.expect("result 3", timeout=120)
    result = time.monotonic() - started
    child.expect(pexpect.EOF, timeout=60)
    return {"empty Textual app, first paint": paint, "Textual, the same panes empty": panes,
            "raw Dask LocalCluster ready": ready,
            "raw Dask first result": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--start-only", action="store_true",
                        help="Time first paint, flows listed and quit only (no run, no raw Dask).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        shutil.copytree(ROOT / "sample_flows", project / "sample_flows", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "flows.toml", project / "flows.toml")
        one_round(project, SAMPLES[0], start_only=True)  # a first launch, as after an install: bytecode cached
        rounds = [{**one_round(project, SAMPLES[0], args.start_only), **baselines(project, args.start_only)}
                  for _ in range(args.rounds)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"flows-tui on the bundled samples, {args.rounds} rounds, 120x40 pty (seconds, median and range); "
          f"load average {load:.1f} on {os.cpu_count()} CPUs")
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        print(f"  {key:<36} {statistics.median(values):6.2f}   ({min(values):.2f} – {max(values):.2f})")


if __name__ == "__main__":
    main()
