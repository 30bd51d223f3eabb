"""`flows-tui serve` and `flow.serve()` as subprocesses: scheduled runs, signals, the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import cli, wait_until
from flows_tui.record.store import STORE_NAME, Store

FLOWS = """
    import time
    from flows_tui import flow, task, get_run_logger

    @task
    def work(n: int) -> int:
        get_run_logger().info("working %d", n)
        return n

    @flow
    def beat(n: int = 1):
        return work(n)

    @flow
    def long_haul():
        for _ in range(600):  # short sleeps: a cancel interrupts the body at once
            time.sleep(0.05)
"""

CLUSTER = """
    [project]
    flows_dir = "flows"
    [cluster]
    n_workers = 1
    processes = false
"""


def _project(tmp_path: Path, schedules: str) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "jobs.py").write_text(textwrap.dedent(FLOWS))
    (tmp_path / "flows.toml").write_text(textwrap.dedent(CLUSTER) + textwrap.dedent(schedules))
    return tmp_path


def _serve(project: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "serve", *args], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _runs(project: Path) -> list:
    """The runs serve recorded so far; opened as any command opens the store (it may be being created)."""
    path = project / ".flows-tui" / STORE_NAME
    return Store.open(path.parent).runs() if path.exists() else []


def test_serve_runs_an_interval_schedule_until_sigterm_and_exits_0(tmp_path):
    project = _project(tmp_path, """
        [flows.beat]
        interval = "1s"
        parameters = { n = 7 }
    """)
    server = _serve(project)
    try:
        wait_until(lambda: sum(r.state == "Completed" for r in _runs(project)) >= 2, timeout=60,
                   message="two scheduled runs")
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    runs = _runs(project)
    assert {r.flow for r in runs} == {"beat"}
    assert output.count("▶ beat started") >= 2 and output.count("✓ Completed beat") >= 2
    assert output.rstrip().endswith("stopped")
    logs = cli("logs", runs[-1].run_id, "--json", cwd=project).stdout
    assert "working 7" in logs  # parameters from flows.toml


def test_sigterm_waits_the_grace_period_then_cancels_and_records_the_run_cancelled(tmp_path):
    project = _project(tmp_path, """
        [flows.long_haul]
        interval = "1h"
    """)
    server = _serve(project, "--grace", "0.5")
    try:
        wait_until(lambda: any(r.state == "Running" for r in _runs(project)), timeout=60, message="a running run")
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    [run] = _runs(project)
    assert run.state == "Cancelled"
    assert "cancelling 1 run(s) still in progress after 0.5s" in output


def test_serve_without_any_schedule_says_what_to_add_and_exits_2(tmp_path):
    project = _project(tmp_path, "")
    result = cli("serve", cwd=project)
    assert result.returncode == 2
    assert "no flow has a schedule" in result.stderr and "[flows.NAME]" in result.stderr


def test_a_scheduled_flow_with_a_bad_parameter_is_refused_before_serving(tmp_path):
    project = _project(tmp_path, """
        [flows.beat]
        cron = "0 * * * *"
        parameters = { n = "many" }
    """)
    result = cli("serve", cwd=project)
    assert result.returncode == 2
    assert "flow 'beat', parameter 'n'" in result.stderr


SCRIPT = """
    from flows_tui import flow, serve, task

    @task
    def ping(word: str) -> str:
        return word

    @flow
    def pinger(word: str = "hi"):
        return ping(word)

    if __name__ == "__main__":
        pinger.serve(interval=1, parameters={"word": "served"})
