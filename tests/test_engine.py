"""The execution model: what a user sees of states, attempts, retries and failures."""

from __future__ import annotations

import threading
import time

import pytest

from flows_tui import allow_failure, exponential_backoff, flow, get_run_logger, task, unmapped
from flows_tui.record.events import AttemptStarted, LogLines, TaskStateChanged


@task
def inc(x):
    return x + 1


@task
def double(x):
    return 2 * x


@task
def add(x, y):
    return x + y


@task
def total(values):
    return sum(values)


@task
def boom(message="boom"):
    raise ValueError(message)


@task
def describe(value):
    return f"got {type(value).__name__}: {value}"


def states_by_name(engine):
    return {t.name: t.state for t in engine.flow_run.task_runs.values()}


def test_map_reduce_returns_the_sum_and_every_task_completes(run):
    @flow
    def map_reduce(n: int = 10):
        return total(add.map(inc.map(range(n)), double.map(range(n))))

    engine, _ = run(map_reduce, n=20)
    assert engine.final.name == "Completed"
    assert engine.return_value == sum(i + 1 + 2 * i for i in range(20))
    assert engine.flow_run.counts() == {"Completed": 61}
    mapped = [t for t in engine.flow_run.task_runs.values() if t.task == "add"]
    assert sorted(t.map_index for t in mapped) == list(range(20))
    assert all(len(t.upstream) == 2 for t in mapped)


def test_a_task_called_outside_a_flow_runs_at_once_and_returns_its_value():
    assert inc(41) == 42


def test_submit_returns_a_future_with_result_state_and_wait(run):
    seen = {}

    @flow
    def submitting():
        future = inc.submit(1)
        future.wait()
        seen["state"] = future.state.name
        seen["done"] = future.done()
        return future.result() + 1

    engine, _ = run(submitting)
    assert engine.return_value == 3
    assert seen == {"state": "Completed", "done": True}


def test_futures_nested_in_lists_and_dicts_are_resolved(run):
    @task
    def combine(items, mapping):
        return sum(items) + sum(mapping.values())

    @flow
    def nested():
        a, b = inc.submit(1), inc.submit(2)
        return combine([a, b, 10], {"x": a, "y": (b, 0)[0]})

    engine, _ = run(nested)
    assert engine.return_value == 2 + 3 + 10 + 2 + 3


def test_retries_record_every_attempt_with_its_delay(run, tmp_path):
    counter = tmp_path / "attempts"

    @task(retries=3, retry_delay_seconds=0.3)
    def flaky():
        count = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(count))
        if count < 3:
            raise ConnectionError(f"attempt {count} failed")
        return count

    @flow
    def retrying():
        return flaky()

    engine, recorder = run(retrying)
    assert engine.final.name == "Completed" and engine.return_value == 3
    [task_run] = engine.flow_run.task_runs.values()
    assert [a.state for a in task_run.attempts] == ["Failed", "Failed", "Completed"]
    assert task_run.attempts[0].error == "ConnectionError: attempt 1 failed"
    assert "ConnectionError" in task_run.attempts[0].traceback
    for before, after in zip(task_run.attempts, task_run.attempts[1:]):
        assert (after.started - before.ended).total_seconds() >= 0.29
    retrying_events = [e for e in recorder.of(TaskStateChanged) if e.state == "Retrying"]
    assert len(retrying_events) == 2 and all(e.retry_at is not None for e in retrying_events)


def test_retry_delay_list_and_exponential_backoff_give_each_attempt_its_delay():
    listed = task(retries=4, retry_delay_seconds=[1, 5, 10])(lambda: None)
    assert [listed.retry_delay(n) for n in (1, 2, 3, 4)] == [1, 5, 10, 10]
    backoff = task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2))(lambda: None)
    assert [backoff.retry_delay(n) for n in (1, 2, 3)] == [2, 4, 8]
    jittered = task(retries=1, retry_delay_seconds=10, retry_jitter_factor=0.5)(lambda: None)
    assert all(5 <= jittered.retry_delay(1) <= 15 for _ in range(50))


def test_retry_condition_fn_can_refuse_a_retry(run):
    def only_connection_errors(task, task_run, state):
        return isinstance(state.result(raise_on_failure=False), ConnectionError)

    @task(retries=3, retry_condition_fn=only_connection_errors)
    def wrong_value():
        raise ValueError("not worth retrying")

    @flow
    def refusing():
        wrong_value()

    engine, _ = run(refusing)
    [task_run] = engine.flow_run.task_runs.values()
    assert task_run.state == "Failed" and len(task_run.attempts) == 1


