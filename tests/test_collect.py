"""Results the flow body collects come from the cluster in batches, as `client.gather` brings them,
with the same values, states and exceptions as one at a time."""

from __future__ import annotations

import contextlib

import pytest

from flows_tui import flow, task
from flows_tui.engine import results
from flows_tui.futures import as_completed, wait


@task
def inc(x):
    return x + 1


@task
def fails_on_odd(x):
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


@task
def payload(x):
    return bytes(600) + bytes([x])


@contextlib.contextmanager
def counted_gathers(client):
    """Counts the requests for results the scheduler answers (each a round trip the body waits for)."""
    scheduler = client.cluster.scheduler
    original = scheduler.handlers["gather"]
    calls = []

    async def gather(*args, **kwargs):
        calls.append(len(kwargs.get("keys") or ()))
        return await original(*args, **kwargs)

    scheduler.handlers["gather"] = gather
    try:
        yield calls
    finally:
        scheduler.handlers["gather"] = original


def test_a_loop_of_result_over_a_finished_map_takes_one_request(run, thread_client):
    @flow
    def collect(n: int):
        futures = inc.map(range(n))
        wait(futures)
        return [f.result() for f in futures]

    with counted_gathers(thread_client) as calls:
        engine, _ = run(collect, n=200)
    assert engine.final.name == "Completed"
    assert engine.return_value == list(range(1, 201))
    assert len(calls) <= 2, calls  # the first .result() brought the other 199 with it


def test_a_list_of_futures_gives_every_result_in_one_request(run, thread_client):
    @flow
    def collect(n: int):
        return inc.map(range(n)).result()

    with counted_gathers(thread_client) as calls:
        engine, _ = run(collect, n=200)
    assert engine.return_value == list(range(1, 201))
    assert len(calls) <= 2, calls


def test_failed_elements_still_raise_in_a_loop_and_the_others_give_their_values(run):
    @flow
    def collect(n: int):
        futures = fails_on_odd.map(range(n))
        wait(futures)
        values = []
        for future in futures:
            try:
                values.append(future.result())
            except ValueError as error:
                values.append(str(error))
        return values

    engine, _ = run(collect, n=6)
    assert engine.return_value == [0, "odd 1", 2, "odd 3", 4, "odd 5"]
    assert engine.final.name == "Completed"  # each failure was seen and handled by the body


def test_a_list_result_raises_the_first_failure_in_order_or_returns_the_errors(run):
    @flow
    def strict(n: int):
        return fails_on_odd.map(range(n)).result()

    @flow
    def lenient(n: int):
        return [type(v).__name__ if isinstance(v, Exception) else v
                for v in fails_on_odd.map(range(n)).result(raise_on_failure=False)]

    engine, _ = run(strict, n=4)
    assert engine.final.name == "Failed"
    assert "odd 1" in engine.final.message
    engine, _ = run(lenient, n=4)
    assert engine.return_value == [0, "ValueError", 2, "ValueError"]


def test_as_completed_yields_each_future_once_with_its_result(run, thread_client):
    @flow
    def collect(n: int):
        futures = inc.map(range(n))
        return sorted(f.result() for f in as_completed(futures))

    with counted_gathers(thread_client) as calls:
        engine, _ = run(collect, n=100)
    assert engine.return_value == list(range(1, 101))
    assert len(calls) < 50, calls


def test_results_fetched_ahead_stay_within_their_byte_budget(run, thread_client, monkeypatch):
    # 10 results of ~700 bytes, at most 1,500 bytes held ahead: never more than two ahead at a time.
    monkeypatch.setattr(results, "PREFETCH_BYTES", 1500)

    @flow
    def collect(n: int):
        futures = payload.map(range(n))
        wait(futures)
        return [f.result()[-1] for f in futures]

    with counted_gathers(thread_client) as calls:
        engine, _ = run(collect, n=10)
    assert engine.return_value == list(range(10))
    assert max(calls) <= 3, calls
    assert len(calls) >= 4, calls