"""


def test_flow_serve_in_a_script_runs_on_its_schedule_and_records_the_runs(tmp_path):
    (tmp_path / "flows.toml").write_text(textwrap.dedent(CLUSTER))
    (tmp_path / "pinger.py").write_text(textwrap.dedent(SCRIPT))
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    script = subprocess.Popen([sys.executable, "pinger.py"], cwd=tmp_path, env={**env, "PYTHONUNBUFFERED": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: sum(r.state == "Completed" for r in _runs(tmp_path)) >= 2, timeout=60,
                   message="two runs of flow.serve")
    finally:
        script.send_signal(signal.SIGINT)
        output, _ = script.communicate(timeout=60)
    assert script.returncode == 0, output
    assert {r.flow for r in _runs(tmp_path)} == {"pinger"}


def test_serve_of_deployments_in_a_script_runs_each_flow_on_its_schedule(tmp_path):
    (tmp_path / "flows.toml").write_text(textwrap.dedent(CLUSTER))
    (tmp_path / "pinger.py").write_text(textwrap.dedent(SCRIPT).replace(
        'pinger.serve(interval=1, parameters={"word": "served"})',
        'serve(pinger.to_deployment("ping", interval=1, parameters={"word": "served"}),\n'
        '              pinger.with_options(name="ponger").to_deployment("pong", interval=1))'))
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    script = subprocess.Popen([sys.executable, "pinger.py"], cwd=tmp_path, env={**env, "PYTHONUNBUFFERED": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: {r.flow for r in _runs(tmp_path) if r.state == "Completed"} == {"pinger", "ponger"},
                   timeout=60, message="a run of each deployment")
    finally:
        script.send_signal(signal.SIGINT)
        output, _ = script.communicate(timeout=60)
    assert script.returncode == 0, output
    served = {r.flow: r.run_id for r in _runs(tmp_path)}
    store = Store.open(tmp_path / ".flows-tui")
    assert store.load_run(served["pinger"]).parameters == {"word": "served"}
    assert store.load_run(served["ponger"]).parameters == {"word": "hi"}


@pytest.mark.parametrize("call, message", [
    ("pinger.serve(cron='61 * * * *')", "invalid cron expression '61 * * * *'"),
    ("pinger.serve(interval='soon')", "invalid interval 'soon'"),
    ("pinger.serve(cron='0 * * * *', timezone='Mars/Olympus')", "unknown timezone 'Mars/Olympus'"),
    ("serve(pinger.to_deployment('a', interval=1), pinger.to_deployment('b', cron='0 * * * *'))",
     "pinger.to_deployment('b'): flow 'pinger' is served already"),
    ("serve(pinger.to_deployment('a', interval=1, parameters={'words': 'x'}))", "parameter 'words'"),
])
def test_flow_serve_with_a_bad_schedule_is_one_message_and_exit_2(tmp_path, call, message):
    (tmp_path / "pinger.py").write_text(textwrap.dedent(SCRIPT).replace(
        'pinger.serve(interval=1, parameters={"word": "served"})', call))
    result = subprocess.run([sys.executable, "pinger.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_list_shows_the_next_run_serve_will_make_and_none_while_paused(tmp_path):
    import datetime as dt
    import json

    project = _project(tmp_path, """
        [flows.beat]
        interval = "1h"
        timezone = "Europe/Berlin"
        [flows.long_haul]
        cron = "0 * * * *"
    """)
    store = Store.open(project / ".flows-tui")
    last = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=10)
    store.record_due("beat", last)
    store.set_paused("long-haul", True)
    entries = {e["name"]: e for e in map(json.loads, cli("list", "--json", cwd=project).stdout.splitlines())}
    assert dt.datetime.fromisoformat(entries["beat"]["next_run"]) == last + dt.timedelta(hours=1)
    assert entries["beat"]["next_run"].endswith(("+01:00", "+02:00"))  # in the schedule's timezone
    assert entries["long-haul"]["schedule"] == "cron 0 * * * * (UTC)" and entries["long-haul"]["next_run"] is None


def test_serve_reloads_a_saved_flow_file_and_runs_the_new_code_on_the_next_schedule(tmp_path):
    project = _project(tmp_path, """
        [flows.beat]
        interval = "1s"
    """)
    server = _serve(project)
    try:
        wait_until(lambda: any(r.state == "Completed" for r in _runs(project)), timeout=60, message="a first run")
        source = (project / "flows" / "jobs.py").read_text()
        (project / "flows" / "jobs.py").write_text(source.replace('"working %d"', '"reworked %d"'))

        def reworked() -> bool:
            runs = [r for r in _runs(project) if r.state == "Completed"]
            return bool(runs) and "reworked 1" in cli("logs", runs[0].run_id, "--json", cwd=project).stdout

        wait_until(reworked, timeout=60, message="a run of the saved code")
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert "reloaded jobs.py: ~ beat" in output


class _Lines:
    """A subprocess's output, read as it comes."""

    def __init__(self, process: subprocess.Popen) -> None:
        import threading

        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)


def test_a_second_serve_on_one_project_stands_by_and_takes_over_when_the_first_is_killed(tmp_path):
    project = _project(tmp_path, """
        [flows.beat]
        interval = "1s"
    """)
    first = _serve(project)
    second = None
    try:
        first_out = _Lines(first)
        wait_until(lambda: "▶ beat started" in first_out.text(), timeout=60, message="the first serve firing")
        second = _serve(project)
        second_out = _Lines(second)
        wait_until(lambda: "standing by" in second_out.text(), timeout=60, message="the second serve standing by")
        [said] = [line for line in second_out.lines if "standing by" in line]
        assert f"the schedules are fired by flows-tui serve (pid {first.pid} on " in said
        fired_by_first = first_out.text().count("▶ beat started")
        wait_until(lambda: first_out.text().count("▶ beat started") >= fired_by_first + 2, timeout=60,
                   message="two more runs from the first serve")
        assert "▶ beat started" not in second_out.text()  # one process fires; the other only watches

        first.kill()  # SIGKILL: the OS drops its lock
        first.wait(timeout=30)
        wait_until(lambda: "▶ beat started" in second_out.text(), timeout=60,
                   message="the second serve firing after the first was killed")
        assert f"firing the schedules now: flows-tui serve (pid {first.pid} on " in second_out.text()
    finally:
        for server in (first, second):
            if server is not None and server.poll() is None:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)
    assert second.returncode == 0, second_out.text()