def test_downstream_of_a_failure_is_not_run_and_the_flow_fails(run):
    @flow
    def chain():
        failed = boom.submit()
        after = inc.submit(failed)
        return inc.submit(after)

    engine, _ = run(chain)
    states = states_by_name(engine)
    assert states == {"boom-0": "Failed", "inc-0": "NotRun", "inc-1": "NotRun"}
    assert engine.final.name == "Failed"
    not_run = engine.flow_run.task_runs[[t.id for t in engine.flow_run.task_runs.values() if t.name == "inc-0"][0]]
    assert "boom-0" in not_run.message and not_run.attempts == []


def test_a_task_two_steps_below_a_failure_names_the_task_that_failed(run):
    @flow
    def chain():
        return inc(inc.submit(boom.submit()))

    engine, _ = run(chain)
    last = next(t for t in engine.flow_run.task_runs.values() if t.name == "inc-1")
    assert last.state == "NotRun" and last.message == "upstream task 'boom-0' ended Failed"
    assert "boom-0" in engine.final.message


def test_allow_failure_passes_the_exception_and_the_flow_completes(run):
    @flow
    def tolerant():
        failed = boom.submit("bad row")
        return describe(allow_failure(failed))

    engine, _ = run(tolerant)
    assert engine.return_value == "got ValueError: bad row"
    assert engine.final.name == "Completed"


def test_return_state_lets_the_body_handle_a_failure(run):
    @flow
    def inspecting():
        state = boom(return_state=True)
        return "handled" if state.is_failed() else "missed"

    engine, _ = run(inspecting)
    assert engine.final.name == "Completed" and engine.return_value == "handled"


def test_a_caught_task_exception_is_handled(run):
    @flow
    def catching():
        try:
            boom("caught")
        except ValueError as error:
            return f"caught {error}"

    engine, _ = run(catching)
    assert engine.final.name == "Completed" and engine.return_value == "caught caught"


def test_an_unobserved_failed_task_fails_the_flow(run):
    @flow
    def fire_and_forget():
        boom.submit()
        return "body finished"

    engine, _ = run(fire_and_forget)
    assert engine.final.name == "Failed"
    assert "boom-0" in engine.final.message


def test_a_flow_returning_a_failed_future_fails(run):
    @flow
    def returning_failure():
        return boom.submit()

    engine, _ = run(returning_failure)
    assert engine.final.name == "Failed"


def test_the_run_ends_only_when_every_started_task_has_ended(run):
    @task
    def slow():
        time.sleep(0.5)
        return "done"

    @flow
    def not_waiting():
        slow.submit()

    engine, _ = run(not_waiting)
    [task_run] = engine.flow_run.task_runs.values()
    assert task_run.state == "Completed"
    assert engine.flow_run.ended >= task_run.ended


def test_a_busy_task_times_out_at_its_deadline_and_stops(run, tmp_path):
    beat = tmp_path / "beat"

    @task(timeout_seconds=1)
    def spin():
        count = 0
        while True:
            count += 1
            if count % 100_000 == 0:
                with beat.open("a") as handle:
                    handle.write(".")

    @flow
    def spinning():
        spin()

    engine, _ = run(spinning)
    [task_run] = engine.flow_run.task_runs.values()
    assert task_run.state == "TimedOut"
    assert 0.9 <= task_run.attempts[0].duration < 3
    assert "timed out after 1s" in task_run.error
    beats = beat.stat().st_size
    time.sleep(0.3)  # the loop was interrupted: no more beats after the deadline
    assert beat.stat().st_size == beats


def test_a_task_stuck_in_sleep_is_reported_timed_out_at_the_deadline(run):
    @task(timeout_seconds=0.5, retries=1)
    def sleepy():
        time.sleep(5)

    @flow
    def sleeping():
        sleepy()

    started = time.monotonic()
    engine, _ = run(sleeping)
    assert time.monotonic() - started < 3
    [task_run] = engine.flow_run.task_runs.values()
    assert [a.state for a in task_run.attempts] == ["TimedOut", "TimedOut"]
    assert engine.final.name == "Failed"


