"""`flows-tui debug RUN TASK_RUN`: a failed task run again, here, under the debugger, with its inputs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pexpect
import pytest

from conftest import cli, write_project

RIDERS = '''
from flows_tui import flow, get_run_logger, task
from flows_tui.cache_policies import INPUTS


@task(cache_policy=INPUTS)
def load(n: int) -> list:
    return [[i, -1, i * 7] for i in range(n)]


@task
def double(rows):
    return [r * 2 for r in rows]


@task
def clean(rows: list, limit: int) -> list:
    total = sum(rows)
    get_run_logger().info("cleaning %d rows", len(rows))
    if total > limit:
        raise ValueError(f"total {total} over {limit}")
    return [r for r in rows if r >= 0]


@flow(name="riders")
def riders(n: int = 4, limit: int = 30):
    chunks = load(n)
    doubled = double.map(chunks)
    clean.map(doubled, limit)
'''
FAILING_LINE = 'raise ValueError(f"total {total} over {limit}")'
FAILING_LINE_NUMBER = next(n for n, line in enumerate(RIDERS.splitlines(), 1) if FAILING_LINE in line)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, str]:
    """A project with one recorded run of `riders` in which clean-3 failed (total 46 over 30)."""
    root = write_project(tmp_path_factory.mktemp("debug"), {"riders.py": RIDERS})
    done = cli("run", "riders", "--json", cwd=root)
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert {t["name"]: t["state"] for t in document["tasks"]}["clean-3"] == "Failed"
    return root, document["run_id"]


def _spawn(root: Path, *args: str, env: dict | None = None) -> pexpect.spawn:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("DASK_SCHEDULER_ADDRESS", "PYTHONBREAKPOINT", "NO_COLOR")}
    environment.update({"TERM": "dumb", **(env or {})})
    return pexpect.spawn(sys.executable, ["-m", "flows_tui.cli", "debug", *args], cwd=str(root), env=environment,
                         encoding="utf-8", timeout=60, dimensions=(50, 200))


def test_debug_lands_in_pdb_at_the_failing_line_with_the_task_runs_values(project):
    root, run_id = project
    session = _spawn(root, run_id[:6], "clean-3")
    try:
        session.expect(r"\(Pdb\) ")
        assert f"riders.py({FAILING_LINE_NUMBER})clean()" in session.before
        assert FAILING_LINE in session.before
        assert "ValueError: total 46 over 30" in session.before
        session.sendline("p total, limit, rows")
        session.expect(r"\(Pdb\) ")
        assert "(46, 30, [6, -2, 42])" in session.before
        session.sendline("q")
        session.expect(pexpect.EOF)
    finally:
        session.close(force=True)
    assert session.exitstatus == 1


def test_debug_of_a_task_run_that_completes_says_so_and_shows_its_value(project):
    root, run_id = project
    done = cli("debug", run_id, "clean-1", cwd=root)
    assert done.returncode == 0, done.stderr
    assert "clean-1 completed; it returned list, 2 items" in done.stderr
    assert "[2, 14]" in done.stderr
    assert "INFO cleaning 3 rows" in done.stderr  # the task's logs reach the terminal


def test_inputs_show_each_argument_and_where_it_came_from_without_running_the_task(project):
    root, run_id = project
    done = cli("debug", run_id, "clean-3", "--inputs", cwd=root)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "inputs of clean-3 (map index 3):" in out
    assert "rows: list, 3 items" in out and "double-3: computed again" in out
    assert "[6, -2, 42]" in out
    assert "limit: int" in out and "given by the flow body" in out
    assert "from the cache: load-0" in out  # load has a cache policy: the re-run took its result from there
    assert "computed again: double-0, double-1, double-2, double-3" in out
    assert "Pdb" not in out and "cleaning" not in done.stderr  # the task did not run


@pytest.mark.parametrize("args, message", [
    (("nosuchrun", "clean-3"), "no run 'nosuchrun'"),
    (("{run}", "clen-3"), "has no task run 'clen-3'; did you mean clean-3"),
])
def test_a_bad_run_id_or_task_run_is_one_clear_message_and_exit_2(project, args, message):
    root, run_id = project
    done = cli("debug", *(a.format(run=run_id) for a in args), cwd=root)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def _rerun_inputs(tmp_path, thread_client, session_for_debug):
    """riders run once with a session; then clean-3's inputs reached with `session_for_debug(session)`."""
    from flows_tui.launch.debug import Target, reach
    from flows_tui.engine.flow_run import run_flow
    from flows_tui.record.events import EventBus
    from flows_tui.engine.session import Session

    from conftest import load_flows

    flow = load_flows(tmp_path, RIDERS).flows["riders"]
    session = Session(thread_client)
    engine = run_flow(flow, {"n": 4, "limit": 30}, client=thread_client, bus=EventBus(), session=session,
                      cache_dir=tmp_path / "cache")
    assert engine.final.name == "Failed"
    return engine.run_id, reach(flow, {"n": 4, "limit": 30}, engine.run_id, Target("clean", "clean-3", 0, 3),
                                client=thread_client, cache_dir=tmp_path / "cache",
                                session=session_for_debug(session)), session


