"""Notifications (Slack, generic webhook) against a real HTTP server, and the flow hooks per final state."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import Recorder, free_port, wait_until

from flows_tui import flow, task
from flows_tui.project.config import parse_config
from flows_tui.engine.flow_run import run_flow
from flows_tui.record.events import EventBus, FlowStateChanged, LogLines
from flows_tui.record.notify import RETRY_PAUSE_SECONDS, Notifier, attach
from flows_tui.record.progress import format_duration
from flows_tui.states import FINAL_STATES, Crashed

# The path of a Slack incoming-webhook URL is its credential.
SECRET = "s3cr3t-token-4711"
HEADER_SECRET = "hdr-s3cr3t-0815"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every POST; `mode` is "ok", "error" (500) or "hang"."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.redirect_to: str | None = None  # with mode "redirect": answer 302 with this Location
        self.requests: list[Request] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                 json.loads(body)))
                if receiver.mode == "hang":
                    receiver.release.wait(30)  # until the test ends; the client gave up long before
                    return
                if receiver.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 500 if receiver.mode == "error" else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self) -> None:  # what a followed redirect would turn the POST into
                receiver.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, {}))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def notify_config(tmp_path: Path, text: str, **environ: str):
    """`[notify]` as a user writes it in flows.toml, with `${VAR}` read from `environ`."""
    return parse_config(text, path=tmp_path / "flows.toml", environ=environ).notify


def slack_config(tmp_path: Path, receiver: Receiver, on: str = '["Failed", "Crashed"]'):
    return notify_config(tmp_path, f'[notify.slack]\nwebhook_url = "${{SLACK_WEBHOOK_URL}}"\non = {on}\n',
                         SLACK_WEBHOOK_URL=receiver.url(f"/services/T0/B0/{SECRET}"))


@dataclass
class Notified:
    engine: object
    recorder: Recorder
    close_seconds: float  # from the run's end until every notification was sent or given up


@pytest.fixture
def notified_run(thread_client):
    """Like conftest's `run`, with a Notifier on the same bus; waits for its sends after the run."""

    def go(flow, config, *, timeout: float | None = None, on_engine=None, **parameters) -> Notified:
        bus = EventBus()
        recorder = Recorder()
        bus.subscribe(recorder, name="test")
        if timeout is None:
            notifier = attach(bus, config)  # as the runner does
        else:
            notifier = Notifier(config, bus=bus, timeout=timeout)
            bus.subscribe(notifier, name="notify")
        bound = flow.signature.bind(**parameters)
        bound.apply_defaults()
        engine = run_flow(flow, dict(bound.arguments), client=thread_client, bus=bus, on_engine=on_engine)
        ended = time.monotonic()
        notifier.close()
        close_seconds = time.monotonic() - ended
        assert bus.flush(10)
        return Notified(engine, recorder, close_seconds)

    return go


@task
def clean(row):
    if row == 3:
        raise ValueError("bad row")
    return row


@flow(name="taxi_tips")
def taxi_tips(day: str = "mon"):
    clean.map(range(5))


@flow(name="all_good")
def all_good():
    return clean(1)


def warnings_of(recorder: Recorder, run_id: str) -> list:
    return [line for e in recorder.of(LogLines) if e.run_id == run_id for line in e.lines
            if line.logger == "flows_tui.notify"]


def test_a_failed_run_posts_a_slack_message_naming_flow_state_run_failed_task_error_and_duration(
        tmp_path, receiver, notified_run):
    result = notified_run(taxi_tips, slack_config(tmp_path, receiver))
    engine = result.engine

    assert engine.final.name == "Failed"
    assert [r.path for r in receiver.requests] == [f"/services/T0/B0/{SECRET}"]
    request = receiver.requests[0]
    assert request.headers["content-type"] == "application/json"
    text = request.body["text"]
    duration = format_duration(engine.flow_run.duration)
    assert text == (f"✗ flow run 'taxi_tips' ({engine.run_id}) Failed after {duration} — "
                    "clean-3: ValueError: bad row")
    [section] = request.body["blocks"]
    assert section["type"] == "section" and section["text"] == {"type": "mrkdwn", "text": text}
    fields = [field["text"] for field in section["fields"]]
    assert fields == ["*Flow*\ntaxi_tips", "*State*\n✗ Failed", f"*Run*\n`{engine.run_id}`",
                      f"*Duration*\n{duration}", "*Failed task*\nclean-3", "*Error*\n```ValueError: bad row```"]
    assert warnings_of(result.recorder, engine.run_id) == []


