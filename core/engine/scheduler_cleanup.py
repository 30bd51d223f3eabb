"""What a run leaves on the Dask scheduler, dropped after it: its topic, and Dask's spans of runs long done.

The scheduler keeps a topic, with its last 1,000 events, until it stops: run after run of
`serve` (2.4 MB of log messages after 20 runs) unless it goes with its run.

Dask also files every batch of tasks submitted without a span of its own under a "default"
span, a new one once the last has finished, and keeps every span for as long as the
scheduler lives (`SpansSchedulerExtension`: the span, its task groups, their counters and
the workers' performance figures for them): one span a run in a long `serve`, or in the UI.
Default spans done for a while, whose task groups the scheduler has forgotten, are dropped
here, and so are forgotten task groups a default span still collects (one span goes on
collecting run after run while each run starts before the last one's tasks are forgotten). A worker's heartbeat can still carry figures for a span that ended since the last
one, and Dask's heartbeat handler fails on a span it does not know (the worker is then
removed): a span goes once done for `SPAN_KEPT_SECONDS` (many heartbeats), and figures for
a span gone are dropped before Dask's handler sees them. Spans the user opened
(`distributed.span`) are theirs and stay.

And Dask memoizes `key_split` for its last 100,000 task keys (`functools.lru_cache`, kept for as
long as the process lives, ~250 bytes a key): every task run's key is new, so a long `serve` or UI
filled it run after run (~25 MB on the scheduler). It is emptied when it holds more than
`KEYS_KEPT`: only the keys' prefixes are computed again.

All are done by a handler installed on the scheduler once per client (each
`run_on_scheduler` call is an event the scheduler keeps, with the function pickled in it,
and sends to every subscriber of its "all" topic). Functions sent to the scheduler travel
by value (nested functions): an attached `dask scheduler` needs no flows-tui installed.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

logger = logging.getLogger("flows_tui.engine")

HANDLER = "flows_tui_forget_topic"
# How long a default span stays after its last task finished (workers' heartbeats come every 0.5-5 s).
SPAN_KEPT_SECONDS = 30.0
# Task keys Dask's `key_split` memo may hold on the scheduler before it is emptied (its own bound is 100,000).
KEYS_KEPT = 10_000

_installed: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def _scheduler_side(kept_seconds: float, keys_kept: int = KEYS_KEPT) -> tuple[Any, Any]:
    """The functions that run on the scheduler: (install the handler, drop one topic without it)."""

    def drop_old_spans(dask_scheduler: Any) -> None:
        import time

        spans = getattr(dask_scheduler, "extensions", {}).get("spans")
        if spans is None or not hasattr(spans, "root_spans"):
            return
        live = dask_scheduler.task_groups
        now = time.time()
        # A default span goes on collecting the task groups of run after run while each run starts
        # before the last one's tasks are forgotten: it let go of none of them.
        for span in list(spans.spans.values()):
            if span.name == ("default",):
                span.groups = {group for group in span.groups
                               if live.get(group.name) is group or now - group.stop < kept_seconds}
        for span in list(spans.root_spans):
            if span.name != ("default",) or span.children or not span.done:
                continue
            groups = span.groups
            if any(live.get(group.name) is group for group in groups):
                continue  # Dask still knows its tasks
            if groups and now - max(group.stop for group in groups) < kept_seconds:
                continue
            spans.root_spans.remove(span)
            spans.spans.pop(span.id, None)
            for index in (spans.spans_search_by_name[span.name], spans.spans_search_by_tag["default"]):
                if span in index:
                    index.remove(span)

    def forget(dask_scheduler: Any, topic: str) -> None:
        dask_scheduler._broker._topics.pop(topic, None)
        try:
            tolerate_dropped_spans(dask_scheduler)
            drop_old_spans(dask_scheduler)
        except Exception:  # noqa: BLE001 - a Dask whose spans look otherwise keeps them, as before
            pass
        try:
            from dask.utils import key_split

            if key_split.cache_info().currsize > keys_kept:
                key_split.cache_clear()
        except Exception:  # noqa: BLE001 - a Dask without the memo: nothing kept
            pass

    def tolerate_dropped_spans(dask_scheduler: Any) -> None:
        """Workers' figures for a span dropped since are dropped too (Dask's handler would fail)."""
        spans = getattr(dask_scheduler, "extensions", {}).get("spans")
        heartbeat = getattr(spans, "heartbeat", None)
        if heartbeat is None or getattr(heartbeat, "flows_tui", False):
            return

        def tolerant(ws: Any, data: dict) -> None:
            known = spans.spans
            heartbeat(ws, {key: value for key, value in data.items()
                           if not isinstance(key, tuple) or len(key) < 2 or key[1] in known})

        tolerant.flows_tui = True
        spans.heartbeat = tolerant

    def install(dask_scheduler: Any) -> None:
        tolerate_dropped_spans(dask_scheduler)
        dask_scheduler.handlers[HANDLER] = lambda topic=None, **_: forget(dask_scheduler, topic)

    return install, forget


def forget_run(client: Any, topic: str) -> None:
    """Drop the run's `topic`, and the events it kept, and the spans of runs long done, from the
    client's scheduler.

    Sent from the client's IO loop without waiting for the answer: two round trips to the
    scheduler (one to look at its workers, one for this) were most of a small run's own cost.
    """
    client.loop.add_callback(_forget, client, topic)


async def _forget(client: Any, topic: str) -> None:
    install, forget = _scheduler_side(SPAN_KEPT_SECONDS, KEYS_KEPT)
    try:
        address = client.scheduler.address
        if _installed.get(client) != address:
            await client._run_on_scheduler(install)
            _installed[client] = address
        try:
            await client.scheduler.flows_tui_forget_topic(topic=topic)
        except Exception:  # a scheduler restarted at the same address, without the handler
            _installed.pop(client, None)
            await client._run_on_scheduler(forget, topic=topic)
    except Exception:  # the client is closing, or the scheduler is gone with the topic
        logger.debug("could not drop topic %s from the scheduler", topic, exc_info=True)
