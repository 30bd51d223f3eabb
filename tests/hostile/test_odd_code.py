"""Odd code in a task: what ends a process elsewhere ends only the attempt here."""

from __future__ import annotations

from conftest import load_flows

ODD_TASKS = """
    import asyncio
    import sys

    from flows_tui import flow, task


    class Custom(BaseException):
        pass


    RAISES = {
        "exit": lambda: sys.exit(),
        "exit3": lambda: sys.exit(3),
        "system_exit_0": lambda: (_ for _ in ()).throw(SystemExit(0)),
        "keyboard": lambda: (_ for _ in ()).throw(KeyboardInterrupt()),
        "cancelled": lambda: (_ for _ in ()).throw(asyncio.CancelledError("stop")),
        "custom": lambda: (_ for _ in ()).throw(Custom("mine")),
    }


    @task(retries=1, retry_delay_seconds=0)
    def odd(kind):
        RAISES[kind]()


    @task
    def fine():
        return 42


    @flow
    def odd_flow():
        states = [odd.submit(kind, return_state=False) for kind in RAISES]
        after = fine.submit(wait_for=[])
        return [s.wait() for s in states], after.result()


    @flow
    def body_reads_it():
        return odd("exit3")
"""

EXPECTED = {
    "odd-0": "SystemExit", "odd-1": "SystemExit: 3", "odd-2": "SystemExit: 0", "odd-3": "KeyboardInterrupt",
    "odd-4": "CancelledError: stop", "odd-5": "Custom: mine",
}


def test_sys_exit_keyboard_interrupt_cancelled_and_base_exceptions_fail_the_attempt_not_the_worker(
        tmp_path, run, process_client):
    loaded = load_flows(tmp_path, ODD_TASKS)
    workers_before = set(process_client.scheduler_info()["workers"])
    engine, _ = run(loaded.flows["odd-flow"], client=process_client)
    task_runs = {t.name: t for t in engine.flow_run.task_runs.values()}
    for name, error in EXPECTED.items():
        task_run = task_runs[name]
        assert task_run.state == "Failed", (name, task_run.state, task_run.error)
        assert task_run.error == error, (name, task_run.error)
        assert [a.state for a in task_run.attempts] == ["Failed", "Failed"], name  # retried per retries
    assert task_runs["fine-0"].state == "Completed"
    assert set(process_client.scheduler_info()["workers"]) == workers_before  # no worker died


def test_the_flow_body_gets_an_error_it_can_handle_not_a_system_exit(tmp_path, run, process_client):
    loaded = load_flows(tmp_path, ODD_TASKS)
    engine, _ = run(loaded.flows["body-reads-it"], client=process_client)
    assert engine.flow_run.state == "Failed"
    assert "SystemExit: 3" in (engine.flow_run.message or ""), engine.flow_run.message


def test_lines_from_a_thread_a_task_started_reach_the_runs_logs_also_after_the_task_returned(tmp_path):
    """They were dropped (get_run_logger, print) or went raw to the worker's stderr (a library's logger)."""
    import json

    from conftest import PROCESS_CLUSTER_TOML, cli, write_project

    project = write_project(tmp_path, {"threads.py": """
        import logging
        import threading
        import time
        from flows_tui import flow, get_run_logger, task

        done = threading.Event()

        def later(logger):
            time.sleep(0.3)  # the task has returned by now
            logger.info("run logger from the thread")
            logging.getLogger("some.library").warning("library from the thread")
            print("print from the thread")

        @task(log_prints=True)
        def starts_a_thread():
            threading.Thread(target=later, args=(get_run_logger(),)).start()
            return 1

        @task
        def meanwhile(x):
            time.sleep(1.5)  # the run goes on while the thread logs
            return x

        @flow
        def threads():
            return meanwhile(starts_a_thread())
    """}, toml=PROCESS_CLUSTER_TOML)
    result = cli("run", "threads", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "library from the thread" not in result.stderr  # never raw from the worker: a log line on stdout
    assert "starts_a_thread-0 │ library from the thread" in result.stdout
    run_id = json.loads(cli("runs", "--json", cwd=project).stdout.splitlines()[0])["run_id"]
    lines = [json.loads(line) for line in cli("logs", run_id, "--json", cwd=project).stdout.splitlines()]
    by_message = {line["message"]: line["task"] for line in lines}
    for message in ("run logger from the thread", "library from the thread", "print from the thread"):
        assert by_message.get(message) == "starts_a_thread-0", (message, lines)