def test_a_flow_body_failure_is_named_by_the_flow_runs_message(tmp_path, receiver, notified_run):
    @flow(name="broken_body")
    def broken_body():
        raise KeyError("path")

    notified_run(broken_body, slack_config(tmp_path, receiver))

    [request] = receiver.requests
    assert request.body["text"].endswith("— flow body raised KeyError: 'path'")
    assert "*Failed task*" not in json.dumps(request.body["blocks"])


def test_a_webhook_receives_the_run_document_with_the_configured_header(tmp_path, receiver, notified_run):
    config = notify_config(tmp_path, '[notify.webhook]\nurl = "${HOOK_URL}"\non = ["Failed"]\n'
                                     'headers = { Authorization = "Bearer ${HOOK_TOKEN}" }\n',
                           HOOK_URL=receiver.url(f"/hooks/{SECRET}"), HOOK_TOKEN=HEADER_SECRET)

    result = notified_run(taxi_tips, config, day="tue")
    run = result.engine.flow_run

    [request] = receiver.requests
    assert request.path == f"/hooks/{SECRET}"
    assert request.headers["authorization"] == f"Bearer {HEADER_SECRET}"
    assert request.headers["content-type"] == "application/json"
    document = request.body
    failed = next(t for t in run.task_runs.values() if t.name == "clean-3")
    assert document == {
        "event": "flow_run.finished",
        "run_id": run.run_id,
        "flow": "taxi_tips",
        "state": "Failed",
        "message": run.message,
        "parameters": {"day": "tue"},
        "started": run.started.isoformat(),
        "ended": run.ended.isoformat(),
        "duration_seconds": pytest.approx(run.duration),
        "failed_tasks": [{"id": failed.id, "name": "clean-3", "map_index": 3, "state": "Failed",
                          "error": "ValueError: bad row"}],
        "failed_task_count": 1,
    }
    started, ended = (_dt.datetime.fromisoformat(document[k]) for k in ("started", "ended"))
    assert started.tzinfo is not None and ended >= started


def test_on_sends_a_completed_run_only_to_the_targets_that_list_completed(tmp_path, receiver, notified_run):
    config = notify_config(tmp_path, '[notify.slack]\nwebhook_url = "${SLACK}"\non = ["Failed"]\n'
                                     '[notify.webhook]\nurl = "${HOOK}"\non = ["Completed", "Failed"]\n',
                           SLACK=receiver.url("/slack"), HOOK=receiver.url("/hook"))

    result = notified_run(all_good, config)

    assert result.engine.final.name == "Completed"
    assert [(r.path, r.body["state"]) for r in receiver.requests] == [("/hook", "Completed")]
    assert receiver.requests[0].body["failed_tasks"] == []


def test_a_webhook_answering_500_is_tried_twice_then_warned_in_the_runs_log_and_the_run_is_unchanged(
        tmp_path, receiver, notified_run):
    receiver.mode = "error"

    result = notified_run(taxi_tips, slack_config(tmp_path, receiver))
    engine = result.engine

    assert len(receiver.requests) == 2
    [warning] = warnings_of(result.recorder, engine.run_id)
    assert warning.level == logging.WARNING and warning.task_run_id is None
    assert warning.message == ("notification to Slack failed: HTTP 500 "
                               "(tried twice; URL from [notify.slack] webhook_url)")
    finals = [e.state for e in result.recorder.of(FlowStateChanged) if e.state in FINAL_STATES]
    assert finals == ["Failed"] and engine.final.name == "Failed" and engine.flow_run.state == "Failed"


def test_a_hanging_webhook_is_given_up_after_two_timeouts_and_never_holds_the_bus(tmp_path, receiver, run):
    receiver.mode = "hang"
    engine, finished = run(taxi_tips)  # the events of a real failed run
    bus = EventBus()
    recorder = Recorder()
    bus.subscribe(recorder, name="test")
    notifier = Notifier(slack_config(tmp_path, receiver), bus=bus, timeout=0.5)

    started = time.monotonic()
    notifier(finished.events)  # as the bus would deliver them
    handed_over = time.monotonic() - started
    notifier.close()
    given_up = time.monotonic() - started
    assert bus.flush(10)

    assert handed_over < 0.2, "the notifier must not send on the bus's thread"
    assert len(receiver.requests) == 2
    # Two timeouts and the pause between them, with room for a slow machine.
    assert 2 * 0.5 <= given_up < 2 * 0.5 + RETRY_PAUSE_SECONDS + 1.0
    [warning] = warnings_of(recorder, engine.run_id)
    assert warning.message == ("notification to Slack failed: no answer within 0.5s "
                               "(tried twice; URL from [notify.slack] webhook_url)")


