"""The run store: real SQLite files, real runs, real processes sharing and killing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import Recorder, cli, write_project
from flows_tui.record import events as ev
from flows_tui import flow, get_run_logger, task
from flows_tui.engine.flow_run import run_flow
from flows_tui.record.store import SCHEMA_VERSION, STORE_NAME, Store, StoreError


@task(retries=1, retry_delay_seconds=0)
def flaky(x: int) -> int:
    get_run_logger().info("flaky %d", x)
    if x == 2:
        raise ValueError(f"bad value {x}")
    return x


@task
def total(values: list) -> int:
    return sum(values)


@flow(name="stored")
def stored(n: int = 4):
    values = flaky.map(range(n))
    return total(values)


def _run_recorded(store: Store, client, fl=stored, **parameters):
    bus = ev.EventBus()
    bus.set_journal(store.record)
    recorder = Recorder()
    bus.subscribe(recorder, name="test")
    bound = fl.signature.bind(**parameters)
    bound.apply_defaults()
    engine = run_flow(fl, dict(bound.arguments), client=client, bus=bus)
    assert bus.flush(10)
    bus.remove_journal()
    return engine, recorder


def test_a_run_rebuilt_from_the_store_matches_what_observers_saw_live(tmp_path, thread_client):
    store = Store.open(tmp_path)
    engine, _ = _run_recorded(store, thread_client)
    live = engine.flow_run
    rebuilt = store.load_run(engine.run_id)

    assert rebuilt.state == live.state == "Failed"
    assert rebuilt.parameters == {"n": 4}
    assert rebuilt.message == live.message
    assert [h[0] for h in rebuilt.history] == [h[0] for h in live.history]
    assert set(rebuilt.task_runs) == set(live.task_runs)
    for task_run_id, live_task in live.task_runs.items():
        task_run = rebuilt.task_runs[task_run_id]
        assert (task_run.name, task_run.map_index, task_run.state, task_run.upstream) == (
            live_task.name, live_task.map_index, live_task.state, live_task.upstream)
        assert [h[0] for h in task_run.history] == [h[0] for h in live_task.history]
        assert [(a.number, a.state, a.error) for a in task_run.attempts] == [
            (a.number, a.state, a.error) for a in live_task.attempts]
        assert task_run.duration == live_task.duration
    failed = next(t for t in rebuilt.task_runs.values() if t.map_index == 2)
    assert [a.state for a in failed.attempts] == ["Failed", "Failed"]
    assert "ValueError: bad value 2" in failed.attempts[-1].traceback


def test_every_log_line_is_stored_in_order_with_its_task_and_attempt(tmp_path, thread_client):
    store = Store.open(tmp_path)
    engine, recorder = _run_recorded(store, thread_client)
    seen = [(line.task_run_id, line.attempt, line.message) for e in recorder.of(ev.LogLines) for line in e.lines]
    stored_lines = store.logs(engine.run_id)
    assert [(s.line.task_run_id, s.line.attempt, s.line.message) for s in stored_lines] == seen
    retried = store.logs(engine.run_id, task="flaky-2")
    # The task's own lines, and why it failed, each time, and that it was retried.
    # (A task's lines come in batches, so an attempt's end may be stored before its last lines.)
    assert sorted((s.line.attempt, s.line.message) for s in retried) == [
        (1, "attempt 1 Failed: ValueError: bad value 2"),
        (1, "attempt 1 failed: ValueError: bad value 2; retrying in 0s"), (1, "flaky 2"),
        (2, "attempt 2 Failed: ValueError: bad value 2"), (2, "flaky 2")]
    assert len(store.logs(engine.run_id, task="flaky")) == 5 + 3  # by task name: every mapped child


def test_subscribers_see_an_event_only_after_the_store_committed_it(tmp_path, thread_client):
    store = Store.open(tmp_path)
    missing: list[str] = []
    checked: list[str] = []

    def screen(batch: list) -> None:  # what a user would be shown
        for event in batch:
            if isinstance(event, ev.LogLines):
                on_disk = {s.line.message for s in store.logs(event.run_id)}
                for line in event.lines:
                    checked.append(line.message)
                    if line.message not in on_disk:
                        missing.append(line.message)

    bus = ev.EventBus()
    bus.set_journal(store.record)
    bus.subscribe(screen, name="screen")
    run_flow(stored, {"n": 4}, client=thread_client, bus=bus)
    assert bus.flush(10)
    assert checked and not missing


def test_a_run_whose_process_is_gone_is_marked_crashed_on_the_next_open(tmp_path):
    store = Store.open(tmp_path)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    t0 = ev.FlowRunStarted("deadbeef0001", "stored", {"n": 1}, _at(0))
    store.record([t0, ev.FlowStateChanged("deadbeef0001", "Running", _at(1)),
                  ev.TaskRunCreated("deadbeef0001", "tr1", "flaky", "flaky-0", _at(1), 0),
                  ev.AttemptStarted("deadbeef0001", "tr1", 1, _at(2), "worker-1"),
                  ev.LogLines("deadbeef0001", (ev.LogLine(_at(2), 20, "last words", "tr1", 1),))])
    with sqlite3.connect(tmp_path / STORE_NAME) as connection:
        connection.execute("UPDATE runs SET owner_pid = ?", (dead_pid,))
    store._owned.clear()  # this process did not own it: as if it were another flows-tui

    reopened = Store.open(tmp_path)
    run = reopened.load_run("deadbeef0001")
    assert run.state == "Crashed"
    assert "flows-tui ended while this run was in flight" in run.message
    task_run = run.task_runs["tr1"]
    assert task_run.state == "Crashed"
    assert task_run.attempts[0].state == "Crashed" and task_run.attempts[0].ended is not None
    assert [s.line.message for s in reopened.logs("deadbeef0001")] == [
        "last words", "flow run ended Crashed: flows-tui ended while this run was in flight (the process was "
                      "killed or the machine restarted)"]


def test_a_run_whose_process_is_alive_is_left_running(tmp_path):
    owner = Store.open(tmp_path)
    owner.record([ev.FlowRunStarted("a1", "stored", {}, _at(0)), ev.FlowStateChanged("a1", "Running", _at(1))])
    other = Store.open(tmp_path)  # a second flows-tui on the same state_dir
    assert other.load_run("a1").state == "Running"
    assert other.recover() == []


def test_the_schema_version_is_recorded_and_an_old_store_is_migrated_on_open(tmp_path):
    sqlite3.connect(tmp_path / STORE_NAME).close()  # an empty file: schema version 0
    store = Store.open(tmp_path)
    with sqlite3.connect(tmp_path / STORE_NAME) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.runs() == []


def test_a_store_of_schema_5_is_migrated_in_place_and_its_runs_name_their_cluster(tmp_path):
    from flows_tui.record.store import MIGRATIONS

    with sqlite3.connect(tmp_path / STORE_NAME) as old:  # the file a flows-tui of schema 5 left
        for statements in MIGRATIONS[:5]:
            for statement in statements:
                old.execute(statement)
        old.execute("PRAGMA user_version = 5")
        for run_id, address in [("r1", "LocalCluster"), ("r2", "SLURMCluster (profile big)"),
                                ("r3", "tcp://10.0.0.5:8786"), ("r4", None)]:
            old.execute("INSERT INTO runs (run_id, flow, address, parameters, state, started) VALUES "
                        "(?, 'etl', ?, '{}', 'Completed', ?)", (run_id, address, f"2026-01-01T00:00:0{run_id[1]}+00:00"))
    old.close()
    store = Store.open(tmp_path)
    assert {s.run_id: s.cluster for s in store.runs()} == {"r1": "LocalCluster", "r2": "big",
                                                           "r3": "tcp://10.0.0.5:8786", "r4": None}
    assert store.load_run("r2").address == "SLURMCluster (profile big)" and store.load_run("r2").cluster == "big"
    store.record([ev.FlowRunStarted("r5", "etl", {}, _at(9), address="tcp://10.0.0.5:8786 (profile remote)",
                                    cluster="remote")])
    assert store.runs(limit=1)[0].document()["cluster"] == "remote"
    with sqlite3.connect(tmp_path / STORE_NAME) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_store_from_a_newer_flows_tui_is_refused_with_a_clear_message(tmp_path):
    with sqlite3.connect(tmp_path / STORE_NAME) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer flows-tui"):
        Store.open(tmp_path)


def test_a_state_dir_that_cannot_be_created_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the state directory"):
        Store.open(tmp_path / "file" / "state")


WRITER = """
import datetime, sys
from flows_tui.record import events as ev
from flows_tui.record.store import Store
state_dir, name, runs, lines = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = Store.open(__import__("pathlib").Path(state_dir))
now = lambda: datetime.datetime.now(datetime.timezone.utc)
for r in range(runs):
    run_id = f"{name}-{r}"
    store.record([ev.FlowRunStarted(run_id, name, {}, now())])
    for chunk in range(0, lines, 50):
        store.record([ev.LogLines(run_id, tuple(ev.LogLine(now(), 20, f"{name} {r} {i}") for i in range(chunk, chunk + 50)))])
    store.record([ev.FlowStateChanged(run_id, "Completed", now())])
