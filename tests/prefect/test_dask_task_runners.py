"""Ported from PrefectHQ/prefect src/integrations/prefect-dask/tests/test_task_runners.py at commit ce79dd3d6cfa2b7337265498210dbc4d25bcdc98.

Only the imports changed (tests/prefect/port.py). Ported: 11 test functions; left out: 8.
"""
# Left out, by reason:
#      7  awaits Prefect's async engine (async flows and tasks)
#      1  uses Prefect's internals (prefect.assets.Asset)

import asyncio
import time
from typing import Generator, List
import dask.dataframe as dd
import distributed
import pandas as pd
import pytest
from distributed import LocalCluster
from flows_tui import DaskTaskRunner, flow, task
from flows_tui.futures import PrefectDaskFuture, as_completed
from flows_tui.context import get_run_context
from flows_tui.states import State, StateType


@pytest.fixture(scope="module")
def cluster() -> Generator[distributed.LocalCluster, None, None]:
    with distributed.LocalCluster(dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture
def dask_task_runner_with_existing_cluster(cluster: distributed.LocalCluster):  # noqa
    """
    Generate a dask task runner that's connected to a local cluster
    """
    yield DaskTaskRunner(cluster=cluster)


@pytest.fixture
def dask_task_runner_with_existing_cluster_address(cluster: distributed.LocalCluster):  # noqa
    """
    Generate a dask task runner that's connected to a local cluster
    """
    with distributed.Client(cluster) as client:
        address = client.scheduler.address
        yield DaskTaskRunner(address=address)


@pytest.fixture
def dask_task_runner_with_process_pool():  # noqa
    yield DaskTaskRunner(cluster_kwargs={"processes": True, "dashboard_address": None})


@pytest.fixture
def dask_task_runner_with_thread_pool():  # noqa
    yield DaskTaskRunner(cluster_kwargs={"processes": False, "dashboard_address": None})


@pytest.fixture
def default_dask_task_runner():  # noqa
    yield DaskTaskRunner(
        cluster_kwargs={
            "dashboard_address": None,  # Prevent port conflicts
        }
    )


class TestDaskTaskRunner:
    @pytest.fixture(
        params=[
            default_dask_task_runner,
            # Existing cluster works outside of tests, but fails with serialization errors in tests
            # dask_task_runner_with_existing_cluster, :TODO Fix serialization errors in these tests
            dask_task_runner_with_existing_cluster_address,
            dask_task_runner_with_process_pool,
            dask_task_runner_with_thread_pool,
        ]
    )
    def task_runner(
        self, request: pytest.FixtureRequest
    ) -> Generator[DaskTaskRunner, None, None]:
        fixture_name = request.param._fixture_function.__name__
        yield request.getfixturevalue(fixture_name)

    async def test_duplicate(self, task_runner: DaskTaskRunner):
        new = task_runner.duplicate()
        assert new == task_runner
        assert new is not task_runner

    def test_as_completed_yields_correct_order(self, task_runner):
        @task
        def sleep_task(seconds):
            time.sleep(seconds)
            return seconds

        timings = [1, 5, 10]
        with task_runner:
            done_futures = []
            futures = [
                task_runner.submit(
                    sleep_task, parameters={"seconds": seconds}, wait_for=[]
                )
                for seconds in reversed(timings)
            ]
            for future in as_completed(futures=futures):
                done_futures.append(future.result())
            assert done_futures == timings

    async def test_wait_captures_exceptions_as_crashed_state(self, task_runner):
        """
        Dask wraps the exception, interrupts will result in "Cancelled" tasks
        or "Killed" workers while normal errors will result in the raw error with Dask.
        We care more about the crash detection and
        lack of re-raise here than the equality of the exception.
        """
        if "processes" in task_runner.cluster_kwargs:
            pytest.skip("This will abort the run for a Dask cluster using processes.")

        @task
        def task_a():
            raise KeyboardInterrupt()

        with task_runner:
            future = task_runner.submit(
                task=task_a,
                parameters={},
                wait_for=[],
            )

            future.wait()
            assert future.state.type == StateType.CRASHED

    def test_dask_task_key_has_prefect_task_name(self):
        task_runner = DaskTaskRunner()

        @task
        def my_task():
            return 1

        futures: list[PrefectDaskFuture[int]] = []

        @flow(task_runner=task_runner)
        def my_flow():
            futures.append(my_task.submit())
            futures.append(my_task.submit())
            futures.append(my_task.submit())

        my_flow()
        # ensure task run name is in key
        assert all(
            future.wrapped_future.key.startswith("my_task-") for future in futures
        )

    def test_string_cluster_class_is_properly_instantiated(self):
        task_runner = DaskTaskRunner(cluster_class="distributed.LocalCluster")

        @task
        def test_task():
            return 42

        @flow(task_runner=task_runner)
        def test_flow():
            return test_task.submit()

        assert test_flow().result() == 42

    async def test_successful_dataframe_flow_run(self, task_runner: DaskTaskRunner):
        @task
        def task_a():
            return dd.DataFrame.from_dict(
                {"x": [1, 1, 1], "y": [2, 2, 2]}, npartitions=1
            )

        @task
        def task_b(ddf: dd.DataFrame):
            return ddf.sum()

        @task
        def task_c(ddf):
            return ddf.compute()

        @flow(version="test", task_runner=task_runner)
        def test_flow():
            a = task_a.submit()
            b = task_b.submit(a)
            c = task_c.submit(b)

            return c.result()

        result = test_flow()

        assert result.equals(pd.Series([3, 6], index=["x", "y"]))

    class TestInputArguments:
        async def test_dataclasses_can_be_passed_to_task_runners(
            self, task_runner: DaskTaskRunner
        ):
            """
            this is a regression test for https://github.com/PrefectHQ/prefect/issues/6905
            """
            from dataclasses import dataclass

            @dataclass
            class Foo:
                value: int

            @task
            def get_dataclass_values(n: int):
                return [Foo(value=i) for i in range(n)]

            @task
            def print_foo(x: Foo) -> Foo:
                print(x)
                return x

            @flow(task_runner=task_runner)
            def test_dask_flow(n: int = 3) -> List[Foo]:
                foos = get_dataclass_values(n)
                future = print_foo.submit(foos[0])
                futures = print_foo.map(foos)

                return [fut.result() for fut in futures + [future]]

            results = test_dask_flow()

            assert results == [Foo(value=i) for i in range(3)] + [Foo(value=0)]

    def test_nested_task_submission(self, task_runner):
        @task
        def nested_task():
            return "nested task"

        @task
        def parent_task():
            nested_task_future = nested_task.submit()
            assert isinstance(nested_task_future, PrefectDaskFuture)
            return nested_task_future.result()

        @flow(task_runner=task_runner)
        def umbrella_flow():
            future = parent_task.submit()
            assert isinstance(future, PrefectDaskFuture)
            return future.result()

        assert umbrella_flow() == "nested task"

    def test_state_dependencies_via_wait_for(self, task_runner):
        @task
        def task_a():
            return time.time()

        @task
        def task_b():
            return time.time()

        @flow(task_runner=task_runner)
        def test_flow() -> tuple[float, float]:
            a = task_a.submit()
            b = task_b.submit(wait_for=[a])
            return a.result(), b.result()

        a_time, b_time = test_flow()

        assert b_time > a_time, "task_b timestamp should be after task_a timestamp"

    def test_state_dependencies_via_wait_for_disparate_upstream_tasks(
        self, task_runner
    ):
        @task
        def task_a():
            return time.time()

        @task
        def task_b():
            return time.time()

        @task
        def task_c():
            return time.time()

        @flow(task_runner=task_runner)
        def test_flow() -> tuple[float, float, float]:
            a = task_a.submit()
            b = task_b.submit()
            c = task_c.submit(wait_for=[a, b])

            return a.result(), b.result(), c.result()

        a_time, b_time, c_time = test_flow()

        assert c_time > a_time and c_time > b_time

    async def test_performance_report_generation(self, tmp_path):
        report_path = tmp_path / "dask-report.html"
        task_runner_with_performance_report_path = DaskTaskRunner(
            performance_report_path=str(report_path)
        )

        @task
        def task_a():
            return "a"

        @task
        def task_b():
            return "b"

        @task
        def task_c(b):
            return b + "c"

        @flow(version="test", task_runner=task_runner_with_performance_report_path)
        def test_flow():
            a = task_a.submit()
            b = task_b.submit()
            c = task_c.submit(b)
            return a, b, c

        test_flow()

        assert report_path.exists()
        report_content = report_path.read_text()
        assert "Dask Performance Report" in report_content