def test_a_webhook_that_is_down_becomes_a_warning_naming_the_refused_connection(tmp_path, run):
    engine, finished = run(taxi_tips)
    bus = EventBus()
    recorder = Recorder()
    bus.subscribe(recorder, name="test")
    url = f"http://127.0.0.1:{free_port()}/services/{SECRET}"  # nothing listens there
    config = notify_config(tmp_path, '[notify.slack]\nwebhook_url = "${URL}"\n', URL=url)
    notifier = Notifier(config, bus=bus, timeout=0.5)

    notifier(finished.events)
    notifier.close()
    assert bus.flush(10)

    [warning] = warnings_of(recorder, engine.run_id)
    assert warning.message == ("notification to Slack failed: Connection refused "
                               "(tried twice; URL from [notify.slack] webhook_url)")


def test_the_run_ends_before_a_slow_notification_is_given_up(tmp_path, receiver, notified_run):
    receiver.mode = "hang"

    result = notified_run(taxi_tips, slack_config(tmp_path, receiver), timeout=0.5)

    # The run returned while both attempts were still to come: sending is off its path.
    assert result.close_seconds >= 2 * 0.5
    assert result.engine.final.name == "Failed" and len(receiver.requests) == 2


def test_urls_and_headers_from_the_environment_never_appear_in_events_logs_or_reprs(
        tmp_path, receiver, notified_run, caplog):
    receiver.mode = "error"  # failures are where a careless message would quote the URL
    config = notify_config(
        tmp_path,
        '[notify.slack]\nwebhook_url = "${SLACK_WEBHOOK_URL}"\n'
        '[notify.webhook]\nurl = "${HOOK_URL}"\nheaders = { "X-Token" = "${HOOK_TOKEN}" }\n',
        SLACK_WEBHOOK_URL=receiver.url(f"/services/T0/B0/{SECRET}"), HOOK_URL=receiver.url(f"/h/{SECRET}"),
        HOOK_TOKEN=HEADER_SECRET)
    caplog.set_level(logging.DEBUG)

    result = notified_run(taxi_tips, config)

    assert len(receiver.requests) == 4  # both targets, twice each
    assert [r.headers.get("x-token") for r in receiver.requests if r.path.startswith("/h/")] == [HEADER_SECRET] * 2
    messages = [line.message for line in warnings_of(result.recorder, result.engine.run_id)]
    assert sorted(messages) == [
        "notification to Slack failed: HTTP 500 (tried twice; URL from [notify.slack] webhook_url)",
        "notification to webhook failed: HTTP 500 (tried twice; URL from [notify.webhook] url)"]
    seen = [repr(e) for e in result.recorder.events] + [repr(config), str(config), repr(config.slack),
                                                         repr(config.webhook), caplog.text]
    for text in seen:
        assert SECRET not in text and HEADER_SECRET not in text and receiver.url("") not in text


def test_an_unset_variable_is_named_in_the_warning_without_any_value(tmp_path):
    config = parse_config('[notify.slack]\nwebhook_url = "https://hooks.example/${TEAM}/${TOKEN}"\n',
                          path=tmp_path / "flows.toml", environ={"TEAM": "team-s3cr3t"})
    [warning] = config.warnings
    assert "TOKEN" in warning and "team-s3cr3t" not in warning and "hooks.example" not in warning
    assert config.notify.slack is None and "team-s3cr3t" not in repr(config)


def test_attach_does_nothing_without_a_target():
    assert attach(EventBus(), None) is None
    assert attach(EventBus(), parse_config("", path=Path("flows.toml")).notify) is None


# Flow hooks ------------------------------------------------------------------------------------

def hooked(seen: list, **options):
    """Flow options recording which hooks ran, with which state."""
    return dict(
        on_completion=[lambda f, run, state: seen.append(("on_completion", state.name))],
        on_failure=[lambda f, run, state: seen.append(("on_failure", state.name))],
        on_crashed=[lambda f, run, state: seen.append(("on_crashed", state.name))],
        on_cancellation=[lambda f, run, state: seen.append(("on_cancellation", state.name))],
        **options)


def test_cancelling_a_run_calls_on_cancellation_hooks_and_notifies(tmp_path, receiver, notified_run):
    seen: list = []

    @task
    def slow():
        time.sleep(2)

    @flow(name="cancel_me", **hooked(seen))
    def cancel_me():
        slow()

    def cancel_when_running(engine) -> None:
        def cancel() -> None:
            def task_running() -> bool:  # the run itself starts after this hook returns
                run = engine.model.runs.get(engine.run_id)
                return run is not None and any(t.state == "Running" for t in list(run.task_runs.values()))

            wait_until(task_running, message="the task to run")
            engine.cancel()

        threading.Thread(target=cancel, daemon=True).start()

    result = notified_run(cancel_me, slack_config(tmp_path, receiver, on='["Cancelled"]'),
                          on_engine=cancel_when_running)

    assert result.engine.final.name == "Cancelled"
    assert seen == [("on_cancellation", "Cancelled")]
    [request] = receiver.requests
    assert f"({result.engine.run_id}) Cancelled after" in request.body["text"]


