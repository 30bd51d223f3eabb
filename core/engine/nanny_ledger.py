"""A worker's nanny sends on the attempts its dead worker process had started: a Dask NannyPlugin.

A worker process writes each attempt's start in a file of its own (`attempt_ledger`) before
the start's report leaves it; a process that dies at a task's first instruction takes the
report with it. The engine reads that file itself only when the worker is on its machine.
The nanny is on the worker's machine and outlives the process: when the process ends, this
plugin reads the file and sends each start still there to its run's topic, marked with the
dead worker's address, before the nanny tells the scheduler the worker is gone. The engine
records each as an attempt that started and ended Crashed (`TaskReports._died_at_start`);
a start it read or received already is not recorded twice.

Dask calls a nanny plugin only at setup and teardown; the worker's exit is the nanny's
`_on_worker_exit`, wrapped here. A Dask without it leaves the plugin idle: the record is then
what the engine could read itself.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from distributed.diagnostics.plugin import NannyPlugin

from . import attempt_ledger

logger = logging.getLogger("flows_tui.engine")

PLUGIN_NAME = "flows-tui-attempt-ledger"
# How long the nanny waits for the scheduler to take the starts before it goes on restarting the worker.
SEND_TIMEOUT_SECONDS = 5.0


class SendOnDeadWorkersAttempts(NannyPlugin):
    idempotent = True

    def setup(self, nanny: Any) -> None:
        on_exit = getattr(nanny, "_on_worker_exit", None)
        if on_exit is None or getattr(on_exit, "flows_tui_ledger", False):
            return

        async def on_worker_exit(exitcode: Any) -> Any:
            address = getattr(nanny, "worker_address", None)  # the process that ended: not restarted yet
            # Not when the nanny itself is closing (the cluster shuts down): then the run is ending too.
            if address:
                sent = getattr(nanny.status, "name", None) != "running"
                if not sent:
                    try:
                        await asyncio.wait_for(send_open_starts(nanny, address), SEND_TIMEOUT_SECONDS)
                        sent = True
                    except Exception:  # noqa: BLE001 - the nanny's own work (restart the worker) must go on
                        logger.debug("could not send the attempts of the worker at %s", address, exc_info=True)
                if sent:  # the file has served: the next process has an address, and a file, of its own
                    attempt_ledger.remove(address)
            return await on_exit(exitcode)

        on_worker_exit.flows_tui_ledger = True  # type: ignore[attr-defined]
        nanny._on_worker_exit = on_worker_exit


async def send_open_starts(nanny: Any, address: str) -> int:
    """Send each start left in the ledger of the worker that was at `address` to its topic; how many."""
    sent = 0
    for topic, starts in attempt_ledger.every_open_start(address).items():
        marked = [{**start, "died": address} for start in starts]
        await nanny.scheduler.log_event(topic=topic, msg=marked)
        sent += len(marked)
    return sent


_registered: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def send_on_dead_workers_attempts(client: Any) -> None:
    """Register the plugin with `client`'s scheduler, which gives it to every nanny, now and later, and
    the scheduler's own plugin for workers without a nanny (`scheduler_deaths`); once per client."""
    from .scheduler_deaths import tell_what_dead_workers_ran

    try:
        address = client.scheduler.address
    except Exception:  # noqa: BLE001
        return
    if _registered.get(client) == address:
        return
    tell_what_dead_workers_ran(client)
    try:
        client.register_plugin(SendOnDeadWorkersAttempts(), name=PLUGIN_NAME)
    except Exception:  # noqa: BLE001 - a courtesy: without it, remote deaths at a first instruction go unrecorded
        logger.debug("could not register the nanny plugin %s", PLUGIN_NAME, exc_info=True)
        return
    _registered[client] = address