assert store.failure is None, store.failure
store.close()
"""


def test_two_processes_write_one_store_at_once_without_losing_or_blocking(tmp_path):
    Store.open(tmp_path)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, "20", "500"],
                                stderr=subprocess.PIPE, text=True) for name in ("tui", "serve")]
    reader = Store(tmp_path / STORE_NAME)
    reads = 0
    while any(w.poll() is None for w in writers):  # a third process reads meanwhile
        reader.runs()
        reads += 1
    for writer in writers:
        assert writer.wait(60) == 0, writer.stderr.read()
    summaries = reader.runs()
    assert len(summaries) == 40 and {s.state for s in summaries} == {"Completed"}
    for summary in summaries:
        messages = [s.line.message for s in reader.logs(summary.run_id)]
        name, number = summary.run_id.rsplit("-", 1)
        assert messages == [f"{name} {number} {i}" for i in range(500)]
    assert reads > 0


SLOW_FLOW = """
    import time
    from flows_tui import flow, task, get_run_logger

    @task
    def tick(i: int) -> int:
        for n in range(300):
            get_run_logger().info("tick %d line %d", i, n)
            time.sleep(0.05)
        return i

    @flow
    def slow():
        tick.map(range(2))

    @task
    def hello() -> str:
        get_run_logger().info("hello")
        return "hello"

    @flow
    def quick():
        return hello()
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, {"slow.py": SLOW_FLOW})


