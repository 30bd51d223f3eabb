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
