"""A worker process killed from outside mid-run: the run ends, every execution is an attempt.

Prefect users see completed tasks re-run after a worker dies, and KilledWorker turned into
the wrong state. Here each task execution appends a line to a file as it starts (map
index, worker pid), so the test knows every execution that really happened, including
Dask's re-execution of results that were lost with the worker; the store must hold one
attempt for each of them, the ones on the killed worker Crashed. The kill comes once the
task the worker runs shows Running (its start report has reached the run), as it would for
a user who watches the run and kills the worker.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import dask
import pytest

from flows_tui.record import events as ev
from flows_tui.engine.flow_run import run_flow
from flows_tui.record.store import Store

from conftest import free_port, load_flows, local_client, start_process, stop_processes, wait_for_worker

from .conftest import sized

ITEMS = sized(24, 12)

STEADY = """
    import os
    import time
    from flows_tui import flow, task

    @task
    def step(i: int, executions: str, seconds: float) -> int:
        with open(executions, "a") as out:
            out.write(f"{i} {os.getpid()}\\n")
        time.sleep(seconds)
        return i * i

    @task
    def total(values: list) -> int:
        return sum(values)

    @flow
    def steady(items: int, executions: str, seconds: float = 0.4) -> int:
        return total(step.map(range(items), executions=executions, seconds=seconds))
"""


@pytest.fixture
def own_worker_processes():
    """Two worker processes under nannies, only for this test: one of them gets killed."""
    with local_client(processes=True, threads_per_worker=1) as client:
        yield client


def executions(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    return [(int(i), int(pid)) for i, pid in (line.split() for line in path.read_text().splitlines() if line)]


@pytest.mark.timeout(120)
def test_a_worker_killed_mid_run_every_execution_is_an_attempt_and_the_run_ends(tmp_path: Path, own_worker_processes,
                                                                               figures):
    import threading

    loaded = load_flows(tmp_path, STEADY, "steady.py")
    log = tmp_path / "executions"
    store = Store.open(tmp_path / "state")
    bus = ev.EventBus()
    bus.set_journal(store.record)
    started: list = []
    bus.subscribe(lambda batch: started.extend(e for e in batch if isinstance(e, ev.AttemptStarted)), name="test")
    outcome: dict = {}

    def go() -> None:
        outcome["engine"] = run_flow(loaded.flows["steady"], {"items": ITEMS, "executions": str(log)},
                                     client=own_worker_processes, bus=bus)

    runner = threading.Thread(target=go)
    runner.start()
    # Kill a worker once it has finished a few tasks (their results live in it) and the task it
    # runs now shows Running, as a user watching the run would see it.
    deadline = time.monotonic() + 60
    while True:
        ran = executions(log)
        seen = Counter(pid for _, pid in ran)
        victim = next((pid for pid, count in seen.items() if count >= 3), None)
        if victim is not None and len(started) >= len(ran):
            break
        assert time.monotonic() < deadline, "the tasks never started"
        time.sleep(0.02)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    runner.join(90)
    assert not runner.is_alive(), "the run did not end after the worker was killed"
    ended_after = time.monotonic() - killed_at
    assert bus.flush(30)
    bus.remove_journal()
    engine = outcome["engine"]

    # The run ends and its answer is right: Dask ran the lost work again.
    assert engine.final.name == "Completed", engine.final
    assert engine.return_value == sum(i * i for i in range(ITEMS))

    store.close()
    recorded = Store.open(tmp_path / "state").load_run(engine.run_id)
    steps = {t.map_index: t for t in recorded.task_runs.values() if t.task == "step"}
    assert sorted(steps) == list(range(ITEMS))
    ran = executions(log)
    per_index = Counter(i for i, _ in ran)
    # Every execution that happened is an attempt in the store: none missing, none invented.
    for index, task_run in steps.items():
        assert len(task_run.attempts) == per_index[index], (index, task_run.attempts, per_index[index])
        assert task_run.state == "Completed"
        assert task_run.attempts[-1].state == "Completed"
    crashed = [a for t in steps.values() for a in t.attempts if a.state == "Crashed"]
    assert crashed, "the killed worker's attempts are recorded Crashed"
    assert all("worker" in (a.error or "") for a in crashed)
    on_victim = sum(1 for _, pid in ran if pid == victim)
    again = sum(per_index.values()) - ITEMS
    figures.add("killed", f"1 of 2 worker processes (SIGKILL) after it ran {on_victim} of {ITEMS} tasks")
    figures.add("run", f"Completed with the right answer {ended_after:.1f} s after the kill; "
                       f"{sum(per_index.values())} executions = {sum(len(t.attempts) for t in steps.values())} "
                       f"attempts recorded ({again} ran again, {len(crashed)} Crashed)")


def test_a_task_that_kills_every_worker_it_runs_on_ends_crashed_not_failed(tmp_path: Path, process_client, figures):
    # Dask gives up on it after its allowed failures (KilledWorker): the task run is Crashed,
    # every execution an attempt, and the run Failed because a task run did not succeed.
    # It dies 0.1 s into each execution, on the first worker process and on those the nannies
    # start again, a new process each time.
    executions = tmp_path / "executions"
    loaded = load_flows(tmp_path, f"""
        import os
        import time
        from flows_tui import flow, task

        @task
        def suicidal():
            with open({str(executions)!r}, "a") as out:
                out.write("x\\n")
            time.sleep(0.1)
            os._exit(1)

        @flow
        def always_dying():
            suicidal()
    """, "dying.py")
    engine = run_flow(loaded.flows["always-dying"], {}, client=process_client, bus=ev.EventBus())
    [task_run] = engine.flow_run.task_runs.values()
    assert task_run.state == "Crashed"
    assert "KilledWorker" in task_run.message
    assert engine.final.name == "Failed"
    ran = len(executions.read_text().split())
    assert ran == dask.config.get("distributed.scheduler.allowed-failures") + 1  # Dask's own limit
    assert [a.state for a in task_run.attempts] == ["Crashed"] * ran
    process_client.wait_for_workers(2, timeout=60)  # the nannies bring the shared cluster back whole
    figures.add("a task that kills its worker 0.1 s into every execution",
                f"{ran} executions, {len(task_run.attempts)} attempts recorded, each Crashed; "
                "the task run Crashed (KilledWorker), the run Failed")


SUDDEN = """
    import os
    from flows_tui import flow, task

    @task
    def sudden():
        os._exit(1)

    @flow
    def dies_at_once():
        sudden()
