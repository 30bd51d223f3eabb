"""Ported from PrefectHQ/prefect src/integrations/prefect-dask/tests/test_utils.py at commit ce79dd3d6cfa2b7337265498210dbc4d25bcdc98.

Only the imports changed (tests/prefect/port.py). Ported: 4 test functions; left out: 6.
"""
# Left out, by reason:
#      6  uses Prefect's internals (prefect_dask.get_async_dask_client)

import sys
import dask
import pytest
from distributed import Client
from flows_tui import DaskTaskRunner, flow, get_dask_client, task


pytestmark = pytest.mark.skip(
    reason="Skipping tests while task runner is being rewritten"
)


class TestDaskSyncClient:
    def test_from_task(self):
        @task
        def test_task():
            delayed_num = dask.delayed(42)
            with get_dask_client() as client:
                assert isinstance(client, Client)
                result = client.compute(delayed_num).result()
            return result

        @flow(task_runner=DaskTaskRunner)
        def test_flow():
            future = test_task.submit()
            return future.result()

        assert test_flow() == 42

    def test_from_flow(self):
        @flow(task_runner=DaskTaskRunner)
        def test_flow():
            delayed_num = dask.delayed(42)
            with get_dask_client() as client:
                assert isinstance(client, Client)
                result = client.compute(delayed_num).result()
            return result

        assert test_flow() == 42

    def test_outside_run_context(self):
        delayed_num = dask.delayed(42)
        with get_dask_client() as client:
            assert isinstance(client, Client)
            result = client.compute(delayed_num).result()
        assert result == 42

    @pytest.mark.parametrize("timeout", [None, 8])
    def test_include_timeout(self, timeout):
        delayed_num = dask.delayed(42)
        with get_dask_client(timeout=timeout) as client:
            assert isinstance(client, Client)
            if timeout is not None:
                assert client._timeout == timeout
            result = client.compute(delayed_num).result()
        assert result == 42