def _start_run(project: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env.update(NO_COLOR="1", CI="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "run", *args], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_until(process: subprocess.Popen, count: int, timeout: float = 60) -> list[str]:
    """Lines the user has seen on the terminal, until `count` tick lines were shown."""
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        for line in process.stdout:
            seen.append(line)
            if sum("tick" in s for s in seen) >= count:
                done.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(timeout), "".join(seen)
    return list(seen)


def test_a_killed_run_shows_crashed_with_every_line_the_user_saw(project):
    process = _start_run(project, "slow")
    shown = _read_until(process, 20)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    shown_ticks = [line.split("│ ", 1)[1].strip() for line in shown if "tick" in line]

    assert cli("list", cwd=project).returncode == 0  # any next command marks the run Crashed
    [summary] = Store(project / ".flows-tui" / STORE_NAME).runs()
    assert summary.state == "Crashed"
    runs = [json.loads(line) for line in cli("runs", "--json", cwd=project).stdout.splitlines()]
    assert [(r["flow"], r["state"]) for r in runs] == [("slow", "Crashed")]
    assert runs[0]["ended"] is not None
    result = cli("logs", runs[0]["run_id"], "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    stored = [json.loads(line)["message"] for line in result.stdout.splitlines()]
    assert set(shown_ticks) <= set(stored)


def test_logs_follow_prints_lines_as_they_come_and_returns_when_the_run_ends(project):
    process = _start_run(project, "slow")
    try:
        _read_until(process, 4)
        [run] = [json.loads(line) for line in cli("runs", "--json", cwd=project).stdout.splitlines()]
        follow = subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "logs", run["run_id"][:6], "--follow",
                                   "--json"], cwd=project, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "NO_COLOR": "1"})
        out, _ = follow.communicate(timeout=90)
        assert follow.returncode == 0
        assert process.wait(30) == 0
    finally:
        process.kill()
    messages = [json.loads(line)["message"] for line in out.splitlines()]
    assert len(messages) == 600
    assert [m for m in messages if m.startswith("tick 0 ")] == [f"tick 0 line {n}" for n in range(300)]


def test_runs_lists_newest_first_and_filters_by_flow(project):
    for _ in range(2):
        assert cli("run", "quick", cwd=project).returncode == 0
    runs = [json.loads(line) for line in cli("runs", "--json", cwd=project).stdout.splitlines()]
    assert [r["flow"] for r in runs] == ["quick", "quick"]
    assert runs[0]["started"] > runs[1]["started"]
    assert set(runs[0]) == {"run_id", "flow", "state", "started", "ended", "error", "owner", "cluster"}
    assert runs[0]["cluster"] == "LocalCluster"  # which cluster ran it
    assert cli("runs", "quick", "--json", cwd=project).stdout.count("\n") == 2
    unknown = cli("runs", "quik", cwd=project)
    assert unknown.returncode == 2 and "did you mean 'quick'" in unknown.stderr
    table = cli("runs", cwd=project)
    assert "✓ Completed" in table.stdout and runs[0]["run_id"] in table.stdout
    header, first = table.stdout.splitlines()[:2]
    assert header.split() == ["run", "flow", "state", "started", "duration", "cluster"]
    assert first.endswith("LocalCluster") and max(map(len, table.stdout.splitlines())) <= 80


def test_logs_of_an_unknown_run_or_task_name_it_and_exit_2(project):
    assert cli("run", "quick", cwd=project).returncode == 0
    missing = cli("logs", "ffffffff", cwd=project)
    assert missing.returncode == 2 and "no run 'ffffffff'" in missing.stderr
    [run] = [json.loads(line) for line in cli("runs", "--json", cwd=project).stdout.splitlines()]
    bad_task = cli("logs", run["run_id"], "--task", "tock", cwd=project)
    assert bad_task.returncode == 2 and "no task named 'tock'" in bad_task.stderr


def _at(seconds: float):
    import datetime

    return datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=seconds)


def test_the_state_directory_and_the_database_are_the_users_alone(tmp_path):
    """Logs, parameters and tracebacks are not world-readable on a shared machine: 0700 and 0600."""
    import datetime
    import stat

    state_dir = tmp_path / "project" / ".flows-tui"
    store = Store.open(state_dir)
    store.record([ev.FlowRunStarted("r1", "f", {}, datetime.datetime.now(datetime.timezone.utc))])
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    files = {path.name: stat.S_IMODE(path.stat().st_mode) for path in state_dir.iterdir()}
    assert {"flows-tui.db", "flows-tui.db-wal", "flows-tui.db-shm"} <= set(files), files
    assert set(files.values()) == {0o600}, files
    store.close()
