"""Prefect 3's documented examples run here with only the import line changed."""

from __future__ import annotations


import pytest

from flows_tui.project.flow_files import load_flow_file

# From Prefect 3's docs ("Run work concurrently", "Final state determination",
# "Custom retry behavior"); only `from prefect import` became `from flows_tui import`,
# and httpx's errors became local classes so the example runs offline.
PREFECT_EXAMPLES = '''
from prefect import flow, task, unmapped


@task
def add_together(x, y):
    return x + y


@flow
def sum_it(numbers, static_value):
    futures = add_together.map(numbers, static_value)
    return futures.result()


@task
def sum_plus(x, static_iterable):
    return x + sum(static_iterable)


@flow
def sum_it_unmapped(numbers, static_iterable):
    futures = sum_plus.map(numbers, unmapped(static_iterable))
    return futures.result()


@task
def always_fails_task():
    raise ValueError("I fail successfully")


@task
def always_succeeds_task():
    print("I'm fail safe!")
    return "success"


@flow
def always_succeeds_flow():
    x = always_fails_task.submit().result(raise_on_failure=False)
    y = always_succeeds_task.submit(wait_for=[x])
    return y


class HTTPStatusError(Exception):
    def __init__(self, status_code):
        self.status_code = status_code


class ConnectError(Exception):
    pass


def retry_handler(task, task_run, state) -> bool:
    """Custom retry handler that specifies when to retry a task"""
    try:
        # Attempt to get the result of the task
        state.result()
    except HTTPStatusError as exc:
        # Retry on any HTTP status code that is not 401 or 404
        do_not_retry_on_these_codes = [401, 404]
        return exc.status_code not in do_not_retry_on_these_codes
    except ConnectError:
        # Do not retry
        return False
    except:
        # For any other exception, retry
        return True


@task(retries=1, retry_condition_fn=retry_handler)
def my_api_call_task(url):
    raise HTTPStatusError(404 if url.endswith("missing") else 503)


@flow
def get_data_flow(url):
    return my_api_call_task(url=url, return_state=True)
'''


@pytest.fixture
def examples(tmp_path, monkeypatch):
    (tmp_path / "flows.toml").write_text("[cluster]\nn_workers = 1\nthreads_per_worker = 2\nprocesses = false\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    path = tmp_path / "prefect_examples.py"
    path.write_text(PREFECT_EXAMPLES.replace("from prefect import", "from flows_tui import"))
    loaded = load_flow_file(path)
    assert loaded.error is None, loaded.error
    return loaded.module


def test_map_with_a_static_value(examples):
    assert examples.sum_it([1, 2, 3], 5) == [6, 7, 8]


def test_map_with_unmapped(examples):
    assert examples.sum_it_unmapped([4, 5, 6], [8, 9, 10]) == [31, 32, 33]


def test_final_state_example_completes_despite_the_handled_failure(examples):
    state = examples.always_succeeds_flow(return_state=True)
    # As in Prefect 3, a future the flow returns becomes its state, and that state is the result.
    assert state.is_completed() and state.result().result() == "success"


def test_a_flow_returning_a_failed_state_fails_with_the_tasks_exception(examples):
    busy = examples.get_data_flow("https://example.invalid/busy", return_state=True)
    missing = examples.get_data_flow("https://example.invalid/missing", return_state=True)
    assert busy.is_failed() and missing.is_failed()
    # The flow's result is the task's state it returned (Prefect 3's rule); the task's is the exception.
    assert busy.result(raise_on_failure=False).result(raise_on_failure=False).status_code == 503
    with pytest.raises(examples.HTTPStatusError):
        missing.result()


def test_the_import_line_is_the_only_difference(examples):
    assert PREFECT_EXAMPLES.count("flows_tui") == 0
    import flows_tui

    for name in ("flow", "task", "unmapped", "allow_failure", "get_run_logger", "exponential_backoff"):
        assert hasattr(flows_tui, name)
