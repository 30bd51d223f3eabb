"""Log capture inside runs: any stdlib logger, get_run_logger, print, warnings, levels, throughput."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pytest

from flows_tui import flow, get_run_logger, task
from flows_tui.project.config import parse_config
from flows_tui.engine.flow_run import run_flow
from flows_tui.errors import ConfigError
from flows_tui.record.events import EventBus, LogLines
from flows_tui.project.flow_files import load_flow_file

from conftest import ROOT, Recorder, wait_until


def run_at(flow_, client, level: int = logging.INFO, **parameters):
    """Run `flow_` as the runner would with `[project] log_level = level`; returns (engine, lines)."""
    bus = EventBus()
    recorder = Recorder()
    bus.subscribe(recorder, name="test")
    engine = run_flow(flow_, parameters, client=client, bus=bus, log_level=level)
    assert bus.flush(10)
    return engine, [line for event in recorder.of(LogLines) for line in event.lines]


def by_message(lines) -> dict:
    return {line.message: line for line in lines}


def load(tmp_path: Path, source: str):
    path = tmp_path / "logging_flows.py"
    path.write_text(textwrap.dedent(source))
    loaded = load_flow_file(path)
    assert loaded.error is None, loaded.error
    return loaded


# Capture -----------------------------------------------------------------------------------------

def test_a_stdlib_logger_inside_a_task_is_captured_with_its_task_run_and_attempt(thread_client):
    @task
    def uses_a_library():
        logging.getLogger("mylib.io").info("read %d rows", 12)
        logging.warning("from the root logger")

    @flow
    def library_flow():
        uses_a_library()

    engine, lines = run_at(library_flow, thread_client)
    [task_run] = engine.flow_run.task_runs.values()
    lines = by_message(lines)
    info = lines["read 12 rows"]
    assert (info.task_run_id, info.attempt, info.level, info.logger) == (task_run.id, 1, logging.INFO, "mylib.io")
    assert info.time.tzinfo is not None
    root = lines["from the root logger"]
    assert (root.task_run_id, root.level, root.logger) == (task_run.id, logging.WARNING, "root")


def test_a_stdlib_logger_in_the_flow_body_is_captured_without_a_task_run(thread_client):
    @flow
    def body_logs():
        logging.getLogger("mylib").info("planning %s", "the day")

    _, lines = run_at(body_logs, thread_client)
    line = by_message(lines)["planning the day"]
    assert (line.task_run_id, line.attempt, line.level, line.logger) == (None, None, logging.INFO, "mylib")


def test_records_below_the_configured_level_are_dropped(thread_client):
    @task
    def chatty():
        logging.getLogger("mylib").debug("task debug")
        get_run_logger().debug("run logger debug")
        logging.getLogger("mylib").info("task info")

    @flow
    def levels():
        logging.getLogger("mylib").debug("body debug")
        chatty()

    _, lines = run_at(levels, thread_client)
    messages = {line.message for line in lines}
    assert "task info" in messages
    assert not messages & {"task debug", "run logger debug", "body debug"}

    _, lines = run_at(levels, thread_client, logging.WARNING)
    assert "task info" not in {line.message for line in lines}


def test_log_level_debug_lets_debug_records_through(thread_client):
    @task
    def chatty():
        logging.getLogger("mylib").debug("task debug")
        get_run_logger().debug("run logger debug")

    @flow
    def levels():
        logging.getLogger("mylib").debug("body debug")
        chatty()

    _, lines = run_at(levels, thread_client, logging.DEBUG)
    lines = by_message(lines)
    assert {"task debug", "run logger debug", "body debug"} <= set(lines)
    assert lines["task debug"].level == logging.DEBUG and lines["task debug"].task_run_id is not None


def test_a_level_set_on_a_library_logger_still_applies_inside_runs(thread_client):
    quiet = logging.getLogger("quietlib")
    quiet.setLevel(logging.ERROR)
    try:
        @task
        def uses_quietlib():
            quiet.info("quietlib info")
            quiet.error("quietlib error")
            # Dask sets the level of its loggers: DEBUG in the run must not wake them.
            logging.getLogger("distributed.worker").debug("dask debug")

        @flow
        def quiet_flow():
            uses_quietlib()

        _, lines = run_at(quiet_flow, thread_client, logging.DEBUG)
    finally:
        quiet.setLevel(logging.NOTSET)
    messages = {line.message for line in lines}
    assert "quietlib error" in messages
    assert not messages & {"quietlib info", "dask debug"}


def test_warnings_in_a_task_and_the_body_become_warning_lines(thread_client, recwarn):
    @task
    def warns():
        warnings.warn("disk almost full")

    @flow
    def warning_flow():
        warnings.warn("deprecated parameter", DeprecationWarning)
        warns()

    engine, lines = run_at(warning_flow, thread_client)
    warnings.warn("outside any run")
    [task_run] = engine.flow_run.task_runs.values()
    [in_task] = [line for line in lines if "disk almost full" in line.message]
    assert in_task.level == logging.WARNING and in_task.task_run_id == task_run.id and in_task.attempt == 1
    where = os.path.relpath(__file__)  # the project's own files are named relative to it
    assert in_task.message == f"UserWarning: disk almost full ({where}:{warns.fn.__code__.co_firstlineno + 2})"
    [in_body] = [line for line in lines if "deprecated parameter" in line.message]
    assert in_body.message.startswith("DeprecationWarning: deprecated parameter (") and in_body.task_run_id is None
    assert not any("outside any run" in line.message for line in lines)
    # Outside runs warnings go where they went before: here, pytest's recorder.
    recorded = [str(w.message) for w in recwarn]
    assert "outside any run" in recorded
    assert not {"disk almost full", "deprecated parameter"} & set(recorded)


def test_prints_under_log_prints_are_dropped_below_the_configured_level(thread_client):
    @task(log_prints=True)
    def prints():
        print("a print")
        logging.getLogger("mylib").error("an error")

    @flow
    def print_flow():
        prints()

    _, lines = run_at(print_flow, thread_client, logging.WARNING)
    assert [line.message for line in lines] == ["an error"]


def test_odd_records_become_lines_and_never_fail_the_task(tmp_path, process_client):
    # On worker processes: pytest's own log handler in this process re-raises formatting errors.
    loaded = load(tmp_path, """
        import logging

        from flows_tui import flow, task

        @task
        def odd():
            log = logging.getLogger("mylib")
            log.info("x" * 300_000)
            log.info({"rows": 3})
            log.info("%d rows", "three")
            try:
                raise KeyError("missing")
            except KeyError:
                log.exception("lookup failed")
            return "still running"

        @flow
        def odd_flow():
            return odd()
    """)
    engine, lines = run_at(loaded.flows["odd-flow"], process_client)
    assert engine.return_value == "still running", engine.final
    long, mapping, unformattable, failed = [line.message for line in lines if line.logger == "mylib"]
    assert long.startswith("x" * 100_000) and long.endswith("[200000 more characters cut]")
    assert mapping == "{'rows': 3}"
    assert unformattable.startswith("could not format log message '%d rows' with arguments ('three',): TypeError")
    assert failed.startswith("lookup failed\nTraceback (most recent call last):")
    assert failed.endswith("KeyError: 'missing'")


# Attempts, ordering, delivery ---------------------------------------------------------------------

def test_each_attempt_of_a_retried_task_tags_its_own_lines(thread_client, tmp_path):
    marker = tmp_path / "failed-once"

    @task(retries=1, retry_delay_seconds=0)
    def flaky():
        logging.getLogger("mylib").info("trying")
        if not marker.exists():
            marker.touch()
            logging.getLogger("mylib").error("giving up on this attempt")
            raise RuntimeError("first attempt fails")
        logging.getLogger("mylib").info("worked")

    @flow
    def retried():
        flaky()

    engine, lines = run_at(retried, thread_client)
    [task_run] = engine.flow_run.task_runs.values()
    assert len(task_run.attempts) == 2
    tagged = [(line.message, line.attempt) for line in lines if line.logger == "mylib"]
    assert tagged == [("trying", 1), ("giving up on this attempt", 1), ("trying", 2), ("worked", 2)]


def test_a_line_reaches_the_client_while_its_task_is_still_running(thread_client, tmp_path):
    seen = tmp_path / "seen"
    delays: list[float] = []

    def watch(batch: list) -> None:
        for event in batch:
            for line in event.lines if isinstance(event, LogLines) else ():
                if line.message == "progress 1":
                    delays.append((datetime.now(timezone.utc) - line.time).total_seconds())
                    seen.touch()

    @task
    def long_task():
        logging.getLogger("mylib").info("progress 1")
        wait_until(seen.exists, timeout=10, message="the line to reach the client while the task runs")

    @flow
    def live():
        long_task()

    bus = EventBus()
    bus.subscribe(watch, name="watch")
    engine = run_flow(live, {}, client=thread_client, bus=bus)
    assert engine.final.name == "Completed", engine.final.message
    assert len(delays) == 1 and delays[0] < 1.0  # shipped every 50 ms; generous for a loaded machine


def test_tasks_logging_5000_lines_in_a_loop_on_worker_processes_deliver_all_in_order(tmp_path, process_client):
    loaded = load(tmp_path, """
        import logging
        import warnings

        from flows_tui import flow, task

        @task(log_prints=True)
        def tight(index, count):
            log = logging.getLogger("tight")
            for number in range(count):
                log.info("task %d line %d", index, number)
            print("printed on a worker process")
            warnings.warn("warned on a worker process")
            return count

        @flow
        def loops(count: int = 5000):
            return sum(tight.map(range(2), count=count).result())
    """)
    engine, lines = run_at(loaded.flows["loops"], process_client, count=5000)
    assert engine.return_value == 10_000
    task_runs = engine.flow_run.task_runs
    assert len(task_runs) == 2
    for task_run_id, task_run in task_runs.items():
        own = [line for line in lines if line.task_run_id == task_run_id]
        numbers = [int(line.message.rsplit(" ", 1)[1]) for line in own if line.logger == "tight"]
        assert numbers == list(range(5000)), f"{task_run.name}: lines lost or out of order"
        assert {line.attempt for line in own} == {1}
        assert own[-2].message == "printed on a worker process"
        assert own[-1].message.startswith("UserWarning: warned on a worker process (")


# Outside runs ------------------------------------------------------------------------------------

def test_logging_outside_any_run_is_not_captured_and_still_reaches_other_handlers(thread_client, tmp_path,
                                                                                 caplog):
    task_started, outside_logged = tmp_path / "task-started", tmp_path / "outside-logged"

    @task
    def waits():
        logging.getLogger("mylib").warning("inside the task")
        task_started.touch()
        wait_until(outside_logged.exists, timeout=10, message="the other thread to log")

    @flow
    def meanwhile():
        waits()

    def another_thread() -> None:
        wait_until(task_started.exists, timeout=10, message="the task to start")
        logging.getLogger("mylib").warning("outside, during the run")
        logging.getLogger("mylib").info("outside info, during the run")
        outside_logged.touch()

    root_level = logging.getLogger().level
    helper = threading.Thread(target=another_thread)
    helper.start()
    engine, lines = run_at(meanwhile, thread_client)
    helper.join(10)
    assert engine.final.name == "Completed", engine.final.message
    messages = {line.message for line in lines}
    assert "inside the task" in messages
    assert not messages & {"outside, during the run", "outside info, during the run"}
    outside = [r.getMessage() for r in caplog.records if r.getMessage().startswith("outside")]
    assert outside == ["outside, during the run"]  # INFO stays below the root logger's WARNING there
    assert logging.getLogger().level == root_level


def test_outside_runs_unhandled_warnings_still_reach_stderr(tmp_path):
    script = tmp_path / "outside.py"
    script.write_text(textwrap.dedent("""
        import logging

        from distributed import Client, LocalCluster

        from flows_tui import flow
        from flows_tui.engine.flow_run import run_flow
        from flows_tui.record.events import EventBus, LogLines

        @flow
        def body():
            logging.getLogger("app").info("inside the run")

        if __name__ == "__main__":
            with LocalCluster(n_workers=1, processes=False, dashboard_address=":0",
                              silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
                bus = EventBus()
                lines = []
                bus.subscribe(lambda batch: lines.extend(
                    line.message for e in batch if isinstance(e, LogLines) for line in e.lines))
                run_flow(body, {}, client=client, bus=bus)
                bus.flush()
            logging.getLogger("app").warning("outside warning")
            logging.getLogger("app").info("outside info")
            print(lines, logging.getLogger().level)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['inside the run'] 30"
    assert "outside warning" in done.stderr.splitlines()
    assert "outside info" not in done.stderr


# Configuration -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, level", [("DEBUG", logging.DEBUG), ("warning", logging.WARNING),
                                          ("Critical", logging.CRITICAL)])
def test_project_log_level_is_read_as_a_level(tmp_path, value, level):
    config = parse_config(f'[project]\nlog_level = "{value}"\n', path=tmp_path / "flows.toml", environ={})
    assert config.project.log_level == level


def test_project_log_level_defaults_to_info(tmp_path):
    assert parse_config("", path=tmp_path / "flows.toml", environ={}).project.log_level == logging.INFO


def test_an_unknown_log_level_is_an_error_naming_the_key_line_and_levels(tmp_path):
    text = '[project]\nflows_dir = "."\nlog_level = "LOUD"\n'
    with pytest.raises(ConfigError) as error:
        parse_config(text, path=tmp_path / "flows.toml", environ={})
    assert error.value.line == 3 and error.value.key == "project.log_level"
    assert "'LOUD'" in str(error.value) and "DEBUG, INFO, WARNING, ERROR, CRITICAL" in str(error.value)
