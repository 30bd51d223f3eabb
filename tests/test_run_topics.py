"""A run's reports reach it when the scheduler, not the run, subscribes its client to them."""

from __future__ import annotations

from flows_tui import flow, task
from flows_tui.engine import run_topics

from conftest import wait_until


@task(log_prints=True)
def shout(i: int) -> int:
    print(f"line {i}")
    return i


@flow
def shouting(n: int) -> int:
    return sum(shout.map(range(n)).result())


def test_after_a_clients_first_run_its_runs_send_no_subscription_and_lose_no_report(run, process_client):
    # The first run on a client has the scheduler subscribe its later runs, without waiting for it.
    engine, _ = run(shouting, client=process_client, n=2)
    assert engine.final.name == "Completed"
    wait_until(lambda: run_topics.subscribed_by_scheduler(process_client), timeout=20,
               message="the scheduler's handler of graphs to be wrapped")

    sent: list[str] = []
    send = process_client._send_to_scheduler

    def recording(message: dict) -> None:
        sent.append(message.get("op"))
        send(message)

    process_client._send_to_scheduler = recording
    try:
        engine, recorder = run(shouting, client=process_client, n=3)
    finally:
        del process_client._send_to_scheduler

    # No message of the run's own before its first task (each held the task up to 10 ms)...
    assert "update-graph" in sent and "subscribe-topic" not in sent
    # ...and every report still came: each task run's states and its printed line, from its worker.
    assert engine.final.name == "Completed" and engine.return_value == 3
    task_runs = list(engine.flow_run.task_runs.values())
    assert [t.state for t in task_runs] == ["Completed"] * 3
    assert all(len(t.attempts) == 1 and t.attempts[0].state == "Completed" for t in task_runs)
    assert sorted(m for m in recorder.log_messages() if m.startswith("line")) == ["line 0", "line 1", "line 2"]