def test_flow_retries_rerun_the_body(run, tmp_path):
    marker = tmp_path / "first-attempt-done"

    @flow(retries=1, retry_delay_seconds=0.1)
    def second_time_lucky():
        if not marker.exists():
            marker.write_text("x")
            boom()
        return inc(1)

    engine, _ = run(second_time_lucky)
    assert engine.final.name == "Completed" and engine.return_value == 2
    assert engine.flow_run.attempt == 2
    assert [s for s, _ in engine.flow_run.history].count("Retrying") == 1


def test_a_flow_timeout_ends_the_run_timed_out_and_cancels_its_tasks(run):
    @task
    def long():
        time.sleep(3)

    @flow(timeout_seconds=0.5)
    def too_slow():
        long.submit()
        long()

    started = time.monotonic()
    engine, _ = run(too_slow)
    assert time.monotonic() - started < 2.5
    assert engine.final.name == "TimedOut"
    assert set(states_by_name(engine).values()) == {"Cancelled"}


def test_a_body_thread_still_exiting_after_the_body_ended_is_not_a_timeout(run, monkeypatch):
    """The body's thread lives a moment after the body has ended; a run without a timeout
    that looks at it in that moment must end as the body did (it once raised TypeError)."""
    import flows_tui.engine.flow_run as engine_module

    class LingeringThread(threading.Thread):
        def run(self):
            super().run()
            if self.name.startswith("flows-tui-driver-"):
                time.sleep(0.3)  # the moment, made wide enough to be seen every time

    monkeypatch.setattr(engine_module.threading, "Thread", LingeringThread)

    @flow
    def quick():
        return inc(1)

    @flow
    def failing():
        boom()

    engine, _ = run(quick)
    assert engine.final.name == "Completed" and engine.return_value == 2
    engine, _ = run(failing)
    assert engine.final.name == "Failed" and "TimedOut" not in [s for s, _ in engine.flow_run.history]


def test_logs_and_prints_reach_the_run_tagged_with_their_task_run(run):
    @task(log_prints=True)
    def chatty(x):
        print("printing", x)
        get_run_logger().warning("warning %s", x)
        return x

    @flow(log_prints=True)
    def talking():
        get_run_logger().info("from the body")
        print("body print")
        return chatty(7)

    engine, recorder = run(talking)
    lines = [line for e in recorder.of(LogLines) for line in e.lines]
    by_message = {line.message: line for line in lines}
    [task_run] = engine.flow_run.task_runs.values()
    assert by_message["printing 7"].task_run_id == task_run.id
    assert by_message["warning 7"].level == 30 and by_message["warning 7"].attempt == 1
    assert by_message["from the body"].task_run_id is None
    assert "body print" in by_message


def test_prints_without_log_prints_are_not_captured(run, capsys):
    @task
    def quiet():
        print("plain print")

    @flow
    def plain():
        quiet()

    _, recorder = run(plain)
    assert "plain print" not in recorder.log_messages()


def test_hooks_run_after_completion_and_failure(run, tmp_path):
    calls = tmp_path / "hooks"

    def record(task, task_run, state):
        with calls.open("a") as handle:
            handle.write(f"{task.name}:{state.name}:{task_run.run_count}\n")

    ok = task(on_completion=[record])(lambda: 1)
    ok.name = "ok"
    bad = task(on_failure=[record], retries=1)(lambda: 1 / 0)
    bad.name = "bad"

    @flow
    def hooked():
        ok()
        bad(return_state=True)

    run(hooked)
    assert sorted(calls.read_text().split()) == ["bad:Failed:2", "ok:Completed:1"]


def test_task_run_name_is_formatted_from_the_parameters(run):
    @task(task_run_name="inc-{x}")
    def named(x):
        return x

    @flow
    def naming():
        named.map([3, 4])

    engine, _ = run(naming)
    assert sorted(states_by_name(engine)) == ["inc-3", "inc-4"]


def test_map_with_unmapped_and_static_arguments(run):
    @task
    def scale(x, factor, offsets):
        return x * factor + sum(offsets)

    @flow
    def mapping():
        return scale.map([1, 2, 3], 10, unmapped([1, 1])).result()

    engine, _ = run(mapping)
    assert engine.return_value == [12, 22, 32]


def test_map_over_a_future_keeps_its_value_on_the_cluster(run):
    @task
    def numbers():
        return [5, 6, 7]

    @flow
    def mapping_future():
        return [f.result() for f in inc.map(numbers.submit())]

    engine, _ = run(mapping_future)
    assert engine.return_value == [6, 7, 8]


