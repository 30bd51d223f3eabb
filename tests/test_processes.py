"""On worker processes: code travels by value, data moves worker to worker, deaths are recorded."""

from __future__ import annotations

import os

from flows_tui.engine.flow_run import run_flow
from flows_tui.record.events import EventBus

from conftest import Recorder, load_flows, wait_until


def run_loaded(loaded, flow_name, client, **parameters):
    flow = loaded.flows[flow_name]
    bus = EventBus()
    recorder = Recorder()
    bus.subscribe(recorder)
    engine = run_flow(flow, parameters, client=client, bus=bus)
    bus.flush()
    return engine, recorder


def test_a_worker_dying_mid_task_is_a_crashed_attempt_and_dask_runs_it_again(tmp_path, process_client):
    marker = tmp_path / "died-once"
    loaded = load_flows(tmp_path, f"""
        import os
        import time
        from pathlib import Path
        from flows_tui import flow, task

        @task
        def fragile():
            marker = Path({str(marker)!r})
            time.sleep(0.3)  # dies mid-task, after its start was reported
            if not marker.exists():
                marker.write_text("x")
                os._exit(1)
            return "survived"

        @flow
        def dying():
            return fragile()
    """)
    engine, _ = run_loaded(loaded, "dying", process_client)
    [task_run] = engine.flow_run.task_runs.values()
    assert engine.final.name == "Completed" and engine.return_value == "survived"
    assert [a.state for a in task_run.attempts] == ["Crashed", "Completed"]
    assert "worker" in task_run.attempts[0].error


def test_upstream_data_moves_between_workers_not_through_the_driver(tmp_path, process_client):
    log = tmp_path / "unpickled-in"
    loaded = load_flows(tmp_path, f"""
        import os
        from flows_tui import flow, task

        class Payload:
            def __init__(self, size):
                self.data = b"x" * size
            def __setstate__(self, state):
                with open({str(log)!r}, "a") as handle:
                    handle.write(f"{{os.getpid()}}\\n")
                self.__dict__.update(state)

        @task
        def produce(i):
            return Payload(1000 + i)

        @task
        def measure(payloads):
            return sum(len(p.data) for p in payloads)

        @flow
        def moving():
            return measure(produce.map(range(6)))
    """)
    engine, _ = run_loaded(loaded, "moving", process_client)
    assert engine.return_value == sum(1000 + i for i in range(6))
    unpickled_in = {int(pid) for pid in log.read_text().split()} if log.exists() else set()
    assert os.getpid() not in unpickled_in


def test_code_from_a_private_module_runs_on_process_workers(tmp_path, process_client):
    loaded = load_flows(tmp_path, """
        from flows_tui import flow, task

        def helper(x):
            return x * 3

        @task
        def triple(x):
            return helper(x)

        @flow
        def private():
            return triple(5)
    """)
    assert loaded.module.__name__.startswith("flows_tui_user_")
    engine, _ = run_loaded(loaded, "private", process_client)
    assert engine.return_value == 15


def test_classes_defined_in_a_flow_file_travel_between_worker_processes_by_value(tmp_path, process_client):
    # An Enum parameter and a dataclass one task returns to another: the standard pickler
    # that Dask tries first would send their classes by a module name no worker can import.
    loaded = load_flows(tmp_path, """
        import enum
        from dataclasses import dataclass
        from flows_tui import flow, task

        class Colour(enum.Enum):
            RED = "red"
            BLUE = "blue"

        @dataclass
        class Trip:
            fare: float
            colour: Colour

        @task
        def make(i: int, colour: Colour) -> Trip:
            return Trip(fare=float(i), colour=colour)

        @task
        def describe(trips: list) -> str:
            return ",".join(f"{t.colour.value}:{t.fare:g}" for t in trips)

        @flow
        def trips(colour: Colour = Colour.BLUE):
            return describe(make.map(range(4), colour=colour))
    """, name="typed_flows.py")
    engine, _ = run_loaded(loaded, "trips", process_client, colour=loaded.module.Colour.RED)
    assert engine.final.name == "Completed", engine.final.message
    assert engine.return_value == "red:0,red:1,red:2,red:3"


def _niceness_of_every_thread() -> list[int]:
    """On a worker: the nice value of each of its threads (Linux keeps one per thread)."""
    import os

    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    values = []
    for thread in threads:
        try:
            values.append(os.getpriority(os.PRIO_PROCESS, thread))
        except OSError:
            pass
    return values


def _task_niceness(_):
    import os

    return os.getpriority(os.PRIO_PROCESS, 0)  # the thread running the task


def test_behind_the_ui_the_embedded_workers_yield_the_cpu_even_after_a_restart():
    import signal

    from flows_tui.engine.cluster import UI_WORKER_NICENESS, ClusterChoice, connect

    ours = os.getpriority(os.PRIO_PROCESS, 0)
    nicer = min(19, ours + UI_WORKER_NICENESS)
    choice = ClusterChoice(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None)
    with connect(choice, behind_ui=True) as cluster:
        client = cluster.client
        assert os.getpriority(os.PRIO_PROCESS, 0) == ours  # the UI's own process is left as it was
        by_worker = client.run(_niceness_of_every_thread)
        assert len(by_worker) == 2 and all(set(values) == {nicer} for values in by_worker.values()), by_worker
        assert set(client.gather(client.map(_task_niceness, range(8)))) == {nicer}

        # A worker process killed: the nanny starts another, and it is as nice as the first.
        pid = next(iter(client.run(os.getpid).values()))
        os.kill(pid, signal.SIGKILL)

        def restarted():
            pids = client.run(os.getpid, on_error="ignore")  # the dead one errs until the scheduler knows
            return len(pids) == 2 and pid not in pids.values()

        wait_until(restarted, timeout=30, message="the nanny to restart the killed worker")
        by_worker = client.run(_niceness_of_every_thread)
        assert all(set(values) == {nicer} for values in by_worker.values()), by_worker

    # `flows-tui run` and `serve` (no UI): the workers keep the priority they were started with.
    with connect(choice) as cluster:
        by_worker = cluster.client.run(_niceness_of_every_thread)
        assert all(set(values) == {ours} for values in by_worker.values()), by_worker
