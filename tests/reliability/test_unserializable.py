"""A task whose value cannot be pickled: the run fails clearly and promptly, on worker processes.

On threads nothing is pickled and such a value just works. On worker processes it must move
to reach a consumer on another worker, or the client when the body asks for it; Dask alone
then hangs the consumer for ever (the receiving worker marks the upstream "error" locally
and the scheduler ignores that for a key it holds in memory) and sprays "Could not serialize
object of type Outcome" tracebacks. Each case here runs the flow in a thread and waits for
it with a deadline, so a hang fails the test with a message instead of holding the suite;
tasks are pinned to workers with `dask.annotate`, so the transfer happens every time.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from flows_tui.engine.flow_run import run_flow
from flows_tui.engine.reports import worker_label
from flows_tui.record.events import EventBus

from conftest import PROCESS_CLUSTER_TOML, Recorder, cli, load_flows, wait_until, write_project

DEADLINE = 15.0  # seconds for a run that must end promptly (it ends in well under one here)

FLOWS = """
    import socket
    import threading

    import dask
    from flows_tui import allow_failure, flow, task

    def unpicklable(kind):
        if kind == "lock":
            return threading.Lock()
        if kind == "generator":
            return (i for i in range(3))
        if kind == "socket":
            return socket.socket()
        return [1, 2, threading.Lock()]  # "nested": the lock inside a list

    @task
    def produce(kind: str = "lock"):
        return unpicklable(kind)

    @task
    def consume(value):
        return type(value).__name__

    @task
    def after(value):
        return value

    @flow
    def across_workers(a: str, b: str, kind: str = "lock", allowed: bool = False):
        with dask.annotate(workers=[a]):
            made = produce.submit(kind)
        with dask.annotate(workers=[b]):
            used = consume.submit(allow_failure(made) if allowed else made)
        after.submit(used)

    @flow
    def body_fetches(kind: str = "lock"):
        return repr(produce.submit(kind).result())

    @flow
    def returns_it(kind: str = "lock"):
        return produce.submit(kind)

    @flow
    def on_one_worker():
        return consume(produce.submit())
"""

LOCK = "cannot pickle '_thread.lock' object"


@pytest.fixture(scope="module")
def flows(tmp_path_factory):
    return load_flows(tmp_path_factory.mktemp("unserializable"), FLOWS, "unserializable_flows.py").flows


@pytest.fixture
def dask_log():
    """What Dask logs in this process (the client, and the scheduler of the LocalCluster)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("distributed")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def run_with_deadline(flow, client, **parameters):
    """Run `flow` in a thread; fail (not hang) if it has not ended by DEADLINE. Returns (engine, seconds)."""
    box: dict = {}
    bus = EventBus()
    recorder = Recorder()
    bus.subscribe(recorder, name="test")

    def go() -> None:
        box["engine"] = run_flow(flow, parameters, client=client, bus=bus)

    started = time.monotonic()
    thread = threading.Thread(target=go, name="unserializable-run", daemon=True)
    thread.start()
    wait_until(lambda: not thread.is_alive(), timeout=DEADLINE, interval=0.01,
               message=f"flow {flow.name!r} to end (it hangs)")
    seconds = time.monotonic() - started
    assert "engine" in box, "run_flow raised"
    assert bus.flush(10)
    return box["engine"], seconds


def task_runs(engine) -> dict:
    return {t.name: t for t in engine.flow_run.task_runs.values()}


def no_dask_tracebacks(records: list[logging.LogRecord]) -> None:
    spray = [r.getMessage() for r in records if "serializ" in r.getMessage() or r.exc_info]
    assert not spray, spray


def workers(client) -> tuple[tuple[str, str], tuple[str, str]]:
    """(address, name) of the two workers of the process cluster (a restarted one given time to return)."""
    client.wait_for_workers(2, timeout=60)
    info = client.scheduler_info()["workers"]
    a, b = sorted(info)[:2]
    return (a, worker_label(info[a]["name"], a)), (b, worker_label(info[b]["name"], b))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind, words", [
    ("lock", LOCK),
    ("generator", "cannot pickle 'generator' object"),
    ("socket", "cannot pickle 'socket' object"),
    ("nested", f"{LOCK} (the value is a list)"),
])
def test_a_value_needed_on_another_worker_fails_its_consumer_naming_task_and_type(
        flows, process_client, dask_log, figures, kind, words):
    (a, a_name), (b, _) = workers(process_client)
    engine, seconds = run_with_deadline(flows["across-workers"], process_client, a=a, b=b, kind=kind)
    runs = task_runs(engine)
    produced, consumer, downstream = runs["produce-0"], runs["consume-0"], runs["after-0"]
    # The producer ran where it was pinned and completed: its value exists, on that worker.
    assert produced.state == "Completed" and produced.attempts[0].worker == a_name
    assert consumer.state == "Failed"
    assert consumer.message == f"the result of produce-0 could not be sent to another worker: {words}"
    assert consumer.attempts == []  # the consumer's code never ran
    assert downstream.state == "NotRun" and downstream.message == "upstream task 'consume-0' ended Failed"
    assert engine.final.name == "Failed" and "consume-0 (Failed)" in engine.final.message
    no_dask_tracebacks(dask_log)
    if kind == "lock":
        figures.add("unpicklable result, consumer on another worker",
                    f"run Failed in {seconds:.2f} s; consumer: {consumer.message!r}")


