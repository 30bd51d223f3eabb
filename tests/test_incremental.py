"""The incremental loop: watch-run and re-run failed execute only what changed or failed.

Every test counts executions with the files the tasks leave behind, never by timing:
a reused task run must not run the user's function at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import Recorder, cli, wait_until, write_project
from flows_tui.cache import write_entry
from flows_tui.project.config import load_config
from flows_tui.engine.flow_run import run_flow
from flows_tui.record.events import EventBus
from flows_tui.project.flows_directory import FlowsDirectory
from flows_tui.engine.session import Session
from flows_tui.record.store import Store, store_path
from flows_tui.launch.watch_run import WatchRun

# What every flow below starts with: `note` leaves one file per execution in RAN_DIR.
NOTE = '''
import uuid
from pathlib import Path

from flows_tui import flow, task

RAN = Path(RAN_DIR)


def note(name):
    (RAN / f"{name}-{uuid.uuid4().hex}").touch()
'''

# A chain of five tasks.
CHAIN = NOTE + '''

@task
def extract(x):
    note("extract")
    return x + 1


@task
def clean(x):
    note("clean")
    return x * 2


@task
def enrich(x):
    note("enrich")
    return x + 100


@task
def aggregate(x):
    note("aggregate")
    return x * 10


@task
def report(x):
    note("report")
    return f"total {x}"


def unrelated():
    return "not called by any task"


@flow
def chain(x: int = 1):
    return report(aggregate(enrich(clean(extract(x)))))
'''

# Two tasks use a helper module, one does not; `combine` depends on one that does.
HELPER = '''
def scale(x):
    return x * 2


def unused():
    return 0
'''

WITH_HELPER = NOTE + '''
from _shared import scale



@task
def scaled(x):
    note("scaled")
    return scale(x)


@task
def plain(x):
    note("plain")
    return x + 1


@task
def combine(a, b):
    note("combine")
    return a + b


@flow
def helped(x: int = 3):
    return combine(scaled(x), plain(x))
'''

# One mapped child fails while the flag file exists; `total` needs all of them.
FLAKY = NOTE + '''
from flows_tui.cache_policies import INPUTS, TASK_SOURCE

FLAG = RAN.parent / "fail-on-2"


@task
def numbers():
    note("numbers")
    return [1, 2, 3]


@task(CACHE_OPTIONS)
def process(x):
    note(f"process{x}")
    if x == 2 and FLAG.exists():
        raise RuntimeError("flag is set")
    return x * 10


@task
def total(values):
    note("total")
    return sum(values)


@flow
def flaky():
    return total(process.map(numbers()))
'''

# Tasks that must never be reused: a NO_CACHE one, and one whose input has no stable hash.
NEVER_REUSED = NOTE + '''
from flows_tui.cache_policies import NO_CACHE



class Fresh:
    """Pickles differently every time, as an object holding a random nonce does."""

    def __reduce__(self):
        return (Fresh, (), {"nonce": uuid.uuid4().hex})


@task(cache_policy=NO_CACHE)
def fetch():
    note("fetch")
    return 1


@task
def after_fetch(x):
    note("after_fetch")
    return x


@task
def uses(thing):
    note("uses")
    return 2


@task
def steady():
    note("steady")
    return 3


@flow
def never():
    return after_fetch.submit(fetch.submit()), uses(Fresh()), steady()
'''


# Direct calls hand values through the body: `read` gets the same path after `write` changed the file.
BY_PATH = NOTE + '''
@task
def write(path):
    note("write")
    Path(path).write_text("first version")
    return path


@task
def read(path):
    note("read")
    return Path(path).read_text()


@flow
def by_path(path: str):
    return read(write(path))
'''


def executions(ran: Path, name: str) -> int:
    return len(list(ran.glob(f"{name}-*")))


def counts(ran: Path, *names: str) -> dict[str, int]:
    return {name: executions(ran, name) for name in names}


def states(engine) -> dict[str, str]:
    return {task_run.name: task_run.state for task_run in engine.flow_run.task_runs.values()}


@pytest.fixture
def flows(tmp_path) -> Path:
    directory = tmp_path / "flows"
    directory.mkdir()
    return directory


def write(path: Path, source: str, ran: Path, *edits: tuple[str, str]) -> Path:
    text = source.replace("RAN_DIR", repr(str(ran)))
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return path


def flaky_source(cache_options: str = "") -> str:
    return FLAKY.replace("@task(CACHE_OPTIONS)", f"@task({cache_options})")


@pytest.fixture
def session_runs(thread_client):
    """Run flows with one session on the shared thread cluster; returns run(flow, reuse=True)."""
    session = Session(thread_client)

    def go(flow_, *, reuse: bool = True, recorder: Recorder | None = None, **parameters):
        bus = EventBus()
        if recorder is not None:
            bus.subscribe(recorder, name="test")
        bound = flow_.signature.bind(**parameters)
        bound.apply_defaults()
        engine = run_flow(flow_, dict(bound.arguments), client=thread_client, bus=bus, session=session, reuse=reuse)
        assert bus.flush(10)
        return engine

    go.session = session
    return go


# Watch-run ----------------------------------------------------------------------------------------

def test_watch_run_re_executes_only_the_edited_task_and_what_depends_on_it(flows, ran, thread_client):
    path = write(flows / "chain.py", CHAIN, ran)
    directory = FlowsDirectory(flows)
    directory.load()
    directory.watch()
    session = Session(thread_client)
    engines = []
    watch = WatchRun(directory, "chain", lambda flow: engines.append(
        run_flow(flow, {"x": 1}, client=thread_client, session=session, reuse=True)))
    watch.start()
    try:
        wait_until(lambda: len(engines) == 1, timeout=60, message="the first run")
        write(path, CHAIN, ran, ("return x + 100", "return x + 500"))  # edit the middle task
        wait_until(lambda: len(engines) == 2, timeout=60, message="the run after the save")
    finally:
        watch.stop(timeout=60)
        directory.stop()
    first, second = engines
    assert first.return_value == "total 1040" and second.return_value == "total 5040"
    assert counts(ran, "extract", "clean", "enrich", "aggregate", "report") == {
        "extract": 1, "clean": 1, "enrich": 2, "aggregate": 2, "report": 2}
    assert states(second) == {"extract-0": "Cached", "clean-0": "Cached", "enrich-0": "Completed",
                              "aggregate-0": "Completed", "report-0": "Completed"}
    reused = second.flow_run.task_runs[next(iter(second.flow_run.task_runs))]
    assert reused.message == f"reused from run {first.run_id}" and reused.attempts == []


def test_saves_during_a_run_become_one_run_after_it(flows, ran, thread_client):
    path = write(flows / "chain.py", CHAIN, ran)
    directory = FlowsDirectory(flows)
    directory.load()
    started, release, ended = [], threading.Event(), []

    def run_once(flow):
        started.append(flow)
        release.wait(30)  # the first run is "in progress" until the saves below are reloaded
        ended.append(run_flow(flow, {"x": 1}, client=thread_client))

    watch = WatchRun(directory, "chain", run_once)
    watch.start()
    try:
        wait_until(lambda: len(started) == 1, message="the first run")
        for value in (200, 300, 400):
            write(path, CHAIN, ran, ("return x + 100", f"return x + {value}"))
            directory.reload([path])
        release.set()
        wait_until(lambda: len(ended) == 2, timeout=60, message="one run for the three saves")
        assert ended[1].return_value == "total 4040"  # the newest code
    finally:
        watch.stop(timeout=60)
    assert watch.runs_started == 2


def test_editing_a_helper_re_runs_only_the_tasks_that_use_it_and_their_dependents(session_runs, flows, ran):
    helper = write(flows / "_shared.py", HELPER, ran)
    write(flows / "helped.py", WITH_HELPER, ran)
    directory = FlowsDirectory(flows)
    directory.load()
    first = session_runs(directory.flows["helped"])
    write(helper, HELPER, ran, ("return x * 2", "return x * 3"))
    directory.reload([helper])
    second = session_runs(directory.flows["helped"])
    assert (first.return_value, second.return_value) == (6 + 4, 9 + 4)
    assert counts(ran, "scaled", "plain", "combine") == {"scaled": 2, "plain": 1, "combine": 2}
    assert states(second) == {"scaled-0": "Completed", "plain-0": "Cached", "combine-0": "Completed"}


def test_an_edit_no_task_reaches_re_runs_nothing(session_runs, flows, ran):
    helper = write(flows / "_shared.py", HELPER, ran)
    path = write(flows / "helped.py", WITH_HELPER, ran)
    directory = FlowsDirectory(flows)
    directory.load()
    session_runs(directory.flows["helped"])
    write(helper, HELPER, ran, ("return 0", "return 1"))
    write(path, WITH_HELPER + "\n\ndef also_unrelated():\n    return 2\n", ran)
    directory.reload([helper, path])
    again = session_runs(directory.flows["helped"])
    assert set(states(again).values()) == {"Cached"} and again.return_value == 10
    assert counts(ran, "scaled", "plain", "combine") == {"scaled": 1, "plain": 1, "combine": 1}


def test_a_value_the_body_got_from_a_task_that_ran_again_makes_its_consumer_run_again(session_runs, flows, ran,
                                                                                      tmp_path):
    path = write(flows / "by_path.py", BY_PATH, ran)
    directory = FlowsDirectory(flows)
    directory.load()
    target = str(tmp_path / "data.txt")
    session_runs(directory.flows["by-path"], path=target)
    write(path, BY_PATH, ran, ("first version", "second version"))
    directory.reload([path])
    again = session_runs(directory.flows["by-path"], path=target)
    # `read` got the very same path string, but from a task run that ran again: it is not reused.
    assert again.return_value == "second version"
    assert counts(ran, "write", "read") == {"write": 2, "read": 2}


def test_a_run_without_reuse_runs_everything_but_leaves_its_results_for_the_next(session_runs, flows, ran):
    module_path = write(flows / "chain.py", CHAIN, ran)
    directory = FlowsDirectory(module_path)
    directory.load()
    chain = directory.flows["chain"]
    session_runs(chain, reuse=False)
    session_runs(chain, reuse=False)
    assert executions(ran, "extract") == 2
    third = session_runs(chain)
    assert set(states(third).values()) == {"Cached"} and executions(ran, "extract") == 2


def test_no_cache_tasks_their_dependents_and_unhashable_inputs_run_every_time(session_runs, flows, ran):
    directory = FlowsDirectory(write(flows / "never.py", NEVER_REUSED, ran))
    directory.load()
    recorder = Recorder()
    session_runs(directory.flows["never"])
    again = session_runs(directory.flows["never"], recorder=recorder)
    assert again.final.name == "Completed"
    assert counts(ran, "fetch", "after_fetch", "uses", "steady") == {"fetch": 2, "after_fetch": 2, "uses": 2,
                                                                     "steady": 1}
    warnings = [m for m in recorder.log_messages() if "never reused" in m]
    assert len(warnings) == 1 and "'uses'" in warnings[0] and "pickles differently" in warnings[0]


# Re-run failed ------------------------------------------------------------------------------------

def test_re_running_a_failed_run_executes_only_the_failed_child_and_what_depends_on_it(session_runs, flows,
                                                                                        ran, tmp_path):
    flag = tmp_path / "fail-on-2"
    flag.touch()
    directory = FlowsDirectory(write(flows / "flaky.py", flaky_source(), ran))
    directory.load()
    failed = session_runs(directory.flows["flaky"], reuse=False)
    assert failed.final.name == "Failed" and states(failed)["process-1"] == "Failed"
    flag.unlink()
    rerun = session_runs(directory.flows["flaky"])
    assert rerun.final.name == "Completed" and rerun.return_value == 60
    assert states(rerun) == {"numbers-0": "Cached", "process-0": "Cached", "process-1": "Completed",
                             "process-2": "Cached", "total-0": "Completed"}
    assert counts(ran, "numbers", "process1", "process2", "process3", "total") == {
        "numbers": 1, "process1": 1, "process2": 2, "process3": 1, "total": 1}


# The command line ---------------------------------------------------------------------------------

def make_project(tmp_path: Path, ran: Path, name: str, source: str) -> Path:
    write_project(tmp_path, {})
    write(tmp_path / "flows" / name, source, ran)
    return tmp_path


def test_rerun_reuses_cached_results_and_says_which_completed_tasks_run_again(tmp_path, ran):
    project = make_project(tmp_path, ran, "flaky.py", flaky_source("cache_policy=INPUTS + TASK_SOURCE"))
    (tmp_path / "fail-on-2").touch()
    failed = cli("run", "flaky", "--json", cwd=project)
    assert failed.returncode == 1, failed.stderr
    run_id = json.loads(failed.stdout)["run_id"]
    (tmp_path / "fail-on-2").unlink()

    result = cli("run", "flaky", "--rerun", run_id[:6], "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {t["name"]: t["state"] for t in document["tasks"]} == {
        "numbers-0": "Completed", "process-0": "Cached", "process-1": "Completed", "process-2": "Cached",
        "total-0": "Completed"}
    assert counts(ran, "numbers", "process1", "process2", "process3", "total") == {
        "numbers": 2, "process1": 1, "process2": 2, "process3": 1, "total": 1}
    # In a new process no result is held in memory: the tasks without a cache policy run again, and it says so.
    assert f"re-running run {run_id}" in result.stderr
    assert f"1 task run(s) that run {run_id} had completed ran again" in result.stderr
    assert "numbers-0" in result.stderr


def test_rerun_of_a_run_of_another_flow_is_a_usage_error(tmp_path, ran):
    project = make_project(tmp_path, ran, "chain.py", CHAIN)
    write(tmp_path / "flows" / "flaky.py", flaky_source(), ran)
    first = cli("run", "chain", "--json", cwd=project)
    run_id = json.loads(first.stdout)["run_id"]
    result = cli("run", "flaky", "--rerun", run_id, cwd=project)
    assert result.returncode == 2
    assert f"run {run_id} is a run of flow 'chain', not of 'flaky'" in result.stderr


def test_run_watch_runs_again_after_a_save_and_ctrl_c_exits_0(tmp_path, ran):
    project = make_project(tmp_path, ran, "chain.py", CHAIN)
    state_dir = load_config(None, cwd=project).project.state_dir
    environment = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    environment.update({"NO_COLOR": "1", "CI": "1"})
    output = (tmp_path / "out.txt").open("w")
    process = subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "run", "chain", "--watch"], cwd=project,
                               env=environment, stdout=output, stderr=subprocess.STDOUT)

    def ended_runs() -> list:
        if not store_path(state_dir).exists():
            return []
        return [run for run in Store.open(state_dir).runs("chain") if run.ended is not None]

    try:
        wait_until(lambda: len(ended_runs()) == 1, timeout=60, interval=0.1, message="the first run in the store")
        write(project / "flows" / "chain.py", CHAIN, ran, ("return x * 10", "return x * 20"))  # `aggregate`
        wait_until(lambda: len(ended_runs()) == 2, timeout=60, interval=0.1, message="the run after the save")
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        output.close()
    second = Store.open(state_dir).load_run(ended_runs()[0].run_id)  # newest first
    assert second.state == "Completed"
    assert {t.name: t.state for t in second.task_runs.values()} == {
        "extract-0": "Cached", "clean-0": "Cached", "enrich-0": "Cached", "aggregate-0": "Completed",
        "report-0": "Completed"}
    assert counts(ran, "extract", "aggregate", "report") == {"extract": 1, "aggregate": 2, "report": 2}
    assert "watching" in (tmp_path / "out.txt").read_text()


# The terminal UI --------------------------------------------------------------------------------

async def wait_for(pilot, condition, timeout: float = 60.0, message: str = "the UI") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await pilot.pause(0.05)


def tui_app(project: Path):
    from flows_tui.record import events as ev
    from flows_tui.tui.app import FlowsApp

    config = load_config(None, cwd=project)
    store = Store.open(config.project.state_dir)
    bus = ev.EventBus()
    bus.set_journal(store.record)
    return FlowsApp(config, bus=bus, store=store)


def select(app, key: str) -> None:
    from flows_tui.tui.flow_list import FlowList

    table = app.query_one(FlowList)
    keys = [table.coordinate_to_cell_key((row, 0)).row_key.value for row in range(table.row_count)]
    table.move_cursor(row=keys.index(key))


def tree_labels(app) -> list[str]:
    from flows_tui.tui.task_tree import TaskTree

    labels = []

    def walk(node) -> None:
        labels.append(str(node.label))
        for child in node.children:
            walk(child)

    walk(app.query_one(TaskTree).root)
    return labels


def shown_state(app) -> str | None:
    """The state of the run on screen, as the UI has it."""
    with app.bridge.lock:
        run = app.bridge.model.runs.get(app.shown_run or "")
        return None if run is None else run.state


def shown_states(app) -> dict[str, str]:
    with app.bridge.lock:
        run = app.bridge.model.runs[app.shown_run]
        return {task_run.name: task_run.state for task_run in run.task_runs.values()}


async def test_capital_r_re_runs_the_failed_tasks_of_the_run_on_screen(tmp_path, ran):
    from flows_tui.tui.flow_list import FlowList

    project = make_project(tmp_path, ran, "flaky.py", flaky_source())
    (tmp_path / "fail-on-2").touch()
    app = tui_app(project)
    async with app.run_test(size=(120, 40)) as pilot:
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: app.cluster is not None and flows.row_count == 1, message="the cluster")
        select(app, "flaky")
        await pilot.press("r")
        await wait_for(pilot, lambda: flows.last_states.get("flaky") == "Failed" and not app.engines,
                       message="the failed run")
        failed_run = app.shown_run
        (tmp_path / "fail-on-2").unlink()
        await pilot.press("R")
        await wait_for(pilot, lambda: app.shown_run != failed_run and shown_state(app) == "Completed",
                       message="the re-run")
        assert shown_states(app) == {"numbers-0": "Cached", "process-0": "Cached", "process-1": "Completed",
                                     "process-2": "Cached", "total-0": "Completed"}
        await wait_for(pilot, lambda: any("≡ 2" in label for label in tree_labels(app)), message="the tree")
        assert counts(ran, "numbers", "process1", "process2", "process3", "total") == {
            "numbers": 1, "process1": 1, "process2": 2, "process3": 1, "total": 1}


async def test_w_watch_runs_the_selected_flow_on_every_save_until_pressed_again(tmp_path, ran):
    from flows_tui.tui.flow_list import FlowList

    project = make_project(tmp_path, ran, "chain.py", CHAIN)
    app = tui_app(project)
    async with app.run_test(size=(120, 40)) as pilot:
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: app.cluster is not None and flows.row_count == 1, message="the cluster")
        select(app, "chain")
        await pilot.press("w")
        await wait_for(pilot, lambda: shown_state(app) == "Completed", message="the first run")
        first = app.shown_run
        assert "chain watching" in str(flows.cell("chain", "flow"))
        write(project / "flows" / "chain.py", CHAIN, ran, ("return f\"total {x}\"", "return f\"sum {x}\""))
        await wait_for(pilot, lambda: app.shown_run != first and shown_state(app) == "Completed",
                       message="the run after the save")
        assert shown_states(app) == {"extract-0": "Cached", "clean-0": "Cached", "enrich-0": "Cached",
                                     "aggregate-0": "Cached", "report-0": "Completed"}
        assert counts(ran, "extract", "report") == {"extract": 1, "report": 2}
        await pilot.press("w")
        assert str(flows.cell("chain", "flow")) == "chain"
        watched = app.directory.flows["chain"]
        write(project / "flows" / "chain.py", CHAIN, ran, ("return f\"total {x}\"", "return f\"all {x}\""))
        await wait_for(pilot, lambda: app.directory.flows["chain"] is not watched, message="the reload")
        # No longer watched: the reload, which would have asked for a run, started none.
        assert not app.engines and len(app.store.runs("chain")) == 2


async def test_the_status_bar_shows_the_size_of_the_cache(tmp_path, ran):
    from flows_tui.tui.status_bar import StatusBar

    project = make_project(tmp_path, ran, "chain.py", CHAIN)
    state_dir = load_config(None, cwd=project).project.state_dir
    write_entry(state_dir / "cache" / "0123.result", {"format": 1, "flow": "chain", "task": "extract"}, b"x" * 12_345)
    app = tui_app(project)
    app.connect_cluster = False
    async with app.run_test(size=(120, 40)) as pilot:
        bar = app.query_one(StatusBar)
        await wait_for(pilot, lambda: "cache 12." in str(bar.render()), message="the cache size")
        # The flows loaded and their plan shown: nothing is left to arrive while the app closes.
        await wait_for(pilot, lambda: "planned" in tree_labels(app)[0], message="the flow's plan")
        await pilot.pause()
