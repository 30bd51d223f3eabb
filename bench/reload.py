"""Hot reload latency: from saving a flow file to its new flows being loaded. Target: median ≤ 100 ms.

    python bench/reload.py [--files 50] [--saves 50] [--atomic] [--helper] [--debounce 50] [--step 10]
                           [--pause 0.25] [--no-import-check]

Builds a flows directory of `--files` files (two tasks, a flow and a shared helper import
each) in a temporary folder, loads and watches it as the UI does, then saves one file
`--saves` times, alternating two contents of the same size. Each save is timed from just
before the write to the moment a subscriber receives the reload event carrying that file,
with the new code in place (checked by calling the flow's function). `--atomic` saves as
editors do, through a temporary file renamed over the flow file; `--helper` saves the helper
module every flow file imports instead, so that each save reloads all of them.
`--no-import-check` leaves out each file's import in a child process before ours (the check
against files that hang, exit or kill the process at import): what that check costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from flows_tui.project import watch
from flows_tui.project.flows_directory import FlowsDirectory, FlowsReloaded

HELPER = '''
def clean_row(row):
    return row.strip().{case}()
'''

FLOW = '''
from flows_tui import flow, task
from _helpers import clean_row


@task
def extract_{n}(rows):
    return [clean_row(row) for row in rows]


@task
def count_{n}(rows):
    return len(rows)


@flow(name="flow-{n}")
def flow_{n}(rows: list = ["A ", " b"]):
    cleaned = extract_{n}(rows)
    return count_{n}(cleaned), cleaned[0], "{marker}"
'''


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def save(path: Path, text: str, atomic: bool) -> None:
    if not atomic:
        path.write_text(text)
        return
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--saves", type=int, default=50)
    parser.add_argument("--atomic", action="store_true", help="save through a temporary file and a rename")
    parser.add_argument("--helper", action="store_true", help="save the helper all flow files import")
    parser.add_argument("--debounce", type=int, default=watch.DEBOUNCE_MS, help="watchfiles debounce, ms")
    parser.add_argument("--step", type=int, default=watch.STEP_MS, help="watchfiles step, ms")
    parser.add_argument("--pause", type=float, default=0.25,
                        help="seconds between saves (a person's; 0: back to back, each file's import "
                             "check then waits for the child forked after the last one)")
    parser.add_argument("--no-import-check", action="store_true",
                        help="import each file only here, without its check in a child process first "
                             "(what the check costs: the figures with and without it)")
    options = parser.parse_args()
    if options.no_import_check:
        from flows_tui.project.import_probe import fork_server

        fork_server()._broken = True  # as when no child process can be had: files import here only

    with tempfile.TemporaryDirectory(prefix="flows-tui-bench-reload-") as folder:
        root = Path(folder) / "flows"
        root.mkdir()
        (root / "_helpers.py").write_text(HELPER.format(case="lower"))
        for n in range(options.files):
            (root / f"flow_{n:02d}.py").write_text(FLOW.format(n=n, marker="A"))
        target = (root / "flow_00.py").resolve()
        saved = (root / "_helpers.py").resolve() if options.helper else target

        directory = FlowsDirectory(root)
        started = time.perf_counter()
        first = directory.load()
        print(f"loaded {len(first.files_added)} files, {len(directory.flows)} flows "
              f"in {(time.perf_counter() - started) * 1000:.0f} ms")

        arrived = threading.Event()
        expected = {"value": None}
        stamps: list[float] = []
        reload_times: list[float] = []

        def on_reload(event: FlowsReloaded) -> None:
            if target in event.files_changed and directory.flows["flow-0"].fn() == expected["value"]:
                stamps.append(time.perf_counter())
                reload_times.append(event.seconds)
                arrived.set()

        directory.subscribe(on_reload)
        directory.watch(debounce_ms=options.debounce, step_ms=options.step)
        latencies = []
        try:
            for index in range(options.saves):
                # Two contents of the same size: only the content tells them apart.
                case, marker = ("upper", "B") if index % 2 == 0 else ("lower", "A")
                if options.helper:
                    text, expected["value"] = HELPER.format(case=case), (2, "A" if case == "upper" else "a", "A")
                else:
                    text, expected["value"] = FLOW.format(n=0, marker=marker), (2, "a", marker)
                arrived.clear()
                time.sleep(options.pause)
                before = time.perf_counter()
                save(saved, text, options.atomic)
                if not arrived.wait(10):
                    raise SystemExit(f"save {index + 1} was not reloaded within 10 s")
                latencies.append(stamps[-1] - before)
        finally:
            directory.stop()

    ms = [latency * 1000 for latency in latencies]
    what = "the helper all flow files import" if options.helper else "one flow file"
    print(f"{options.saves} {'atomic ' if options.atomic else ''}saves of {what} in a {options.files}-file "
          f"flows directory (watchfiles debounce {options.debounce} ms, step {options.step} ms)")
    print(f"save → reloaded: median {statistics.median(ms):.1f} ms, p95 {percentile(ms, 0.95):.1f} ms, "
          f"min {min(ms):.1f} ms, max {max(ms):.1f} ms")
    print(f"of which reloading (import, compare, publish): median "
          f"{statistics.median(reload_times) * 1000:.1f} ms")
    verdict = "meets" if statistics.median(ms) <= 100 else "MISSES"
    print(f"{verdict} the target: median ≤ 100 ms")


if __name__ == "__main__":
    main()
