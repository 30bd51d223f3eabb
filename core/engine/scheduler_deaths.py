"""The scheduler says which tasks a worker without a nanny was running when it died: a Dask SchedulerPlugin.

A worker process writes each attempt's start in a file of its own (`attempt_ledger`) before
the start's report leaves it; a process that dies at a task's first instruction takes the
report with it. The engine reads that file when the worker is on its machine, and a worker's
nanny sends it on from another machine (`nanny_ledger`). A worker started without a nanny
(`dask worker --no-nanny`) on another machine leaves no one to do either: what is left is
what the scheduler knew of it, the tasks that were processing on it when it was removed.

Processing is not executing: Dask's scheduler gives a worker more tasks than it has threads
(queued behind busy threads, or waiting for an input to arrive from another worker). So this
plugin sends, for each unexpected removal of a worker without a nanny, the tasks of it that
could have been running: not seceded (a seceded task's start was reported long before), with
every input on the worker (a task still fetching one never began), in the order Dask's
worker takes ready tasks (priority); and the worker's threads. The engine then counts as
executions those of its own task runs whose start it never received, when they fit in the
threads the worker's other ready tasks left free (`DaskWatch.on_running_at_removal`).

The removal's own `remove-worker` event is where the scheduler still holds the worker's
processing tasks: the plugin's `remove_worker` hook comes after Dask rescheduled them, and a
task Dask fails at that removal (KilledWorker) has left the worker's processing set even
before the event. So the plugin keeps each worker without a nanny (from `add_worker`), and
on the event (`log_event` on the "all" topic) reads the event's processing keys against it.
It adds no transition hook: nothing of it runs per task. A worker with a nanny is left to the
nanny (the two never count one execution twice).
"""

from __future__ import annotations

import logging
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

logger = logging.getLogger("flows_tui.engine")

PLUGIN_NAME = "flows-tui-running-at-removal"
TOPIC = "flows-tui-running-at-removal"  # the engines' subscription (dask_watch._WorkerDeaths)


class TellWhatDeadWorkersRan(SchedulerPlugin):
    idempotent = True
    name = PLUGIN_NAME

    def __init__(self) -> None:
        self._scheduler: Any = None
        self._workers: dict[str, Any] = {}  # address -> WorkerState, of the workers without a nanny

    def start(self, scheduler: Any) -> None:
        self._scheduler = scheduler
        self._workers = {address: ws for address, ws in scheduler.workers.items() if not ws.nanny}

    def add_worker(self, scheduler: Any, worker: str) -> None:
        ws = scheduler.workers.get(worker)
        if ws is not None and not ws.nanny:
            self._workers[worker] = ws

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        self._workers.pop(worker, None)

    def log_event(self, topic: str, msg: Any) -> None:
        if topic != "all" or type(msg) is not dict or msg.get("action") != "remove-worker" or msg.get("expected"):
            return
        ws = self._workers.get(msg.get("worker"))  # type: ignore[arg-type]
        keys = msg.get("processing-tasks")
        if ws is None or not keys or self._scheduler is None:
            return
        self._scheduler.log_event(TOPIC, running_at_removal(self._scheduler, ws, keys))


def running_at_removal(scheduler: Any, ws: Any, keys: Any) -> dict[str, Any]:
    """What of `keys` (the tasks processing on the removed worker `ws`) could have been running on it."""
    tasks = scheduler.tasks
    needs = ws.needs_what  # inputs some processing task of the worker was still fetching
    seceded = ws.long_running
    ready = []
    for key in keys:
        ts = tasks.get(key)
        if ts is None or ts in seceded or any(dts in needs for dts in ts.dependencies):
            continue
        ready.append(ts)
    try:
        ready.sort(key=lambda ts: ts.priority or ())
    except TypeError:  # priorities Dask cannot compare either: the order stays the event's
        pass
    return {
        "worker": ws.address,
        "name": ws.name if isinstance(ws.name, (str, int)) else None,
        "pid": ws.pid,  # whose ledger file it would be, were it on the engine's machine
        "threads": ws.nthreads,
        "ready": len(ready),
        # Only keys an engine can know as its own (flows-tui's keys are strings), in the order run.
        "keys": [ts.key for ts in ready if type(ts.key) is str],
        # Failed by Dask at this removal (KilledWorker): not run again.
        "failed": [ts.key for ts in ready if ts.state == "erred" and type(ts.key) is str],
    }


def tell_what_dead_workers_ran(client: Any) -> bool:
    """Register the plugin with `client`'s scheduler (once: a second registration is a no-op there)."""
    try:
        client.register_plugin(TellWhatDeadWorkersRan(), name=PLUGIN_NAME)
    except Exception:  # noqa: BLE001 - a courtesy (a scheduler without flows_tui cannot load it)
        logger.debug("could not register the scheduler plugin %s", PLUGIN_NAME, exc_info=True)
        return False
    return True