def test_map_with_different_lengths_is_a_clear_error(run):
    @flow
    def uneven():
        add.map([1, 2], [1, 2, 3])

    engine, _ = run(uneven)
    assert engine.final.name == "Failed"
    assert "different lengths" in engine.final.message


def test_wait_for_orders_without_passing_data(run, tmp_path):
    log = tmp_path / "order"

    @task
    def write(text):
        time.sleep(0.2 if text == "first" else 0)
        with log.open("a") as handle:
            handle.write(text + "\n")

    @flow
    def ordered():
        first = write.submit("first")
        write.submit("second", wait_for=[first]).wait()

    engine, _ = run(ordered)
    assert log.read_text().split() == ["first", "second"]
    second = [t for t in engine.flow_run.task_runs.values() if t.name == "write-1"][0]
    assert len(second.upstream) == 1


def test_get_dask_client_inside_a_task_computes_on_the_cluster(run):
    from flows_tui import get_dask_client

    @task
    def dask_sum(n):
        import dask.array as da

        with get_dask_client() as client:
            return int(client.compute(da.arange(n, chunks=10).sum()).result())

    @flow
    def dask_inside():
        return dask_sum(100)

    engine, _ = run(dask_inside)
    assert engine.return_value == sum(range(100))


def test_attempt_events_carry_the_worker(run):
    @flow
    def one():
        return inc(1)

    _, recorder = run(one)
    [started] = recorder.of(AttemptStarted)
    assert started.worker is not None and started.attempt == 1


def test_a_bad_call_signature_fails_the_flow_with_the_type_error(run):
    @flow
    def wrong_call():
        inc(1, 2)

    engine, _ = run(wrong_call)
    assert engine.final.name == "Failed" and "TypeError" in engine.final.message


@pytest.mark.parametrize("n", [0])
def test_mapping_over_an_empty_list_gives_no_task_runs(run, n):
    @flow
    def empty(n: int):
        return total(inc.map(range(n)))

    engine, _ = run(empty, n=n)
    assert engine.return_value == 0


def test_flow_hooks_run_with_the_final_state(run):
    seen = []

    @flow(on_failure=[lambda f, run, state: seen.append((f.name, state.name))],
          on_completion=[lambda f, run, state: seen.append(("done", state.name))])
    def hooked_flow():
        boom()

    engine, _ = run(hooked_flow)
    assert seen == [("hooked-flow", "Failed")]


def test_a_finished_run_lets_go_of_its_results_on_the_cluster(run, thread_client):
    """Dask's unsubscribe_topic keeps the handler: the engine must not stay reachable through it.

    Held, every run would keep its futures, and with them its results in the workers' memory,
    for as long as the client lives (a `serve` or the UI runs flow after flow on one client).
    """
    import gc
    import weakref

    @flow
    def small(n: int = 5):
        return total(inc.map(range(n)))

    runs = []
    for _ in range(3):
        engine, _ = run(small, n=5)
        assert engine.return_value == 15
        runs.append((weakref.ref(engine), {track.key for track in engine._tracking.values()}))
        del engine
    # An engine may stay reachable for a moment through a copy of its driver thread's context
    # in a callback that Dask's IO loop still holds (and one, for the client's life, in the
    # reader of a connection opened from it); held by the client, every one would stay for good.
    deadline = time.monotonic() + 10
    while True:
        gc.collect()
        alive = [ref for ref, _ in runs[:2] if ref() is not None]
        held = set(thread_client.futures)
        if len(alive) <= 1 and sum(bool(keys & held) for _, keys in runs[:2]) <= 1:
            break
        assert time.monotonic() < deadline, f"{len(alive)} finished runs still held, with their futures"
        time.sleep(0.1)


def test_performance_report_path_writes_dasks_report_or_says_it_needs_bokeh(run, tmp_path):
    from flows_tui import DaskTaskRunner

    path = tmp_path / "report.html"

    @flow(task_runner=DaskTaskRunner(performance_report_path=str(path)))
    def reported():
        return inc(1)

    engine, recorder = run(reported)
    assert engine.final.name == "Completed" and engine.return_value == 2
    try:
        import bokeh  # noqa: F401
    except ImportError:
        assert any("needs bokeh (pip install bokeh); no report is written" in m for m in recorder.log_messages())
        assert not path.exists()
    else:
        assert "Dask Performance Report" in path.read_text()
