"""The UI imports no flow file in its own process to list it, show its plan or its parameter form:
each is read in the child process that imports it. Running a flow imports that one file, again
only once it was saved since; a file that exits, loops or starts a thread at import, saved while
the UI is open, neither ends nor holds it."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

from conftest import write_project
from flows_tui.project.flow_files import module_name_for
from flows_tui.tui.flow_list import FlowList
from test_tui import app_for, flow_keys, make_project, select, tree_labels, wait_for

# Each import appends the importing process's id to flows/ran-STEM: who imported the file, how often.
IMPORTED = "import os as _os, pathlib as _p\n" \
           "with open(_p.Path(__file__).with_name('ran-' + _p.Path(__file__).stem), 'a') as _out:\n" \
           "    _out.write(f'{_os.getpid()}\\n')\n"

ALPHA = IMPORTED + textwrap.dedent("""
    import datetime
    from typing import Literal
    from flows_tui import flow, task

    @task
    def double(x):
        return 2 * x

    @task
    def total(values):
        return sum(values)

    @flow
    def alpha(day: datetime.date = datetime.date(2024, 2, 29), mode: Literal["x", "y"] = "y", n: int = 2):
        return total(double.map(range(n)))
""")
BETA = IMPORTED + textwrap.dedent("""
    from flows_tui import flow

    @flow
    def beta(answer: int = 42):
        return answer