"""


def test_a_task_that_ends_its_worker_at_its_first_instruction_has_every_execution_as_an_attempt(
        tmp_path: Path, own_worker_processes, figures):
    # Its start report never leaves the worker (the process is gone before the next batch of
    # reports): each execution is still an attempt, Crashed, read from what the worker wrote
    # down as it started the attempt.
    loaded = load_flows(tmp_path, SUDDEN, "sudden.py")
    engine = run_flow(loaded.flows["dies-at-once"], {}, client=own_worker_processes, bus=ev.EventBus())
    [task_run] = engine.flow_run.task_runs.values()
    assert task_run.state == "Crashed" and "KilledWorker" in task_run.message
    executions = dask.config.get("distributed.scheduler.allowed-failures") + 1  # Dask's own limit
    assert [a.state for a in task_run.attempts] == ["Crashed"] * executions, task_run.attempts
    assert all("worker" in (a.error or "") and "died" in (a.error or "") for a in task_run.attempts)
    figures.add("a task that ends its worker at its first instruction",
                f"{executions} executions, {len(task_run.attempts)} attempts recorded, each Crashed")


def test_a_worker_elsewhere_that_ends_at_a_tasks_first_instruction_has_every_execution_as_an_attempt(
        tmp_path: Path, figures):
    # A real `dask scheduler` and `dask worker` (under its nanny) with a temporary folder of their
    # own: the engine cannot read the files the worker writes its attempts' starts in, as for a
    # worker on another machine. The nanny, there, reads them when the worker process ends and
    # sends them on. The scheduler allows one failure: two executions, each on a fresh process.
    import sys

    from distributed import Client

    from flows_tui.engine import attempt_ledger

    loaded = load_flows(tmp_path, SUDDEN, "sudden.py")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "tmp").mkdir(parents=True)
    address = f"tcp://127.0.0.1:{free_port()}"
    scheduler = start_process([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", address.rsplit(":", 1)[1], "--no-dashboard"], elsewhere,
                              tmp_path / "scheduler.log", env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
    worker = start_process([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                            "--no-dashboard", "--host", "127.0.0.1"], elsewhere, tmp_path / "worker.log",
                           env={"TMPDIR": str(elsewhere / "tmp")})
    try:
        wait_for_worker(address)
        with Client(address, set_as_default=False) as client:
            engine = run_flow(loaded.flows["dies-at-once"], {}, client=client, bus=ev.EventBus())
    finally:
        stop_processes(worker, scheduler)
    [task_run] = engine.flow_run.task_runs.values()
    assert task_run.state == "Crashed" and "KilledWorker" in task_run.message
    assert [a.state for a in task_run.attempts] == ["Crashed"] * 2, task_run.attempts
    assert all("worker" in (a.error or "") and "died" in (a.error or "") for a in task_run.attempts)
    # Written where the worker's machine keeps them (and removed by the nanny once sent on),
    # never where the engine looks for them.
    assert (elsewhere / "tmp" / attempt_ledger.ledger_path("tcp://127.0.0.1:1").parent.name).is_dir()
    worker_log = (tmp_path / "worker.log").read_text()
    for port in re.findall(r"Start worker at:\s+tcp://127.0.0.1:(\d+)", worker_log):
        assert not attempt_ledger.open_starts(f"tcp://127.0.0.1:{port}", engine.topic), port
    figures.add("a task that ends its worker at its first instruction, on a worker whose files the engine cannot read",
                f"2 executions, {len(task_run.attempts)} attempts recorded, each Crashed (sent on by the nanny)")


def test_a_worker_without_a_nanny_elsewhere_that_ends_at_a_tasks_first_instruction_has_every_execution_as_an_attempt(
        tmp_path: Path, monkeypatch, figures):
    # `dask worker --no-nanny` with a temporary folder of its own: no nanny sends the starts on,
    # and the engine cannot read the files it writes them in; where the engine looks, files that
    # earlier processes at the same addresses left. The scheduler tells which tasks the worker
    # could have been running when it was removed. Two tasks on one thread: `first` ends the
    # process at its first instruction while `second` waits its turn (assigned, never executed).
    # A second worker starts once the first execution began; the scheduler allows one failure:
    # `first` runs on each worker, `second` on none.
    import json
    import sys
    import tempfile
    import threading

    from distributed import Client

    from flows_tui.engine import attempt_ledger

    log = tmp_path / "executions"
    loaded = load_flows(tmp_path, f"""
        import os
        from flows_tui import flow, task

        @task
        def sudden(i: int) -> int:
            with open({str(log)!r}, "a") as out:
                out.write(f"{{i}}\\n")
            if i == 0:
                os._exit(1)
            return i

        @flow
        def dies_at_once():
            sudden.map(range(2))
    """, "sudden.py")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "tmp").mkdir(parents=True)
    (tmp_path / "here").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "here"))
    address = f"tcp://127.0.0.1:{free_port()}"
    ports = [free_port() for _ in range(2)]
    for port in ports:
        stale = attempt_ledger.ledger_path(f"tcp://127.0.0.1:{port}")
        stale.parent.mkdir(mode=0o700, exist_ok=True)
        stale.write_bytes(json.dumps({"pid": 1}).encode().ljust(attempt_ledger.SLOT, b"\0"))

    def worker(port: int):
        return start_process([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                              "--no-nanny", "--worker-port", str(port), "--no-dashboard", "--host", "127.0.0.1"],
                             elsewhere, tmp_path / f"worker{port}.log", env={"TMPDIR": str(elsewhere / "tmp")})

    scheduler = start_process([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", address.rsplit(":", 1)[1], "--no-dashboard"], elsewhere,
                              tmp_path / "scheduler.log", env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
    workers = [worker(ports[0])]
    began = threading.Event()

    def second_worker() -> None:
        while not began.wait(0.05):
            if log.exists() and log.read_text():
                workers.append(worker(ports[1]))
                return

    starter = threading.Thread(target=second_worker)
    starter.start()
    try:
        wait_for_worker(address)
        with Client(address, set_as_default=False) as client:
            engine = run_flow(loaded.flows["dies-at-once"], {}, client=client, bus=ev.EventBus())
    finally:
        began.set()
        starter.join()
        stop_processes(*workers, scheduler)
    first, second = sorted(engine.flow_run.task_runs.values(), key=lambda t: t.map_index)
    assert log.read_text().split() == ["0", "0"]  # `first` twice, `second` never
    assert first.state == "Crashed" and "KilledWorker" in first.message
    assert [a.state for a in first.attempts] == ["Crashed"] * 2, first.attempts
    died = {a.error for a in first.attempts}
    assert died == {f"worker tcp://127.0.0.1:{port} died while running this attempt" for port in ports}, died
    assert second.state == "Crashed" and second.attempts == [], second.attempts  # assigned, never executed
    figures.add("the same on `dask worker --no-nanny` (no nanny, files flows-tui cannot read), one thread, "
                "another task waiting its turn",
                f"2 executions, {len(first.attempts)} attempts recorded, each Crashed (told by the scheduler); "
                f"the waiting task {len(second.attempts)} attempts")


def test_the_files_of_worker_processes_long_gone_are_cleared_away(tmp_path: Path):
    # Every worker process leaves its file of attempt starts behind (so that its death can be read);
    # one a worker of every run piled up until the machine rebooted. A process that wrote one now
    # clears away, as it exits, those of processes gone for 10 minutes; never one of a live process
    # or a recent one, nor its own (a nanny or an engine may read it yet).
    import json
    import subprocess
    import sys

    from flows_tui.engine import attempt_ledger

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    hour_ago = time.time() - 3600
    folder = tmp_path / attempt_ledger.ledger_path("tcp://127.0.0.1:1").parent.name
    folder.mkdir(mode=0o700)

    def ledger(name: str, pid: int | None, mtime: float) -> None:
        path = folder / name
        path.write_bytes(b"" if pid is None else json.dumps({"pid": pid}).encode().ljust(attempt_ledger.SLOT, b"\0"))
        os.utime(path, (mtime, mtime))

    ledger("gone_long_ago", gone.pid, hour_ago)
    ledger("unknown_long_ago", None, hour_ago)  # written before files named their process
    ledger("alive_idle", os.getpid(), hour_ago)
    ledger("gone_just_now", gone.pid, time.time())
    # A process that starts an attempt (its file: tcp___127_0_0_1_1), then exits.
    subprocess.run([sys.executable, "-c", "from flows_tui.engine import attempt_ledger as ledger; "
                    "assert ledger.started('tcp://127.0.0.1:1', 'flows-tui-run', {'k': 'start'})"],
                   env={**os.environ, "TMPDIR": str(tmp_path)}, check=True, timeout=60)
    assert sorted(path.name for path in folder.iterdir()) == ["alive_idle", "gone_just_now", "tcp___127_0_0_1_1"]
