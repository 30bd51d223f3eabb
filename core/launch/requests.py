"""Cancelling a run from another process, through the store.

The asking side (`flows-tui cancel`, `c` in a UI that does not own the run) adds a request row
and waits for the answer; the owning side (every process that records runs: `run`, `serve`, a
UI, a flow called from Python) polls the rows for its runs a few times a second and cancels
the engine as if asked locally, recorded Cancelled with who asked.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from flows_tui.states import CANCELLED, CRASHED

from .launcher import engine_in_flight

if TYPE_CHECKING:
    from flows_tui.record.store import Store

logger = logging.getLogger("flows_tui.requests")

POLL_SECONDS = 0.2  # the owner sees a request within this (the target: within 1 s)
ANSWER_SECONDS = 5.0  # how long the asking side waits for the owner to act


def asked_by() -> str:
    """Who asks, as the owner records it: "flows-tui pid 4242 on build-01"."""
    return f"flows-tui pid {os.getpid()} on {socket.gethostname()}"


@dataclass(frozen=True)
class CancelOutcome:
    cancelled: bool  # the run is now Cancelled (by its owner, at this request)
    message: str


def cancel_run(store: "Store", run_id: str, *, wait: float = ANSWER_SECONDS) -> CancelOutcome:
    """Ask the process that owns `run_id` to cancel it, and say what became of the request."""
    state, ended, owner, alive = store.run_owner(run_id)
    who = f"{owner.command or 'flows-tui'} (pid {owner.pid} on {owner.host})"
    if ended is not None and not (state == CRASHED and not alive):
        return CancelOutcome(False, f"run {run_id} ended already: {state}")
    if not alive:
        store.recover()
        return CancelOutcome(False, f"run {run_id} was not cancelled: its process {who} is gone; the run is "
                                    "recorded Crashed")
    request = store.ask(run_id, "cancel", asked_by())
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        answer = store.answer_of(request)
        state, ended, _, alive = store.run_owner(run_id)
        if ended is not None and (answer is not None or state == CANCELLED):
            if state == CANCELLED:
                return CancelOutcome(True, f"run {run_id} cancelled by {who}")
            return CancelOutcome(False, f"run {run_id} ended {state} before it was cancelled")
        if not alive:
            store.recover()
            return CancelOutcome(False, f"run {run_id}: its process {who} ended meanwhile; the run is recorded "
                                        "Crashed")
        time.sleep(0.05)
    answer = store.answer_of(request)
    if answer is not None:
        return CancelOutcome(False, f"run {run_id}: {who} is cancelling it ({answer}); it has not ended yet")
    return CancelOutcome(False, f"run {run_id}: no answer from {who} within {wait:g}s (the request stays; it acts "
                                "on it when it can)")


@dataclass(frozen=True)
class RunNowOutcome:
    started: bool  # the process that fires the schedules started the run
    gone: bool  # that process is gone (the asking side may run it itself)
    message: str


def run_now_through(store: "Store", flow: str, holder: str, holder_alive: Callable[[], bool], *,
                    wait: float = ANSWER_SECONDS) -> RunNowOutcome:
    """Ask `holder`, the process that fires the schedules (serve), to run `flow` now (`t`)."""
    from flows_tui.record.store.requests import RUN_NOW

    if not holder_alive():
        return RunNowOutcome(False, True, f"{flow} not run by {holder}: its process is gone")
    request = store.ask(flow, RUN_NOW, asked_by())
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        answer = store.answer_of(request)
        if answer is not None:
            return RunNowOutcome(answer.startswith("started"), False, f"{flow}: {answer}")
        if not holder_alive():
            store.answer(request, "its process is gone")
            return RunNowOutcome(False, True, f"{flow} not run by {holder}: its process ended meanwhile")
        time.sleep(0.05)
    return RunNowOutcome(False, False, f"{flow}: no answer from {holder} within {wait:g}s (the request stays; "
                                       "it acts on it when it can)")


class CancelRequests:
    """The owning side: a thread that reads the requests for this process's runs and acts on them."""

    def __init__(self, store: "Store", *, interval: float = POLL_SECONDS) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flows-tui-requests", daemon=True)

    def start(self) -> "CancelRequests":
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.handle()
            except Exception:  # a busy store: the next round tries again
                logger.debug("reading requests failed", exc_info=True)

    def handle(self) -> int:
        """Act on the requests waiting now; how many there were."""
        waiting = self.store.requests_for_me()
        for request in waiting:
            engine = engine_in_flight(request.run_id)
            if engine is None:
                self.store.answer(request.id, "not running here any more")
                continue
            # As `c` in a UI does: the cancel goes on its own thread, this one goes on reading.
            threading.Thread(target=engine.cancel, args=(f"cancelled from {request.asked_by}",),
                             name="flows-tui-cancel", daemon=True).start()
            self.store.answer(request.id, "cancelling")
        return len(waiting)