@pytest.mark.timeout(60)
def test_allow_failure_does_not_hide_a_value_that_could_not_be_delivered(flows, process_client):
    # The upstream did not fail: there is no exception to hand over, and no value either.
    (a, _), (b, _) = workers(process_client)
    engine, _ = run_with_deadline(flows["across-workers"], process_client, a=a, b=b, allowed=True)
    runs = task_runs(engine)
    assert runs["consume-0"].state == "Failed" and LOCK in runs["consume-0"].message
    assert engine.final.name == "Failed"


@pytest.mark.timeout(60)
def test_the_body_asking_for_an_unpicklable_value_fails_the_run_naming_task_and_type(
        flows, process_client, dask_log, figures):
    engine, seconds = run_with_deadline(flows["body-fetches"], process_client)
    assert engine.final.name == "Failed"
    assert engine.final.message == ("flow body raised ResultNotSerializable: the result of produce-0 "
                                    f"could not be sent to the flow: {LOCK}")
    assert task_runs(engine)["produce-0"].state == "Completed"
    no_dask_tracebacks(dask_log)
    figures.add("unpicklable result fetched by the flow body", f"Failed in {seconds:.2f} s with {engine.final.message!r}")


@pytest.mark.timeout(60)
def test_a_flow_returning_an_unpicklable_value_fails_naming_task_and_type(flows, process_client, dask_log, figures):
    engine, seconds = run_with_deadline(flows["returns-it"], process_client, kind="generator")
    assert engine.final.name == "Failed"
    assert engine.final.message == ("the flow returned a failed result: ResultNotSerializable: the result of "
                                    "produce-0 could not be sent to the flow: cannot pickle 'generator' object")
    no_dask_tracebacks(dask_log)
    figures.add("unpicklable result returned by the flow", f"Failed in {seconds:.2f} s with {engine.final.message!r}")


@pytest.mark.timeout(60)
def test_on_threads_an_unpicklable_value_just_works(flows, thread_client):
    engine, _ = run_with_deadline(flows["on-one-worker"], thread_client)
    assert engine.final.name == "Completed" and engine.return_value == "lock"
    engine, _ = run_with_deadline(flows["body-fetches"], thread_client)
    assert engine.final.name == "Completed" and "lock" in engine.return_value


CLI_FLOW = """
    import threading

    import dask
    from flows_tui import flow, get_dask_client, task

    @task
    def produce():
        return threading.Lock()

    @task
    def consume(value):
        return repr(value)

    @flow
    def unpicklable():
        with get_dask_client() as client:
            a, b = sorted(client.scheduler_info()["workers"])
        with dask.annotate(workers=[a]):
            made = produce.submit()
        with dask.annotate(workers=[b]):
            consume.submit(made).wait()
        return made  # and the value must come to the client too
"""


@pytest.mark.timeout(60)
def test_flows_tui_run_exits_1_with_the_message_and_no_dask_traceback(tmp_path, figures):
    project = write_project(tmp_path, {"unpicklable.py": CLI_FLOW}, toml=PROCESS_CLUSTER_TOML)
    started = time.monotonic()
    result = cli("run", "unpicklable", cwd=project, timeout=40)
    seconds = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"✗ Failed consume-0: the result of produce-0 could not be sent to another worker: {LOCK}" in result.stdout
    assert (f"the flow returned a failed result: ResultNotSerializable: the result of produce-0 could not be sent "
            f"to the flow: {LOCK}") in result.stdout
    assert "Could not serialize" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "Failed to deserialize" not in result.stderr, result.stderr
    figures.add("flows-tui run, unpicklable result on processes", f"exit 1 in {seconds:.1f} s (whole command)")
