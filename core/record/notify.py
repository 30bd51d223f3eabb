"""Slack incoming-webhook and generic webhook notifications when a flow run ends.

The notifier is one more observer of the event bus: it folds events into its own
`RunModel` and, when a flow run reaches a final state a target listens for, posts
that target's message from a background thread. Sending is never on the run's
path: a webhook that is slow or down costs the run nothing and becomes a warning
line in the run's log.

URLs and headers are credentials (often from `${VAR}` in flows.toml): nothing here
ever puts them, or any error text that could echo them, into a log line or event.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from . import events as ev
from flows_tui.project.config import NotifyConfig
from .model import FlowRun, RunModel, TaskRun
from .progress import SYMBOLS, format_duration, run_document
from flows_tui.safe_text import visible
from flows_tui.states import FAILURE_STATES, FINAL_STATES

logger = logging.getLogger("flows_tui.notify")

# A moment for a webhook that hiccuped to recover before the one retry.
RETRY_PAUSE_SECONDS = 1.0
# A map where thousands of task runs failed must not become a multi-megabyte POST.
MAX_FAILED_TASKS = 100
# Slack caps a section's text at 3,000 characters and a field at 2,000.
_SLACK_TEXT_LIMIT = 2900
_SLACK_FIELD_LIMIT = 1900
_SUMMARY_ERROR_LIMIT = 300


@dataclass(frozen=True)
class _Target:
    """Where one kind of message goes, and for which final states."""

    name: str  # as the user reads it in a warning: "Slack", "webhook"
    url: str
    source: str  # where the URL comes from, for the warning: "[notify.slack] webhook_url"
    on: frozenset[str]
    headers: dict[str, str]
    payload: Callable[[FlowRun], dict[str, Any]]

    def __repr__(self) -> str:  # the URL and headers are secrets
        return f"_Target({self.name!r}, on={sorted(self.on)!r})"


class Notifier:
    """A bus subscriber that posts to Slack and/or a webhook when a flow run ends."""

    def __init__(self, config: NotifyConfig, *, bus: ev.EventBus, timeout: float = 5.0) -> None:
        self._bus = bus
        self._timeout = timeout
        self._model = RunModel()  # touched only on the bus's delivery thread
        self._targets: list[_Target] = []
        if config.slack is not None:
            self._targets.append(_Target("Slack", config.slack.webhook_url, "[notify.slack] webhook_url",
                                         frozenset(config.slack.on), {}, _slack_payload))
        if config.webhook is not None:
            self._targets.append(_Target("webhook", config.webhook.url, "[notify.webhook] url",
                                         frozenset(config.webhook.on), dict(config.webhook.headers), _webhook_payload))
        self._sending = 0
        self._idle = threading.Condition()

    def __repr__(self) -> str:
        return f"Notifier(targets={self._targets!r}, timeout={self._timeout!r})"

    def __call__(self, batch: list) -> None:
        for event in batch:
            try:
                self._model.apply(event)
                if isinstance(event, ev.FlowStateChanged) and event.state in FINAL_STATES:
                    self._finished(event.run_id)
            except Exception:  # a notification must never disturb the bus or the run
                logger.exception("could not prepare a notification")

    def _finished(self, run_id: str) -> None:
        # The run is over: forget it, so a long `serve` does not keep every run in memory.
        run = self._model.runs.pop(run_id, None)
        if run is None:
            return  # attached after the run started; there is nothing to say about it
        for target in self._targets:
            if run.state in target.on:
                # Encode here, on the bus thread, so the message is a snapshot of the run at its end.
                # A lone surrogate (a latin-1 file name in an error) goes as a JSON escape, not as a failure.
                body = json.dumps(target.payload(run), ensure_ascii=False).encode("utf-8", "backslashreplace")
                self._start(target, run.run_id, body)

    def _start(self, target: _Target, run_id: str, body: bytes) -> None:
        with self._idle:
            self._sending += 1
        # A daemon thread: an exiting process is never held by a webhook; close() is the way to wait.
        thread = threading.Thread(target=self._send, args=(target, run_id, body),
                                  name=f"flows-tui-notify-{target.name.lower()}", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: give this message up rather than hold the bus
            self._done()
            self._warn(run_id, f"notification to {target.name} failed: could not start a thread")

    def _send(self, target: _Target, run_id: str, body: bytes) -> None:
        try:
            failure = self._post(target, body)
            if failure is not None:
                time.sleep(RETRY_PAUSE_SECONDS)
                failure = self._post(target, body)
            if failure is not None:
                self._warn(run_id, f"notification to {target.name} failed: {failure} "
                                   f"(tried twice; URL from {target.source})")
        except Exception as error:  # never raise out of the notifier; the error's text may quote the URL
            logger.error("notification to %s failed: %s", target.name, type(error).__name__)
        finally:
            self._done()

    def _post(self, target: _Target, body: bytes) -> str | None:
        """POST once; None when delivered, else why not, in words that carry no URL or header."""
        headers = {"Content-Type": "application/json", "User-Agent": "flows-tui", **target.headers}
        try:
            request = urllib.request.Request(target.url, data=body, headers=headers, method="POST")
            with _OPENER.open(request, timeout=self._timeout) as response:
                response.read()
            return None
        except urllib.error.HTTPError as error:
            error.close()
            if 300 <= error.code < 400:
                return f"HTTP {error.code}: the endpoint redirects elsewhere, and notifications do not follow redirects"
            return f"HTTP {error.code}"
        except Exception as error:
            return _describe_failure(error, self._timeout)

    def _warn(self, run_id: str, message: str) -> None:
        line = ev.LogLine(time=_dt.datetime.now(_dt.timezone.utc), level=logging.WARNING, message=message,
                          logger="flows_tui.notify")
        self._bus.publish(ev.LogLines(run_id, (line,)))

    def _done(self) -> None:
        with self._idle:
            self._sending -= 1
            self._idle.notify_all()

    def close(self, timeout: float = 15.0) -> None:
        """Wait (at most `timeout` seconds) until every notification started so far was sent or given up."""
        deadline = time.monotonic() + timeout
        # The run's final event may still be on its way to us: let the bus deliver it first.
        self._bus.flush(timeout)
        with self._idle:
            self._idle.wait_for(lambda: self._sending == 0, timeout=max(0.0, deadline - time.monotonic()))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery. urllib would follow it with a GET that drops the body and
    still carries the configured headers (`Authorization: Bearer …`) to whatever host it names."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def attach(bus: ev.EventBus, config: NotifyConfig | None) -> Notifier | None:
    """Subscribe a Notifier to `bus` when flows.toml configures a target; else None."""
    if config is None or (config.slack is None and config.webhook is None):
        return None
    notifier = Notifier(config, bus=bus)
    bus.subscribe(notifier, name="notify")
    return notifier


def _describe_failure(error: BaseException, timeout: float) -> str:
    """Why a POST failed, from the error's kind only: exception texts may quote the URL."""
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(reason, ssl.SSLError):  # its text can name the host
        return f"TLS error ({type(reason).__name__})"
    if isinstance(reason, OSError):
        # strerror is the operating system's wording ("Connection refused"), never the address.
        return reason.strerror or type(reason).__name__
    if isinstance(reason, (ValueError, str)):  # urllib's own complaints about the URL quote it
        return "invalid URL"
    return type(reason).__name__


