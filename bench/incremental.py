"""Incremental re-run: a chain of slow tasks, its last task edited, re-run by watch-run.

    python bench/incremental.py [--tasks 5] [--seconds 2]

A flow file with a chain of `--tasks` tasks, each sleeping `--seconds`, is loaded and
watched as `flows-tui run FLOW --watch` does (FlowsDirectory + WatchRun, one session, the
embedded LocalCluster of worker processes). Timed, each from the moment it is asked for
to the end of the run it causes (so a re-run includes the file watcher's ~25 ms):

  full     the first run: every task runs (5 x 2 s).
  cheap    the last task's file is saved with a new version that no longer sleeps (a user
           replacing a slow call, fixing its output format): the four unchanged tasks are
           reused from cluster memory, only the edited one runs.
  same     the last task saved again with a new version that still sleeps 2 s.

Issue 7's target: "edit the last task; the re-run must take <= 15% of a full run". By
arithmetic it can only hold when the edited task's new version is cheaper than 15% of
the full run: a re-run must run the edited task, so with 5 tasks of 2 s an edit that keeps
its 2 s cannot go below 2 / 10 = 20%. The target is checked on `cheap`; for `same` the
bench prints the ratio (floor 20%) and the time beyond the edited task's own sleep, which
is what the session adds or saves.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from flows_tui.engine.cluster import choose_cluster, connect
from flows_tui.engine.flow_run import run_flow
from flows_tui.project.flows_directory import FlowsDirectory
from flows_tui.engine.session import Session
from flows_tui.launch.watch_run import WatchRun

TARGET = 0.15

STEP = '''
@task
def step{n}(x):
    time.sleep(SECONDS)
    return x + {n}
'''

LAST = '''
@task
def step{n}(x):
    time.sleep({sleep})
    return x * {factor}
'''


def flow_source(tasks: int, seconds: float, last_sleep: float, factor: int) -> str:
    steps = "".join(STEP.format(n=n) for n in range(1, tasks))
    chain = "x"
    for n in range(1, tasks + 1):
        chain = f"step{n}({chain})"
    return (f"import time\n\nfrom flows_tui import flow, task\n\nSECONDS = {seconds}\n{steps}"
            f"{LAST.format(n=tasks, sleep=last_sleep, factor=factor)}\n\n@flow\ndef chain(x: int = 0):\n"
            f"    return {chain}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="flows-tui-bench-"))
    path = folder / "chain.py"
    path.write_text(flow_source(args.tasks, args.seconds, args.seconds, 10))
    directory = FlowsDirectory(folder)
    directory.load()
    directory.watch()
    cluster = connect(choose_cluster(None, None))
    session = Session(cluster.client)
    ended = threading.Condition()
    runs: list = []  # (engine, seconds since asked for)
    asked = [0.0]

    def run_once(flow) -> None:
        engine = run_flow(flow, {"x": 0}, client=cluster.client, session=session, reuse=True)
        with ended:
            runs.append((engine, time.perf_counter() - asked[0]))
            ended.notify_all()

    def wait_for_run(count: int):
        with ended:
            if not ended.wait_for(lambda: len(runs) >= count, timeout=600):
                raise SystemExit("a run did not end within 10 minutes")
        engine, seconds = runs[count - 1]
        assert engine.final.name == "Completed", engine.final
        return engine, seconds

    watch = WatchRun(directory, "chain", run_once)
    try:
        asked[0] = time.perf_counter()
        watch.start()
        _, full = wait_for_run(1)
        timings = {}
        for number, (name, sleep, factor) in enumerate((("cheap", 0, 20), ("same", args.seconds, 30)), start=2):
            asked[0] = time.perf_counter()
            path.write_text(flow_source(args.tasks, args.seconds, sleep, factor))
            engine, seconds = wait_for_run(number)
            states = [task_run.state for task_run in engine.flow_run.task_runs.values()]
            assert states == ["Cached"] * (args.tasks - 1) + ["Completed"], states
            timings[name] = (seconds, sleep)
    finally:
        watch.stop(timeout=60)
        directory.stop()
        cluster.close()

    print(f"chain of {args.tasks} tasks x {args.seconds:g} s, embedded LocalCluster, watch-run with the session")
    print(f"full run:                              {full:6.2f} s")
    cheap, _ = timings["cheap"]
    same, own = timings["same"]
    print(f"re-run, last task edited (cheap now):  {cheap:6.2f} s  = {cheap / full:6.1%} of the full run "
          f"(target <= {TARGET:.0%}: {'met' if cheap / full <= TARGET else 'MISSED'})")
    print(f"re-run, last task edited (still {own:g} s): {same:6.2f} s  = {same / full:6.1%} of the full run "
          f"(floor {own / full:.0%}: the edited task's own {own:g} s); beyond it: {same - own:.2f} s "
          f"= {(same - own) / full:.1%}")


if __name__ == "__main__":
    main()