def test_a_timed_out_flow_calls_on_failure_hooks(run):
    seen: list = []

    @flow(timeout_seconds=0.3, **hooked(seen))
    def too_slow():
        for _ in range(100):  # short sleeps, so the timeout's interruption lands at once
            time.sleep(0.05)

    engine, _ = run(too_slow)

    assert engine.final.name == "TimedOut"
    assert seen == [("on_failure", "TimedOut")]


def test_a_crashed_flow_run_calls_on_crashed_hooks_and_not_on_failure(run):
    # A flow run in this process never ends Crashed by itself (a dead worker fails its task, not
    # the flow; a killed flows-tui runs no hooks), so the routing is checked with a constructed state.
    seen: list = []

    @flow(**hooked(seen))
    def fine():
        return 1

    engine, _ = run(fine)
    engine._run_flow_hooks(Crashed("the cluster went away"))

    assert seen == [("on_completion", "Completed"), ("on_crashed", "Crashed")]


def test_with_options_replaces_a_flows_hooks(run):
    seen: list = []

    @flow
    def fails():
        raise RuntimeError("no")

    engine, _ = run(fails.with_options(**hooked(seen)))

    assert engine.final.name == "Failed"
    assert seen == [("on_failure", "Failed")]


CLI_FLOWS = """
from flows_tui import flow, task

@task
def clean(row):
    if row == 3:
        raise ValueError("bad row")
    return row

@flow(name="taxi_tips")
def taxi_tips():
    clean.map(range(5))
"""


def _cli_project(tmp_path: Path, notify: str) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "taxi.py").write_text(CLI_FLOWS)
    (tmp_path / "flows.toml").write_text('[project]\nflows_dir = "flows"\n'
                                         '[cluster]\nn_workers = 1\nprocesses = false\n' + notify)
    return tmp_path


def test_flows_tui_run_posts_the_webhook_and_a_down_webhook_changes_nothing_but_a_warning(tmp_path, receiver):
    from conftest import cli

    project = _cli_project(tmp_path, '[notify.webhook]\nurl = "${HOOK_URL}"\n')
    secret_url = receiver.url(f"/hooks/{SECRET}")
    result = cli("run", "taxi_tips", cwd=project, env={"HOOK_URL": secret_url})
    assert result.returncode == 1, result.stderr
    [request] = receiver.requests
    assert request.body["flow"] == "taxi_tips" and request.body["state"] == "Failed"
    assert [t["error"] for t in request.body["failed_tasks"]] == ["ValueError: bad row"]

    receiver.mode = "error"
    down = cli("run", "taxi_tips", cwd=project, env={"HOOK_URL": secret_url})
    assert down.returncode == 1  # the run's outcome, not the webhook's
    assert "notification to webhook failed: HTTP 500" in down.stdout
    run_id = json.loads(cli("runs", "--json", cwd=project).stdout.splitlines()[0])["run_id"]
    stored = cli("logs", run_id, "--json", cwd=project).stdout
    assert "notification to webhook failed" in stored
    for text in (result.stdout, result.stderr, down.stdout, down.stderr, stored):
        assert SECRET not in text


def test_a_redirect_is_a_failed_delivery_and_the_header_never_reaches_the_other_host(tmp_path, receiver,
                                                                                       notified_run):
    elsewhere = Receiver()
    try:
        receiver.mode, receiver.redirect_to = "redirect", elsewhere.url("/collect")
        config = notify_config(tmp_path, '[notify.webhook]\nurl = "${HOOK_URL}"\non = ["Failed"]\n'
                                         'headers = { Authorization = "Bearer ${HOOK_TOKEN}" }\n',
                               HOOK_URL=receiver.url(f"/hooks/{SECRET}"), HOOK_TOKEN=HEADER_SECRET)
        result = notified_run(taxi_tips, config)
        assert len(receiver.requests) == 2  # the POST and its one retry, both answered 302
        assert elsewhere.requests == []  # never followed: no GET, no Authorization header over there
        [warning] = warnings_of(result.recorder, result.engine.run_id)
        assert "HTTP 302" in warning.message and "redirect" in warning.message
        assert SECRET not in warning.message and HEADER_SECRET not in warning.message
    finally:
        elsewhere.close()
