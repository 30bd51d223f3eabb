"""Flow files that exit, interrupt, loop, fork or start threads at import: imported in a child
process first, they are ✗ rows; `list`, `check`, `run` of another flow and the UI go on, in time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import wait_until, write_project

from .test_odd_files import TIMEOUT_TOML

GOOD = """
    from flows_tui import flow

    @flow
    def good():
        return 1
"""

# Each odd file also has a flow named by an expression: its source may define any flow, so
# `run good` has to try it (in a child), and cannot skip it by reading it.
MAYBE_ANY_FLOW = """
from flows_tui import flow
NAME = "maybe-" + "good"

@flow(name=NAME)
def maybe():
    return 2
"""
# Each writes down which processes ran it: ours must never have run one that fails in its child.
MARK = "import os, os as _os, pathlib as _p\n_p.Path(__file__).with_name(f'ran-{_os.getpid()}-' + _p.Path(__file__).stem).touch()\n"
ODD = {
    "exits.py": MARK + "os._exit(7)\n" + MAYBE_ANY_FLOW,
    "interrupts.py": MARK + "raise KeyboardInterrupt\n" + MAYBE_ANY_FLOW,
    "loops.py": MARK + "while True:\n    pass\n" + MAYBE_ANY_FLOW,
    "forks.py": MARK + ("import os, time\n"
                        "if os.fork() == 0:\n"
                        "    open(__file__ + '.child', 'w').write(str(os.getpid()))\n"
                        "    time.sleep(3600)\n") + MAYBE_ANY_FLOW,
    "thread.py": MARK + ("import threading, time\n"
                         "threading.Thread(target=time.sleep, args=(3600,)).start()\n") + MAYBE_ANY_FLOW,
}
TOML = TIMEOUT_TOML  # a 1 s import deadline, a thread cluster
ERRORS = {
    "flows/exits.py": "flows/exits.py:3: ImportExited: os._exit(7) called while the file was imported",
    "flows/interrupts.py": "flows/interrupts.py:3: KeyboardInterrupt: ",
    "flows/loops.py": "flows/loops.py:",  # at line 3 or 4, whichever it was on: did not finish in 1 s
    "flows/forks.py": "flows/forks.py: os.fork() at import left process",
}


def flows_tui(*args: str, cwd: Path, deadline: float = 60) -> tuple[subprocess.CompletedProcess, int]:
    """`flows-tui ARGS`, and its process id; killed (and the test failed) past `deadline`."""
    environment = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    environment.update({"NO_COLOR": "1", "CI": "1"})
    process = subprocess.Popen([sys.executable, "-m", "flows_tui.cli", *args], cwd=cwd, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(f"flows-tui {' '.join(args)} did not finish in {deadline:g} s: {err[-2000:]}")
    return subprocess.CompletedProcess(args, process.returncode, out, err), process.pid


def assert_only_children_ran_them(project: Path, pid: int) -> None:
    ran = [path.name for path in (project / "flows").glob("ran-*")]
    failing = {Path(file).stem for file in ERRORS}
    assert ran and not [name for name in ran if name.startswith(f"ran-{pid}-") and name.split("-")[-1] in failing], \
        (pid, ran)
    for path in (project / "flows").glob("ran-*"):
        path.unlink()


def assert_the_fork_is_gone(project: Path) -> None:
    child = project / "flows" / "forks.py.child"
    pid = int(wait_until(lambda: child.exists() and child.read_text(), message="the fork's pid"))

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, timeout=10, message=f"the process forked at import ({pid}) to end")
    child.unlink()


def test_list_check_and_run_other_go_on_and_never_import_them_in_their_own_process(tmp_path):
    project = write_project(tmp_path, {"good.py": GOOD, **{name: textwrap.dedent(text) for name, text in ODD.items()}},
                            toml=TOML)

    listed, pid = flows_tui("list", "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    rows = {json.loads(line)["file"]: json.loads(line) for line in listed.stdout.splitlines()}
    for file, error in ERRORS.items():
        assert (rows[file]["error"] or "").startswith(error), rows[file]
    assert rows["flows/loops.py"]["error"].endswith("import did not finish in 1 s ([project] import_timeout)")
    assert rows["flows/good.py"]["name"] == "good" and rows["flows/thread.py"]["name"] == "maybe-good"
    assert_only_children_ran_them(project, pid)
    assert_the_fork_is_gone(project)

    checked, pid = flows_tui("check", cwd=project)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert sorted(line.split(":")[0] for line in checked.stdout.splitlines() if line.startswith("flows/")) == \
        sorted(ERRORS), checked.stdout
    assert_only_children_ran_them(project, pid)
    assert_the_fork_is_gone(project)

    ran, pid = flows_tui("run", "good", cwd=project)
    assert ran.returncode == 0, ran.stderr
    assert_only_children_ran_them(project, pid)  # every odd file may define it: each tried in a child
    assert_the_fork_is_gone(project)

    missing, _ = flows_tui("run", "nothing-like-it", cwd=project)
    assert missing.returncode != 0 and "did not finish in 1 s" in missing.stderr, missing.stderr
    assert "did you mean 'good'" in missing.stderr or "good" in missing.stderr


async def test_the_ui_lists_around_them_and_survives_one_saved_while_it_is_open(tmp_path):
    from test_tui import app_for, flow_keys, wait_for

    project = write_project(tmp_path, {"good.py": GOOD, **{name: textwrap.dedent(text) for name, text in ODD.items()}},
                            toml=TOML)
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 6, timeout=60, message="good, maybe-good and 4 ✗ rows")
        errors = {Path(error.path).name: error.reason for error in app.directory.errors}
        assert sorted(errors) == ["exits.py", "forks.py", "interrupts.py", "loops.py"], errors
        assert_only_children_ran_them(project, os.getpid())
        await wait_for(pilot, lambda: app.directory.watching, message="the UI watching the flows directory")
        # Saved while the UI is open: a file that ends its process at import, then a good one.
        (project / "flows" / "later.py").write_text("import os\nos._exit(3)\n")
        await wait_for(pilot, lambda: any(key.endswith("later.py") for key in flow_keys(app)), timeout=30,
                       message="later.py's ✗ row")
        (project / "flows" / "fine.py").write_text(textwrap.dedent(GOOD).replace("good", "fine"))
        await wait_for(pilot, lambda: "fine" in flow_keys(app), timeout=30, message="a later save's flow")
        assert app.is_running