""")


def imports_here(project: Path, stem: str) -> int:
    """How many times this process imported flows/STEM.py."""
    ran = project / "flows" / f"ran-{stem}"
    return ran.read_text().split().count(str(os.getpid())) if ran.exists() else 0


def imported_anywhere(project: Path, stem: str) -> int:
    ran = project / "flows" / f"ran-{stem}"
    return len(ran.read_text().split()) if ran.exists() else 0


async def test_flows_are_listed_with_their_plan_and_form_unimported_and_r_imports_only_the_file_run(tmp_path):
    project = make_project(tmp_path)
    (project / "flows" / "alpha.py").write_text(ALPHA)
    (project / "flows" / "beta.py").write_text(BETA)
    files = {stem: (project / "flows" / f"{stem}.py").resolve() for stem in ("alpha", "beta", "numbers")}
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.cluster is not None and app.directory.watching
                       and {"alpha", "beta", "numbers"} <= set(flow_keys(app)), timeout=60, message="the flows")
        # Listed, each file imported once in a child, none here.
        assert imported_anywhere(project, "alpha") >= 1 and imported_anywhere(project, "beta") >= 1
        assert imports_here(project, "alpha") == imports_here(project, "beta") == 0
        assert not [stem for stem, path in files.items() if module_name_for(path) in sys.modules]

        select(app, "alpha")  # its plan, read in its child
        await wait_for(pilot, lambda: any("double  map" in label for label in tree_labels(app)), message="the plan")
        assert any("total  ← double" in label for label in tree_labels(app)) and "planned" in tree_labels(app)[0]
        await pilot.press("p")  # its form, as read in its child: the date as typed, the Literal's choices
        await wait_for(pilot, lambda: app.screen.query("#param-day"), message="the form")
        form = app.screen
        assert form.query_one("#param-day").value == "2024-02-29" and form.query_one("#param-n").value == "2"
        assert form.query_one("#param-mode").value == "y"
        await pilot.press("escape")
        assert imports_here(project, "alpha") == 0 and module_name_for(files["alpha"]) not in sys.modules

        select(app, "beta")
        await pilot.press("r")
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("beta") == "Completed", message="beta's run")
        assert imports_here(project, "beta") == 1 and imports_here(project, "alpha") == 0
        assert module_name_for(files["beta"]) in sys.modules
        assert not [stem for stem in ("alpha", "numbers") if module_name_for(files[stem]) in sys.modules]
        assert app.runnable.imported() == [files["beta"]]

        await pilot.press("r")  # not saved since: not imported again
        runs = app.query_one("#runs")
        await wait_for(pilot, lambda: runs.row_count == 2 and flows.last_states.get("beta") == "Completed",
                       message="beta's second run")
        assert imports_here(project, "beta") == 1

        before = app.directory.flows["beta"]
        (project / "flows" / "beta.py").write_text(BETA.replace("42", "43"))
        await wait_for(pilot, lambda: app.directory.flows["beta"] is not before, message="beta's save read")
        assert imports_here(project, "beta") == 1  # read in a child: the UI imports it when it runs it
        await pilot.press("r")
        await wait_for(pilot, lambda: runs.row_count == 3 and flows.last_states.get("beta") == "Completed",
                       message="beta's run after the save")
        assert imports_here(project, "beta") == 2 and imports_here(project, "alpha") == 0
        [latest, *_] = app.store.runs()
        assert app.store.load_run(latest.run_id).parameters == {"answer": 43}

        (project / "flows" / "beta.py").write_text(BETA.replace("42", "44") + "oops(\n")  # a broken save
        await wait_for(pilot, lambda: f"error:{files['beta']}" in flow_keys(app), message="beta's ✗ row")
        await pilot.press("r")  # its last good version, as imported for the run before
        await wait_for(pilot, lambda: runs.row_count == 4 and flows.last_states.get("beta") == "Completed",
                       message="beta's run after the broken save")
        [latest, *_] = app.store.runs()
        assert app.store.load_run(latest.run_id).parameters == {"answer": 43}
        assert imports_here(project, "beta") == 2

        # Never run, then broken: r imports the bytes its listing was read from, its last good version.
        (project / "flows" / "alpha.py").write_text(ALPHA + "oops(\n")
        await wait_for(pilot, lambda: f"error:{files['alpha']}" in flow_keys(app), message="alpha's ✗ row")
        select(app, "alpha")
        await pilot.press("r")
        await wait_for(pilot, lambda: runs.row_count == 5 and flows.last_states.get("alpha") == "Completed",
                       message="alpha's last good version run")
        assert imports_here(project, "alpha") == 1


TIMEOUT_TOML = '[project]\nflows_dir = "flows"\nimport_timeout = 1\n'
ODD = {  # each also defines a flow, which its child would list had the import ended well
    "exits.py": "import os\nos._exit(7)\n",
    "loops.py": "while True:\n    pass\n",
    "thread.py": "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,)).start()\n",
}
FLOW = "\nfrom flows_tui import flow\n\n@flow\ndef {name}():\n    return 1\n"


async def test_files_that_exit_loop_or_start_a_thread_saved_while_the_ui_is_open_leave_it_alive_and_reloading(
        tmp_path):
    project = write_project(tmp_path, {"good.py": IMPORTED + FLOW.format(name="good")}, toml=TIMEOUT_TOML)
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: flow_keys(app) == ["good"] and app.directory.watching, message="the flow")
        for name, source in ODD.items():
            (project / "flows" / name).write_text(IMPORTED + source + FLOW.format(name=Path(name).stem))
        # exits.py and loops.py are ✗ rows; thread.py imports well in its child (its thread dies with it).
        broken = {f"error:{(project / 'flows' / name).resolve()}" for name in ("exits.py", "loops.py")}
        await wait_for(pilot, lambda: broken <= set(flow_keys(app)) and "thread" in flow_keys(app), timeout=60,
                       message="the odd files read")
        errors = {Path(error.path).name: error.reason for error in app.directory.errors}
        assert errors["exits.py"].startswith("ImportExited") and "did not finish in 1 s" in errors["loops.py"]
        (project / "flows" / "later.py").write_text(FLOW.format(name="later"))
        await wait_for(pilot, lambda: "later" in flow_keys(app), timeout=30, message="a later save's flow")
        assert app.is_running
        assert [imports_here(project, Path(name).stem) for name in ("good.py", *ODD)] == [0, 0, 0, 0]
        assert all(imported_anywhere(project, Path(name).stem) for name in ODD)  # each in its children


async def test_a_submit_before_the_flows_file_has_imported_runs_once_it_has(tmp_path, monkeypatch):
    import flows_tui.tui.param_form as param_form

    monkeypatch.setattr(param_form, "IMPORT_WAIT_SECONDS", 0)  # as for a file whose libraries take seconds
    project = make_project(tmp_path)
    (project / "flows" / "beta.py").write_text(BETA)
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.cluster is not None and "beta" in flow_keys(app), message="the flows")
        select(app, "beta")
        await pilot.press("p")
        await wait_for(pilot, lambda: app.screen.query("#param-answer"), message="the form")
        app.screen.query_one("#param-answer").value = "7"
        await pilot.press("ctrl+s")
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("beta") == "Completed", message="the run")
        [run] = app.store.runs()
        assert app.store.load_run(run.run_id).parameters == {"answer": 7}
        assert imports_here(project, "beta") == 1


async def test_a_schedule_firing_in_the_ui_imports_only_its_flows_file(tmp_path):
    project = make_project(tmp_path)
    (project / "flows" / "alpha.py").write_text(ALPHA)
    (project / "flows" / "beta.py").write_text(BETA)
    with open(project / "flows.toml", "a") as config:
        config.write('[flows.beta]\ninterval = "1s"\n')
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("beta") == "Completed", timeout=60,
                       message="a run of beta fired by its schedule")
        assert imports_here(project, "beta") == 1 and imports_here(project, "alpha") == 0
        assert module_name_for((project / "flows" / "numbers.py").resolve()) not in sys.modules
