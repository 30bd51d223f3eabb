"""A run's report topic, subscribed by the scheduler itself as the run's first task arrives.

A run's workers report on a topic of its own (`flows-tui-<run id>`), worker deaths come on
Dask's "all" topic and what they were running on `scheduler_deaths.TOPIC`: the run's client
must be subscribed to them before its first task can report. A subscription is a message on the client's stream to the scheduler, which sends
a batch at most every 10 ms: sent a moment before the run's first task, it went out alone
and the task waited for the rest of those 10 ms (a small flow's result came ~7 ms later than
raw Dask's). So the scheduler subscribes the client that sends a run's first task to them
as the task arrives, before it looks at the task: its handler of submitted graphs is wrapped,
once per scheduler (not a scheduler plugin: Dask calls every plugin at every transition of
every task, ~12 us a task for a plugin that only wants the graphs). The run sends no message
of its own. Until the wrapper is known to be on the client's scheduler (installed without
waiting, at a client's first run, and again on a scheduler restarted since), runs subscribe
themselves.

The wrapper travels by value (a nested function): an attached `dask scheduler` needs no
flows-tui installed.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

logger = logging.getLogger("flows_tui.engine")


# client → the id of the scheduler whose handler of graphs was wrapped
_installed: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()
_installing: "weakref.WeakSet[Any]" = weakref.WeakSet()


def subscribed_by_scheduler(client: Any) -> bool:
    """Whether the client's scheduler subscribes it to a run's topics with the run's first task."""
    scheduler_id = _scheduler_id(client)
    return scheduler_id is not None and _installed.get(client) == scheduler_id


def install(client: Any) -> None:
    """Wrap the client's scheduler's handler of graphs unless it is known to be; does not wait."""
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
        await client._run_on_scheduler(_graph_handler_wrapper())
        _installed[client] = scheduler_id
    except Exception:  # an old or closing scheduler: runs go on subscribing themselves
        logger.debug("could not wrap the scheduler's handler of graphs", exc_info=True)
    finally:
        _installing.discard(client)


def _scheduler_id(client: Any) -> str | None:
    """The id of the scheduler the client is connected to (Dask refreshes it when it reconnects)."""
    identity = getattr(client, "_scheduler_identity", None)
    return identity.get("id") if isinstance(identity, dict) else None


def _graph_handler_wrapper() -> Any:
    """The function that wraps the scheduler's handler of submitted graphs (nested: it is pickled by value)."""

    def wrap_update_graph(dask_scheduler: Any) -> None:
        handlers = dask_scheduler.stream_handlers
        original = handlers["update-graph"]
        if getattr(original, "flows_tui", False):
            return
        hexdigits = frozenset("0123456789abcdef")

        async def update_graph(**message: Any) -> Any:
            """A graph whose keys are a flows-tui run's (`<task>-<run id>-<n>`, the run id 12 hex
            digits) subscribes its client to the run's topic, to "all" and to what dead workers
            were running (`scheduler_deaths.TOPIC`), before Dask looks at the graph."""
            client = message.get("client")
            for key in message.get("keys") or ():  # one graph is one run's: its first key says which
                if client is not None and type(key) is str:
                    head, _, number = key.rpartition("-")
                    run_id = head.rpartition("-")[2]
                    if number.isdigit() and len(run_id) == 12 and hexdigits.issuperset(run_id):
                        for topic in (f"flows-tui-{run_id}", "all", "flows-tui-running-at-removal"):
                            dask_scheduler.subscribe_topic(topic, client)
                break
            return await original(**message)

        update_graph.flows_tui = True  # type: ignore[attr-defined]
        handlers["update-graph"] = update_graph

    return wrap_update_graph
