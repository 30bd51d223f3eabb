"""A big result read by the flow body arrives, as raw Dask moves it.

The body fetched a result with a 0.2 s timeout in a loop, and each timeout started the
transfer over: a 100 MB result never arrived and the run failed after ~30 s.
"""

from __future__ import annotations

import time

from flows_tui import flow, task
from flows_tui.engine.flow_run import run_flow

from .conftest import sized

MEGABYTES = sized(200, 100)


@task
def make(n: int) -> bytes:
    return bytes(n)


@flow
def read_big(n: int) -> int:
    return len(make(n))


def test_a_result_of_a_hundred_megabytes_reaches_the_flow_body(process_client, figures):
    n = MEGABYTES * 1_000_000
    started = time.perf_counter()
    engine = run_flow(read_big, {"n": n}, client=process_client)
    seconds = time.perf_counter() - started
    assert engine.final.name == "Completed", engine.final
    assert engine.return_value == n
    figures.add("result", f"{MEGABYTES} MB read by the flow body from a worker process: Completed in {seconds:.1f} s")


def test_an_envelope_carries_its_value_as_dask_carries_a_value():
    """The value leaves in Dask's own frames, uncopied: pickled inside the envelope it was copied
    into the pickle on the worker and out of it in the flow (10 MB took 2x raw Dask's time)."""
    from distributed.protocol.serialize import deserialize, serialize

    from flows_tui.engine.outcome import Outcome, register_outcome_serializer

    register_outcome_serializer()
    value = bytes(1_000_000)
    header, frames = serialize(Outcome("Completed", value=value, name="make"), on_error="raise")
    assert any(frame is value for frame in frames)
    back = deserialize(header, frames)
    assert (back.state, back.name, back.value) == ("Completed", "make", value)


def _envelope_serializer_registered() -> bool:
    from distributed.protocol.serialize import dask_serialize

    from flows_tui.engine.outcome import Outcome

    try:
        dask_serialize.dispatch(Outcome)
    except TypeError:
        return False
    return True


def _forget_envelope_serializer() -> None:
    """As a worker process spawned from a script that imported the engine before Dask: the
    envelope's module loaded, its serializer never registered."""
    from distributed.protocol.serialize import dask_deserialize, dask_serialize

    from flows_tui.engine import outcome

    dask_serialize._lookup.pop(outcome.Outcome, None)
    dask_deserialize._lookup.pop(outcome.Outcome, None)
    outcome._serializer_registered = False


def test_a_worker_that_loaded_the_engine_before_dask_still_sends_results_through_the_envelope_serializer(
        process_client):
    from flows_tui.engine import user_sources

    process_client.run(_forget_envelope_serializer)
    assert not any(process_client.run(_envelope_serializer_registered).values())
    user_sources._shared.pop(process_client, None)  # workers as they join: the run's plugin goes to them
    engine = run_flow(read_big, {"n": 1000}, client=process_client)
    assert engine.final.name == "Completed" and engine.return_value == 1000
    # Every worker: the one that ran the task, and the others, before any task reaches them.
    assert all(process_client.run(_envelope_serializer_registered).values())