def test_inputs_come_from_cluster_memory_while_the_session_holds_the_run(tmp_path, thread_client):
    run_id, reached, session = _rerun_inputs(tmp_path, thread_client, lambda session: session)
    [rows, limit] = reached.inputs
    assert rows.value == [6, -2, 42] and limit.value == 30
    assert rows.source == f"double-3: held in cluster memory (reused from run {run_id})"
    assert set(reached.came_back) == {f"held in cluster memory (reused from run {run_id})"}
    assert session.holds(run_id)  # the debugging re-run left the run's results where they were


def test_inputs_are_computed_again_when_the_cluster_no_longer_holds_them(tmp_path, thread_client):
    from flows_tui.engine.session import Session

    _, reached, _ = _rerun_inputs(tmp_path, thread_client, lambda session: Session(thread_client))
    assert reached.inputs[0].value == [6, -2, 42]
    assert reached.inputs[0].source == "double-3: computed again"
    assert reached.came_back["from the cache"] == ["load-0"]


BREAKING = '''
from flows_tui import flow, task


@task
def pause(x):
    breakpoint()
    breakpoint()
    return x + 1


@flow(name="breaking")
def breaking():
    return sum(f.result() for f in pause.map([1, 2]))
'''


def test_breakpoint_in_a_task_on_a_worker_says_how_to_debug_it_once_and_the_task_goes_on(tmp_path, run):
    from conftest import load_flows

    engine, recorder = run(load_flows(tmp_path, BREAKING).flows["breaking"])
    assert engine.final.name == "Completed" and engine.return_value == 5
    told = [m for m in recorder.log_messages() if "breakpoint()" in m]
    assert len(told) == 2  # once per task run, though each called it twice
    assert f"flows-tui debug {engine.run_id} pause-0" in " ".join(told)
    assert "user_flows.py:7 in pause-0 was skipped" in " ".join(told)


def test_breakpoint_on_worker_processes_never_waits_for_a_terminal(tmp_path):
    from conftest import PROCESS_CLUSTER_TOML

    root = write_project(tmp_path, {"breaking.py": BREAKING}, toml=PROCESS_CLUSTER_TOML)
    done = cli("run", "breaking", "--json", cwd=root, timeout=90)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    lines = cli("logs", run_id, cwd=root).stdout
    assert f"To stop there with its inputs: flows-tui debug {run_id} pause-1" in lines
    # Where a terminal is, breakpoint() stops there: `flows-tui debug` runs the task in it.
    session = _spawn(root, run_id, "pause-1")
    try:
        session.expect(r"\(Pdb\) ")
        assert "breaking.py(8)pause()" in session.before  # the line after breakpoint()
        session.sendline("p x")
        session.expect(r"\(Pdb\) ")
        assert "2" in session.before
        session.sendline("c")
        session.expect(r"\(Pdb\) ")
        session.sendline("c")
        session.expect("pause-1 completed; it returned int")
        session.expect(pexpect.EOF)
    finally:
        session.close(force=True)
    assert session.exitstatus == 0


def test_a_task_run_that_did_not_run_points_at_the_upstream_that_failed(tmp_path, thread_client):
    from flows_tui.launch.debug import DebugError, reach_held
    from flows_tui.engine.flow_run import run_flow
    from flows_tui.record.events import EventBus
    from flows_tui.engine.session import Session

    from conftest import load_flows

    flow = load_flows(tmp_path, '''
        from flows_tui import flow, task

        @task
        def fetch():
            raise OSError("offline")

        @task
        def parse(text):
            return text.split()

        @flow
        def chain():
            parse.submit(fetch.submit())
    ''').flows["chain"]
    session = Session(thread_client)
    engine = run_flow(flow, {}, client=thread_client, bus=EventBus(), session=session)
    parse = next(t for t in engine.flow_run.task_runs.values() if t.name == "parse-0")
    assert parse.state == "NotRun"
    with pytest.raises(DebugError, match=r"parse-0 did not run: its upstream fetch-0 ended Failed; debug that one"):
        reach_held(session, engine.run_id, parse, flow)


WAITING = '''
import os
import time
from flows_tui import flow, task

GO = os.path.join(os.path.dirname(__file__), "go")


@task
def wait_for_go(x):
    while not os.path.exists(GO):
        time.sleep(0.05)
    return x


@task
def fail(x):
    raise ValueError(x)


@flow(name="waiting")
def waiting():
    fail(wait_for_go(1))
'''


def test_ctrl_c_while_the_upstream_runs_again_stops_debug_at_once(tmp_path):
    root = write_project(tmp_path, {"waiting.py": WAITING})
    (root / "flows" / "go").touch()
    done = cli("run", "waiting", "--json", cwd=root)
    run_id = json.loads(done.stdout)["run_id"]
    (root / "flows" / "go").unlink()  # the re-run's upstream now waits for ever
    session = _spawn(root, run_id, "fail-0")
    try:
        session.expect("debugging fail-0")
        session.sendintr()  # while the cluster starts or the upstream waits: both stop at once
        session.expect("interrupted")
        session.expect(pexpect.EOF, timeout=15)  # not held by the upstream still running on a thread worker
    finally:
        session.close(force=True)
    assert session.exitstatus == 130
