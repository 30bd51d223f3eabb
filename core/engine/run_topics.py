"""A run's report topic, subscribed by the scheduler itself as the run's first task arrives.

A run's workers report on a topic of its own (`flows-tui-<run id>`), worker deaths come on
Dask's "all" topic and what they were running on `scheduler_deaths.TOPIC`: the run's client
must be subscribed to them before its first task can report. A subscription is a message on the client's stream to the scheduler, which sends
a batch at most every 10 ms: sent a moment before the run's first task, it went out alone
and the task waited for the rest of those 10 ms (a small flow's result came ~7 ms later than
raw Dask's). So a scheduler plugin, installed once per scheduler, subscribes the client that
sends a run's first task to them as the task arrives (Dask calls plugins'
`update_graph` before it sends any task to a worker): the run sends no message of its own.
Until the plugin is known to be on the client's scheduler (installed without waiting, at a
client's first run, and again on a scheduler restarted since), runs subscribe themselves.

The plugin travels by value (a nested function): an attached `dask scheduler` needs no
flows-tui installed.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

logger = logging.getLogger("flows_tui.engine")

PLUGIN = "flows-tui-subscribe-runs"

# client → the id of the scheduler the plugin was installed on
_installed: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()
_installing: "weakref.WeakSet[Any]" = weakref.WeakSet()


def subscribed_by_scheduler(client: Any) -> bool:
    """Whether the client's scheduler subscribes it to a run's topics with the run's first task."""
    scheduler_id = _scheduler_id(client)
    return scheduler_id is not None and _installed.get(client) == scheduler_id


def install(client: Any) -> None:
    """Install the plugin on the client's scheduler unless it is known there; does not wait."""
    scheduler_id = _scheduler_id(client)
    if scheduler_id is None or _installed.get(client) == scheduler_id or client in _installing:
        return
    _installing.add(client)
    try:
        client.loop.add_callback(_install, client, scheduler_id)
    except Exception:  # the client is closing
        _installing.discard(client)


async def _install(client: Any, scheduler_id: str) -> None:
    try:
        await client._run_on_scheduler(_plugin_installer())
        _installed[client] = scheduler_id
    except Exception:  # an old or closing scheduler: runs go on subscribing themselves
        logger.debug("could not install %s on the scheduler", PLUGIN, exc_info=True)
    finally:
        _installing.discard(client)


def _scheduler_id(client: Any) -> str | None:
    """The id of the scheduler the client is connected to (Dask refreshes it when it reconnects)."""
    identity = getattr(client, "_scheduler_identity", None)
    return identity.get("id") if isinstance(identity, dict) else None


def _plugin_installer() -> Any:
    """The function that adds the plugin on the scheduler (nested: it is pickled by value)."""

    def add_plugin(dask_scheduler: Any) -> None:
        from distributed.diagnostics.plugin import SchedulerPlugin

        name = "flows-tui-subscribe-runs"
        if name in dask_scheduler.plugins:
            return
        hexdigits = frozenset("0123456789abcdef")

        class SubscribeRuns(SchedulerPlugin):
            """A graph whose keys are a flows-tui run's (`<task>-<run id>-<n>`, the run id 12
            hex digits) subscribes its client to the run's topic, to "all" and to what dead
            workers were running (`scheduler_deaths.TOPIC`)."""

            def update_graph(self, scheduler: Any, *, client: str | None = None, keys: Any = (),
                             **kwargs: Any) -> None:
                if client is None:
                    return
                for key in keys:  # one graph is one run's: its first key says which
                    if type(key) is str:
                        head, _, number = key.rpartition("-")
                        run_id = head.rpartition("-")[2]
                        if number.isdigit() and len(run_id) == 12 and hexdigits.issuperset(run_id):
                            for topic in (f"flows-tui-{run_id}", "all", "flows-tui-running-at-removal"):
                                scheduler.subscribe_topic(topic, client)
                    return

        dask_scheduler.add_plugin(SubscribeRuns(), name=name)

    return add_plugin
