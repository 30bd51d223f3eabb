"""Caching: what reuses a stored result (Cached) and what runs the task again.

Every test counts executions with files the tasks leave behind, never by timing: a hit
must not run the user's function at all.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import Recorder, cli, wait_until
from flows_tui import flow, task
from flows_tui.cache import cache_entries, read_entry
from flows_tui.cache_policies import (DEFAULT, FLOW_PARAMETERS, INPUTS, NO_CACHE, NONE, RUN_ID, TASK_SOURCE,
                                      CompoundCachePolicy, Inputs)
from flows_tui.engine.flow_run import run_flow
from flows_tui.record.events import EventBus
from flows_tui.project.flow_files import load_flow_file
from flows_tui.user_code.task_source import _task_sources

# A flow file as a user writes it. `note` leaves one file per execution of a task.
FLOW_FILE = '''
import uuid
from datetime import timedelta
from pathlib import Path

from flows_tui import flow, task
from flows_tui.cache_policies import FLOW_PARAMETERS, INPUTS, NO_CACHE, RUN_ID, TASK_SOURCE

RAN = Path(RAN_DIR)


def note(name):
    (RAN / f"{name}-{uuid.uuid4().hex}").touch()


def helper(x):
    return x * 10


def unrelated():
    return "unrelated, first version"


@task(cache_policy=INPUTS + TASK_SOURCE)
def compute(x):
    note("compute")
    return helper(x) + 1


@flow
def pipeline(x: int = 1):
    return compute(x)
'''


def executions(ran: Path, name: str) -> int:
    return len(list(ran.glob(f"{name}-*")))


def states(engine) -> list[str]:
    return [task_run.state for task_run in engine.flow_run.task_runs.values()]


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "state" / "cache"


@pytest.fixture
def run_cached(thread_client, cache_dir):
    """Run a flow with results cached under tmp_path; returns (engine, recorder)."""

    def go(flow_, **parameters):
        bus = EventBus()
        recorder = Recorder()
        bus.subscribe(recorder, name="test")
        bound = flow_.signature.bind(**parameters)
        bound.apply_defaults()
        engine = run_flow(flow_, dict(bound.arguments), client=thread_client, bus=bus, cache_dir=cache_dir)
        assert bus.flush(10)
        return engine, recorder

    return go


@pytest.fixture
def flow_file(tmp_path, ran):
    """Write FLOW_FILE (after `edits`, each an (old, new) replacement) and load it as flows-tui does."""
    path = tmp_path / "flows" / "pipeline.py"
    path.parent.mkdir()

    def write(*edits: tuple[str, str]):
        text = FLOW_FILE.replace("RAN_DIR", repr(str(ran)))
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new)
        path.write_text(text)
        loaded = load_flow_file(path)
        assert loaded.error is None, loaded.error
        return loaded.module

    return write


# Hits and misses ----------------------------------------------------------------------------------

def test_same_inputs_in_a_later_run_are_a_hit_and_the_function_does_not_run(run_cached, flow_file, ran):
    module = flow_file()
    first, _ = run_cached(module.pipeline, x=2)
    second, _ = run_cached(module.pipeline, x=2)
    assert states(first) == ["Completed"] and states(second) == ["Cached"]
    assert second.final.name == "Completed"
    assert first.return_value == second.return_value == 21
    assert executions(ran, "compute") == 1
    assert second.flow_run.task_runs[next(iter(second.flow_run.task_runs))].attempts == []


def test_changed_inputs_are_a_miss(run_cached, flow_file, ran):
    module = flow_file()
    run_cached(module.pipeline, x=1)
    changed, _ = run_cached(module.pipeline, x=2)
    again, _ = run_cached(module.pipeline, x=1)
    assert states(changed) == ["Completed"] and states(again) == ["Cached"]
    assert executions(ran, "compute") == 2


def test_editing_the_task_is_a_miss(run_cached, flow_file, ran):
    run_cached(flow_file().pipeline, x=1)
    edited, _ = run_cached(flow_file(("return helper(x) + 1", "return helper(x) + 1000")).pipeline, x=1)
    assert states(edited) == ["Completed"] and edited.return_value == 1010
    assert executions(ran, "compute") == 2


def test_editing_a_helper_the_task_calls_is_a_miss(run_cached, flow_file, ran):
    run_cached(flow_file().pipeline, x=1)
    edited, _ = run_cached(flow_file(("return x * 10", "return x * 100")).pipeline, x=1)
    assert states(edited) == ["Completed"] and edited.return_value == 101
    assert executions(ran, "compute") == 2


def test_editing_an_unrelated_function_in_the_same_file_is_a_hit(run_cached, flow_file, ran):
    run_cached(flow_file().pipeline, x=1)
    edited = flow_file(('"unrelated, first version"', '"unrelated, second and longer version"'),
                       ("def helper(x):", "# a comment and a blank line move the helper down\n\ndef helper(x):"))
    again, _ = run_cached(edited.pipeline, x=1)
    assert states(again) == ["Cached"]
    assert executions(ran, "compute") == 1


def test_editing_a_constant_the_task_reads_is_a_miss(run_cached, flow_file, ran):
    limit = ("return x * 10", "return x * LIMIT"), ("def helper(x):", "LIMIT = 10\n\n\ndef helper(x):")
    run_cached(flow_file(*limit).pipeline, x=1)
    edited, _ = run_cached(flow_file(*limit, ("LIMIT = 10", "LIMIT = 20")).pipeline, x=1)
    assert states(edited) == ["Completed"] and edited.return_value == 21


def test_an_upstream_result_is_hashed_by_value_not_by_which_run_made_it(run_cached, flow_file, ran):
    module = flow_file(("@flow\ndef pipeline(x: int = 1):\n    return compute(x)", '''
@task
def parity(x):
    return x % 2


@flow
def pipeline(x: int = 1):
    return compute(parity(x))
'''))
    run_cached(module.pipeline, x=1)
    other_input_same_parity, _ = run_cached(module.pipeline, x=3)
    assert states(other_input_same_parity) == ["Completed", "Cached"]
    assert executions(ran, "compute") == 1


def test_mapped_task_runs_each_hit_their_own_entry(run_cached, flow_file, ran):
    module = flow_file(("return compute(x)", "return compute.map(range(x))"))
    run_cached(module.pipeline, x=3)
    more, _ = run_cached(module.pipeline, x=4)
    assert sorted(states(more)) == ["Cached", "Cached", "Cached", "Completed"]
    assert [state.result() for state in more.return_value] == [1, 11, 21, 31]  # futures returned: states
    assert executions(ran, "compute") == 4


def test_a_hit_feeds_downstream_tasks_and_runs_on_completion_hooks(run_cached, ran):
    def hook(task_, task_run, state):
        (ran / f"hook-{state.name}-{time.monotonic_ns()}").touch()

    @task(cache_policy=INPUTS, on_completion=[hook])
    def load(x):
        (ran / f"load-{time.monotonic_ns()}").touch()
        return [x, x + 1]

    @task
    def total(values):
        return sum(values)

    @flow
    def report(x: int):
        return total(load(x))

    first, _ = run_cached(report, x=5)
    second, _ = run_cached(report, x=5)
    assert states(second) == ["Cached", "Completed"] and second.return_value == 11
    assert (executions(ran, "hook-Completed"), executions(ran, "hook-Cached")) == (1, 1)
    assert executions(ran, "load") == 1


# Policies and options -----------------------------------------------------------------------------

def test_expired_entries_are_not_used(run_cached, flow_file, ran, cache_dir):
    module = flow_file(("@task(cache_policy=INPUTS + TASK_SOURCE)",
                        "@task(cache_policy=INPUTS + TASK_SOURCE, cache_expiration=timedelta(seconds=0.5))"))
    run_cached(module.pipeline, x=1)
    [entry] = cache_entries(cache_dir)
    header, _ = read_entry(entry.path, time.time())
    wait_until(lambda: time.time() > header["expires"], timeout=5, message="the entry to expire")
    expired, _ = run_cached(module.pipeline, x=1)
    assert states(expired) == ["Completed"]
    assert executions(ran, "compute") == 2
    [renewed] = cache_entries(cache_dir)
    assert not renewed.expired


def test_refresh_cache_computes_again_and_overwrites(run_cached, ran):
    def compute(x):
        (ran / f"count-{time.monotonic_ns()}").touch()
        return executions(ran, "count")

    cached = task(compute, name="count", cache_policy=INPUTS)
    refreshing = cached.with_options(refresh_cache=True)

    @flow
    def counting(refresh: bool = False):
        return (refreshing if refresh else cached)(1)

    first, _ = run_cached(counting)
    refreshed, _ = run_cached(counting, refresh=True)
    later, _ = run_cached(counting)
    assert (first.return_value, refreshed.return_value, later.return_value) == (1, 2, 2)
    assert states(refreshed) == ["Completed"] and states(later) == ["Cached"]


def test_inputs_minus_a_parameter_ignores_it(run_cached, ran):
    @task(cache_policy=INPUTS - "verbose")
    def fetch(x, verbose=False):
        (ran / f"fetch-{time.monotonic_ns()}").touch()
        return x

    @flow
    def fetching(x: int, verbose: bool):
        return fetch(x, verbose=verbose)

    run_cached(fetching, x=1, verbose=True)
    quiet, _ = run_cached(fetching, x=1, verbose=False)
    other, _ = run_cached(fetching, x=2, verbose=False)
    assert states(quiet) == ["Cached"] and states(other) == ["Completed"]
    assert executions(ran, "fetch") == 2


def test_cache_key_fn_decides_the_key_and_sees_the_task_run(run_cached, ran):
    def by_parity(context, parameters):
        seen = {"task": context.task.name, "run_id": context.run_id, "task_run_id": context.task_run_id,
                "flow_run_id": context.task_run.flow_run_id, "context_parameters": context.parameters,
                "parameters": parameters}
        (ran / f"key-{time.monotonic_ns()}.json").write_text(json.dumps(seen))
        return f"parity-{parameters['x'] % 2}"

    @task(cache_key_fn=by_parity)
    def classify(x):
        (ran / f"classify-{time.monotonic_ns()}").touch()
        return "odd" if x % 2 else "even"

    @flow
    def classifying(x: int):
        return classify(x)

    first, _ = run_cached(classifying, x=1)
    second, _ = run_cached(classifying, x=3)
    assert states(second) == ["Cached"] and second.return_value == "odd"
    assert executions(ran, "classify") == 1
    seen = json.loads(min(ran.glob("key-*.json")).read_text())
    assert (seen["task"], seen["run_id"], seen["flow_run_id"]) == ("classify", first.run_id, first.run_id)
    assert seen["task_run_id"] in first.flow_run.task_runs
    assert seen["context_parameters"] == seen["parameters"] == {"x": 1}


def test_no_cache_turns_caching_off(run_cached, ran, cache_dir):
    @task(cache_policy=NO_CACHE)
    def fresh(x):
        (ran / f"fresh-{time.monotonic_ns()}").touch()
        return x

    @flow
    def freshly():
        return fresh(1)

    run_cached(freshly)
    second, _ = run_cached(freshly)
    assert states(second) == ["Completed"]
    assert executions(ran, "fresh") == 2
    assert cache_entries(cache_dir) == []


def test_without_cache_options_nothing_is_hashed_or_stored(run_cached, ran, cache_dir):
    @task
    def plain(x):
        (ran / f"plain-{time.monotonic_ns()}").touch()
        return x

    @flow
    def plainly():
        return [plain(1), plain(1)]

    first, _ = run_cached(plainly)
    second, _ = run_cached(plainly)
    assert states(first) == states(second) == ["Completed", "Completed"]
    assert executions(ran, "plain") == 4
    assert plain not in _task_sources  # its source was never walked
    assert not cache_dir.exists()


def test_the_default_policy_reuses_results_within_one_run_only(run_cached, ran):
    # Prefect: persist_result=True alone means DEFAULT = INPUTS + TASK_SOURCE + RUN_ID.
    @task(persist_result=True)
    def square(x):
        (ran / f"square-{time.monotonic_ns()}").touch()
        return x * x

    @flow
    def squares():
        return [square(3), square(3)]

    first, _ = run_cached(squares)
    second, _ = run_cached(squares)
    assert states(first) == states(second) == ["Completed", "Cached"]
    assert executions(ran, "square") == 2


def test_flow_parameters_policy_keys_on_the_runs_parameters(run_cached, ran):
    @task(cache_policy=FLOW_PARAMETERS)
    def stamp():
        (ran / f"stamp-{time.monotonic_ns()}").touch()
        return "stamped"

    @flow
    def stamping(day: str, retries: int = 0):
        return stamp()

    run_cached(stamping, day="monday")
    same, _ = run_cached(stamping, day="monday")
    other, _ = run_cached(stamping, day="tuesday")
    assert states(same) == ["Cached"] and states(other) == ["Completed"]


def test_policy_algebra_follows_prefect():
    assert INPUTS + NO_CACHE == INPUTS and NO_CACHE + TASK_SOURCE == TASK_SOURCE and NONE == NO_CACHE
    assert TASK_SOURCE - "x" == TASK_SOURCE
    combined = (INPUTS - "a" + TASK_SOURCE + INPUTS) - "b"
    assert isinstance(combined, CompoundCachePolicy)
    assert [part for part in combined.policies if isinstance(part, Inputs)] == [Inputs(exclude=["a", "b"])]
    assert DEFAULT == INPUTS + TASK_SOURCE + RUN_ID
    with pytest.raises(TypeError, match="cache_policy must be a policy"):
        task(lambda: 1, cache_policy="INPUTS")


# When a result cannot be cached --------------------------------------------------------------------

def test_an_unhashable_input_warns_once_and_the_task_still_runs(run_cached, ran, cache_dir, flow_file):
    module = flow_file(("@flow\ndef pipeline(x: int = 1):\n    return compute(x)", '''
class Ticket:
    """Pickles differently every time, so it has no stable hash."""

    def __reduce__(self):
        return (Ticket, (), {"nonce": uuid.uuid4().hex})


@task
def issue():
    return Ticket()


@task(cache_policy=INPUTS)
def admit(ticket):
    note("admit")
    return "admitted"


@flow
def pipeline(x: int = 1):
    return admit(issue())
'''))
    engine, recorder = run_cached(module.pipeline)
    again, recorder_again = run_cached(module.pipeline)
    assert engine.final.name == again.final.name == "Completed"
    assert executions(ran, "admit") == 2
    warnings = [m for m in recorder.log_messages() if "not cached" in m]
    assert warnings == ["not cached: input 'ticket': Ticket pickles differently each time (leave it out: "
                        "cache_policy=INPUTS - 'ticket', or a cache_key_fn; or cache_policy=NO_CACHE)"]
    assert cache_entries(cache_dir) == []


def test_result_serializer_json_writes_json_entries_that_hit_and_refuses_what_json_cannot_hold(
        run_cached, flow_file, ran, cache_dir):
    module = flow_file(("@task(cache_policy=INPUTS + TASK_SOURCE)",
                        "@task(cache_policy=INPUTS + TASK_SOURCE, result_serializer='json')"),
                       ("@flow\ndef pipeline(x: int = 1):\n    return compute(x)", '''
@task(result_serializer="json")
def tags(x):
    note("tags")
    return {"a", "b"}


@flow
def pipeline(x: int = 1):
    return compute(x), sorted(tags(x))
'''))
    first, recorder = run_cached(module.pipeline, x=2)
    second, _ = run_cached(module.pipeline, x=2)
    assert first.return_value == second.return_value == (21, ["a", "b"])
    assert executions(ran, "compute") == 1 and executions(ran, "tags") == 2  # a set is no JSON: never cached
    [entry] = cache_entries(cache_dir)
    header, body = entry.path.read_bytes().split(b"\n", 1)
    assert json.loads(header)["serializer"] == "json" and json.loads(body) == 21
    assert [m for m in recorder.log_messages() if "serializ" in m] == [
        "Encountered an error while serializing result: TypeError: JSON cannot hold the result: Object of type set "
        "is not JSON serializable; the result is not cached (result_serializer='json'); the task run goes on"]
    with pytest.raises(ValueError, match="result_serializer must be one of 'pickle', 'json'"):
        task(result_serializer="yaml")(lambda: 1)


def test_an_unwritable_cache_directory_warns_and_never_fails_the_task(thread_client, tmp_path, ran):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")

    @task(cache_policy=INPUTS)
    def compute(x):
        (ran / f"compute-{time.monotonic_ns()}").touch()
        return x

    @flow
    def computing():
        return compute(1)

    bus = EventBus()
    recorder = Recorder()
    bus.subscribe(recorder, name="test")
    engine = run_flow(computing, {}, client=thread_client, bus=bus, cache_dir=blocker / "cache")
    assert bus.flush(10)
    assert engine.final.name == "Completed" and engine.return_value == 1
    [warning] = [m for m in recorder.log_messages() if "not cached" in m]
    assert warning.startswith(f"result not cached: cannot write {blocker / 'cache'} on this worker")


# Across processes, and the command line -------------------------------------------------------------

PROJECT_FLOW = '''
import enum
import uuid
from pathlib import Path

from flows_tui import flow, task
from flows_tui.cache_policies import INPUTS, TASK_SOURCE

RAN = Path(RAN_DIR)


class Size(enum.Enum):
    SMALL = "small"


@task(cache_policy=INPUTS + TASK_SOURCE)
def measure(n, size=Size.SMALL):
    (RAN / f"measure-{uuid.uuid4().hex}").touch()
    return f"{size.value}:{n}"


@flow
def sizes(n: int = 3):
    return measure(n)


@flow
def other(n: int = 1):
    return measure(n)
'''


@pytest.fixture
def project(tmp_path, ran):
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "sizes.py").write_text(PROJECT_FLOW.replace("RAN_DIR", repr(str(ran))))
    (tmp_path / "flows.toml").write_text('[project]\nflows_dir = "flows"\n\n'
                                         "[cluster]\nn_workers = 1\nthreads_per_worker = 1\nprocesses = true\n")
    return tmp_path


def run_json(project: Path, *args: str) -> dict:
    result = cli("run", *args, "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def list_sizes(project: Path) -> dict[str, int]:
    result = cli("list", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    return {line["name"]: line["cache_size"] for line in map(json.loads, result.stdout.splitlines())}


def test_results_persist_across_processes_and_cache_clear_removes_them(project, ran):
    # Each `flows-tui run` is a new process with a new worker process. The Enum default of
    # `measure` reaches that worker by value, with the flow file's code, and still hashes the
    # same in each of them.
    first = run_json(project, "sizes")
    second = run_json(project, "sizes")
    assert [t["state"] for t in first["tasks"]] == ["Completed"]
    assert [t["state"] for t in second["tasks"]] == ["Cached"] and second["state"] == "Completed"
    assert [t["attempts"] for t in second["tasks"]] == [0]
    assert executions(ran, "measure") == 1
    run_json(project, "other")
    sizes = list_sizes(project)
    assert sizes["sizes"] > 0 and sizes["other"] > 0

    summary = cli("cache", "--json", cwd=project)
    assert summary.returncode == 0, summary.stderr
    by_flow = {line["flow"]: line for line in map(json.loads, summary.stdout.splitlines())}
    assert by_flow["sizes"]["entries"] == by_flow["other"]["entries"] == 1

    cleared = cli("cache", "clear", "sizes", cwd=project)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.strip() == f"removed 1 cached result of flow 'sizes' ({sizes['sizes']} bytes)"
    assert list_sizes(project) == {"sizes": 0, "other": sizes["other"]}
    assert [t["state"] for t in run_json(project, "sizes")["tasks"]] == ["Completed"]

    everything = cli("cache", "clear", cwd=project)
    assert everything.stdout.startswith("removed 2 cached results (")
    assert list_sizes(project) == {"sizes": 0, "other": 0}


USERS_TYPES = '''
import enum
from dataclasses import dataclass


class Size(enum.Enum):
    SMALL = "small"


@dataclass
class Window:
    start: str
    days: frozenset
'''

TOKENS = '''
import sys
import cloudpickle
from pathlib import Path
from flows_tui.cache import hash_inputs
from flows_tui.project.flow_files import load_flow_file

module = load_flow_file(Path(sys.argv[1])).module
values = {"size": module.Size.SMALL, "window": module.Window("2026-01-01", frozenset({"mon", "tue", "wed"})),
          "tags": {"a", "b", "c"}}
# As on a worker process: the flow file's classes arrive by value, their module is not importable.
blob = cloudpickle.dumps(values)
del sys.modules[module.__name__]
print(hash_inputs(cloudpickle.loads(blob)))
'''


def test_inputs_of_the_users_own_types_hash_the_same_in_every_process(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "types.py").write_text(USERS_TYPES)
    (tmp_path / "tokens.py").write_text(TOKENS)
    tokens = set()
    for seed in ("1", "2", "3"):
        result = subprocess.run([sys.executable, str(tmp_path / "tokens.py"), str(tmp_path / "types.py")],
                                env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        tokens.add(result.stdout.strip())
    assert len(tokens) == 1


# Prefect's own caching examples (docs: "Cache workflow steps"), with only the imports changed --------

PREFECT_CACHING = '''
from datetime import timedelta

from prefect import flow, task
from prefect.cache_policies import INPUTS
from prefect.tasks import task_input_hash


@task(cache_policy=INPUTS)
def my_stateful_task(x: int):
    print('sleeping')
    return x + 1


@task(cache_policy=INPUTS - 'debug')
def my_cached_task(x: int, debug: bool = False):
    print('running...')
    return x + 1


def static_cache_key(context, parameters):
    # return a constant
    return "static cache key"


@task(cache_key_fn=static_cache_key)
def cached_task():
    print('running an expensive operation')
    return 42


@task(cache_key_fn=task_input_hash, cache_expiration=timedelta(days=1))
def hello_task(name_input):
    print(f"Hello {name_input}!")
    return name_input


@flow
def examples(debug: bool = False):
    return [my_stateful_task(1), my_cached_task(1, debug=debug), cached_task(), hello_task("Marvin")]
'''


def test_prefects_documented_caching_examples_run_unchanged(tmp_path, monkeypatch):
    (tmp_path / "flows.toml").write_text("[cluster]\nn_workers = 1\nthreads_per_worker = 1\nprocesses = true\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    path = tmp_path / "prefect_caching.py"
    path.write_text(PREFECT_CACHING.replace("from prefect", "from flows_tui"))
    loaded = load_flow_file(path)
    assert loaded.error is None, loaded.error
    first = loaded.module.examples(return_state=True)
    second = loaded.module.examples(debug=True, return_state=True)
    assert first.result() == second.result() == [2, 2, 42, "Marvin"]
    from flows_tui.record.store import Store

    store = Store.open(tmp_path / ".flows-tui")
    try:
        latest = store.runs(None, limit=1)[0]
        assert {t.state for t in store.load_run(latest.run_id).task_runs.values()} == {"Cached"}
    finally:
        store.close()