# Messages ---------------------------------------------------------------------------------------

def _failed_task_runs(run: FlowRun) -> list[TaskRun]:
    """The task runs of the run's last attempt that failed, timed out or crashed, first to end first."""
    failed = [t for t in run.current_task_runs() if t.state in FAILURE_STATES]
    return sorted(failed, key=lambda t: t.ended or run.ended or run.started)  # stable: creation order on ties


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_line(text: str | None, limit: int) -> str:
    lines = (text or "").strip().splitlines()
    return _clip(lines[0], limit) if lines else ""


def _cause(run: FlowRun) -> tuple[str | None, str | None]:
    """(failed task run's name, error) a reader should see first; for a flow-body failure, no task."""
    failed = _failed_task_runs(run)
    if failed:
        return failed[0].name, failed[0].error
    return None, run.message if run.state not in ("Completed", "Cached") else None


def _summary(run: FlowRun) -> str:
    """One line: `✗ flow run 'etl' (ab12cd34ef56) Failed after 12.3s — clean-3: ValueError: bad row`."""
    text = f"{SYMBOLS.get(run.state, '?')} flow run {run.flow!r} ({run.run_id}) {run.state}"
    if run.duration is not None:
        text += f" after {format_duration(run.duration)}"
    task, error = _cause(run)
    cause = ": ".join(part for part in (task, _first_line(error, _SUMMARY_ERROR_LIMIT)) if part)
    return f"{text} — {cause}" if cause else text


def _mrkdwn(text: str) -> str:
    """Slack treats &, < and > as markup; escape them so user text shows as written, control characters too."""
    return visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_payload(run: FlowRun) -> dict[str, Any]:
    """A Slack incoming-webhook message: the summary as text, and a section with one field per fact."""
    line = _summary(run)
    task, error = _cause(run)
    fields = [
        ("Flow", run.flow),
        ("State", f"{SYMBOLS.get(run.state, '?')} {run.state}"),
        ("Run", f"`{run.run_id}`"),
        ("Duration", format_duration(run.duration) or "-"),
    ]
    if task:
        fields.append(("Failed task", task))
    if error:
        fields.append(("Error", f"```{error.strip()}```"))
    return {
        "text": _mrkdwn(line),
        "blocks": [{
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(_mrkdwn(line), _SLACK_TEXT_LIMIT)},
            "fields": [{"type": "mrkdwn", "text": _clip(f"*{name}*\n{_mrkdwn(value)}", _SLACK_FIELD_LIMIT)}
                       for name, value in fields],
        }],
    }


def _webhook_payload(run: FlowRun) -> dict[str, Any]:
    """The generic webhook document: `run --json`'s run fields plus what a receiver needs to act."""
    document = run_document(run)
    failed = _failed_task_runs(run)
    return {
        "event": "flow_run.finished",
        "run_id": document["run_id"],
        "flow": document["flow"],
        "state": document["state"],
        "message": run.message,
        "parameters": document["parameters"],
        "started": document["started"],
        "ended": document["ended"],
        "duration_seconds": run.duration,
        "failed_tasks": [
            {"id": t.id, "name": t.name, "map_index": t.map_index, "state": t.state, "error": t.error}
            for t in failed[:MAX_FAILED_TASKS]
        ],
        "failed_task_count": len(failed),
    }


__all__ = ["Notifier", "attach"]
