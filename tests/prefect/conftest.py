"""Prefect's tests, ported: they call flows from plain Python, as Prefect users do.

One thread LocalCluster serves the whole directory (DASK_SCHEDULER_ADDRESS, Dask's own
convention, points every flow call at it); each test runs in its own directory, so the
store and cached results of one test are not another's.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from xfails import XFAIL  # noqa: E402


@pytest.fixture(scope="session")
def prefect_cluster_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=4, processes=False, protocol="tcp://",
                      host="127.0.0.1", dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(autouse=True)
def _run_like_a_prefect_user(prefect_cluster_address, tmp_path, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", prefect_cluster_address)
    monkeypatch.chdir(tmp_path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The ported tests that fail today are expected to, strictly: one that starts passing fails the
    suite until its entry in xfails.py is removed."""
    here = Path(__file__).parent
    for item in items:
        path = Path(str(item.fspath))
        if path.parent != here:
            continue
        reason = XFAIL.get(f"{path.name}::{item.nodeid.split('::', 1)[1]}")
        if reason is not None:
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
