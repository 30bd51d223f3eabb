"""Ported from PrefectHQ/prefect tests/test_futures.py at commit ce79dd3d6cfa2b7337265498210dbc4d25bcdc98.

Only the imports changed (tests/prefect/port.py). Ported: 2 test functions; left out: 61.
"""
# Left out, by reason:
#     27  uses Prefect's internals (prefect.futures.PrefectWrappedFuture)
#     13  uses Prefect's internals (prefect.futures.PrefectConcurrentFuture)
#      8  uses Prefect's internals (prefect.futures.PrefectDistributedFuture)
#      5  uses Prefect's internals (prefect.server.events.pipeline.EventsPipeline)
#      4  uses Prefect's internals (prefect.exceptions.Pause)
#      1  needs Prefect's test harness (fixture use_hosted_api_server)
#      1  uses Prefect's internals (prefect.futures.resolve_futures_to_states)
#      1  uses Prefect's internals (prefect.futures.resolve_futures_to_results)
#      1  uses Prefect's internals (prefect.client.orchestration.PrefectClient)

import asyncio
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, List, Optional
import pytest
from flows_tui import flow, task
from flows_tui.context import FlowRunContext
from flows_tui.exceptions import MissingResult
from flows_tui.futures import PrefectFuture, PrefectFutureList, as_completed, wait
from flows_tui.states import Completed, Failed
from flows_tui.task_runners import ThreadPoolTaskRunner


class TestUtilityFunctions:
    def test_as_completed_timeout(self):
        @task
        def my_test_task(seconds):
            time.sleep(seconds)
            return seconds

        with ThreadPoolTaskRunner() as runner:
            futures = []
            timings = [1, 5, 10]

            for i in reversed(timings):
                parameters = {"seconds": i}
                future = runner.submit(my_test_task, parameters)
                future.parameters = parameters
                futures.append(future)
            results = []
            with pytest.raises(TimeoutError) as exc_info:
                for future in as_completed(futures, timeout=5):
                    results.append(future.result())
            assert exc_info.value.args[0] == f"2 (of {len(timings)}) futures unfinished"


class TestFlowReturningMappedFutures:
    """Regression tests for https://github.com/PrefectHQ/prefect/issues/21220

    When a @flow returns a PrefectFutureList (e.g. from task.map()), the flow
    engine resolves futures to states before returning. Previously, the
    PrefectFutureList container type was preserved even though its elements
    were no longer PrefectFuture objects, causing AttributeError when calling
    .result() or .wait() on the return value.
    """

    def test_flow_returning_mapped_task_result(self):
        @task
        def add_one(x: int) -> int:
            return x + 1

        @flow
        def my_flow():
            return add_one.map([1, 2, 3])

        result = my_flow()
        assert isinstance(result, list)
        assert not isinstance(result, PrefectFutureList)
