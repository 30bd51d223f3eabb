"""Results the flow body collects, fetched from the cluster in batches, as `client.gather` does.

A result fetched on its own costs two trips through the client's IO loop and one to the
scheduler; a body that collects a map's results one `.result()` at a time paid that per
element (2.0x raw Dask's `client.gather` at 10,000 tasks). Here the first `.result()` on an
element of a map also gathers the map's other finished results in the same request, so a
loop over the map finds most of its values already here; `TaskFutureList.result()` gathers
the whole list at once, and `as_completed` the futures it yields.

Values fetched ahead that the body has not asked for yet are held within a byte budget
(the sizes the workers give Dask), and let go of when the body takes them or the run ends:
a map of large results is still fetched one element at a time, as the body asks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Iterable

from .outcome import Outcome

if TYPE_CHECKING:
    from .task_runs import _Tracking

logger = logging.getLogger("flows_tui.engine")

# Values fetched ahead of the body's asking, at most this many bytes at a time (as Dask sizes them).
PREFETCH_BYTES = 32 * 2**20
# How far past the element asked for a `.result()` looks for finished siblings to fetch with it.
PREFETCH_WINDOW = 2000
# ... stopping after this many unfinished ones in a row.
PREFETCH_MISSES = 64


class Results:
    """The engine's part that fetches results for the body (a mixin of FlowRunEngine)."""

    def _init_results(self) -> None:
        self._fetched: dict[str, tuple[Outcome, int]] = {}  # task run id → (outcome, bytes), fetched ahead
        self._fetched_bytes = 0

    def _wait_on_cluster(self, futures: list, timeout: float) -> None:
        """Dask's `wait` on this run's client: on its own it waits through the process's default
        client, which may be another one, or none ("No clients found"). Not through
        `client.as_current()`: that sets Dask's config, which is global, to the distributed
        scheduler while the body waits, and a task computing a Dask collection on a thread
        worker of this process then finds no client ("Requested dask.distributed scheduler
        but no Client active")."""
        from distributed.client import _wait

        self.client.sync(_wait, futures, timeout=timeout)

    def _wait_and_fetch(self, future: Any, timeout: float) -> Any:
        """`future`'s result, waiting at most `timeout` s for it to end (TimeoutError), in one trip
        through the client's IO loop, as Dask's own `result()`: the timeout bounds the wait, never
        the transfer. A wait and a fetch of their own cost a trip more than raw Dask per result."""
        from distributed.client import _wait

        async def wait_then_fetch() -> Any:
            await _wait([future], timeout=timeout)
            return await future._result()

        return self.client.sync(wait_then_fetch)

    def _take_fetched(self, task_run_id: str) -> Outcome | None:
        entry = self._fetched.pop(task_run_id, None)
        if entry is None:
            return None
        self._fetched_bytes -= entry[1]
        return entry[0]

    def _drop_fetched(self) -> None:
        """The run ended: nothing fetched ahead is wanted any more."""
        self._fetched.clear()
        self._fetched_bytes = 0

    def _siblings_to_fetch(self, track: "_Tracking") -> list["_Tracking"]:
        """The finished, not yet fetched elements of `track`'s map after it (within the window)."""
        siblings = track.siblings
        if siblings is None:
            return []
        tracking, fetched = self._tracking, self._fetched
        found, misses = [], 0
        for task_run_id in siblings[track.position + 1:track.position + 1 + PREFETCH_WINDOW]:
            sibling = tracking[task_run_id]
            future = sibling.future
            if future is not None and future.status == "finished" and task_run_id not in fetched:
                found.append(sibling)
                misses = 0
            else:
                # A map's elements end roughly in order: past a stretch of unfinished ones the rest
                # are unfinished too, and a body waiting on each element must not scan them all.
                misses += 1
                if misses > PREFETCH_MISSES:
                    break
        return found

    def _fetch_with(self, track: "_Tracking", others: list["_Tracking"]) -> Outcome:
        """Fetch `track`'s finished result, and with it those of `others` that fit the budget.

        Raises what `future.result()` raises when `track`'s own result cannot be had.
        """
        chosen = self._within_budget(others) if others else []
        if not chosen:
            return track.future.result()
        try:
            values = self.client.gather([track.future] + [other.future for other, _ in chosen])
        except Exception:  # one of them was lost on the way: take this one alone
            logger.debug("gathering %d results failed; fetching one", len(chosen) + 1, exc_info=True)
            return track.future.result()
        for (other, size), value in zip(chosen, values[1:]):
            self._hold(other, value, size)
        return values[0]

    def _within_budget(self, tracks: list["_Tracking"]) -> list[tuple["_Tracking", int]]:
        """Those of `tracks` whose results fit what may be held ahead, with their sizes (from the scheduler)."""
        try:
            sizes = self.client.nbytes([track.key for track in tracks], summary=False)
        except Exception:  # no sizes, no fetching ahead
            return []
        chosen = []
        room = PREFETCH_BYTES - self._fetched_bytes
        for track in tracks:
            size = sizes.get(track.key)
            if size is None or size > room:
                continue
            room -= size
            chosen.append((track, size))
        return chosen

    def _hold(self, track: "_Tracking", value: Any, size: int) -> None:
        task_run_id = self._task_run_of_key(track.key)
        if type(value) is Outcome and task_run_id not in self._fetched:
            self._fetched[task_run_id] = (value, size)
            self._fetched_bytes += size

    def _outcomes_of(self, task_run_ids: list[str], deadline: float | None) -> None:
        """Wait for these task runs' results (until `deadline`) and fetch the finished ones in one
        request: the body asked for all of them (`TaskFutureList.result()`). Results Dask cannot
        give are left to the per-element path, which knows what to make of a crash or a cancel."""
        tracks = [self._tracking[task_run_id] for task_run_id in task_run_ids if task_run_id not in self._fetched]
        futures = [track.future for track in tracks if track.future is not None]
        # One future waited for at a time, the first still pending: Dask's `wait` on all of them
        # with a short timeout, again and again, set up and tore down a waiter per future each
        # time, on the client's IO loop, which then fell seconds behind the workers' reports.
        index = 0
        while index < len(futures):
            if futures[index].status != "pending":
                index += 1
                continue
            self._check_abort()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            try:
                self._wait_on_cluster([futures[index]], 0.2 if remaining is None else min(0.2, remaining))
            except (TimeoutError, asyncio.TimeoutError):
                continue
            except Exception:  # cancelled or lost: the per-element path says which
                index += 1
        ready = [track for track in tracks if track.future is not None and track.future.status == "finished"]
        if len(ready) < 2:
            return
        try:
            values = self.client.gather([track.future for track in ready])
        except Exception:
            logger.debug("gathering %d results failed", len(ready), exc_info=True)
            return
        for track, value in zip(ready, values):
            self._hold(track, value, 0)  # asked for: outside the budget of values fetched ahead

    def results(self, task_run_ids: list[str], timeout: float | None = None,
                raise_on_failure: bool = True) -> list[Any]:
        """`TaskFutureList.result()`: every result, fetched together; the first failure raises, in order.

        `timeout` bounds the whole list, as in Prefect.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self._outcomes_of(task_run_ids, deadline)
        values = []
        for task_run_id in task_run_ids:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            values.append(self.result_of(task_run_id, timeout=remaining, raise_on_failure=raise_on_failure))
        return values

    def wait_for_ended(self, cursor: int, timeout: float) -> None:
        """Until more than `cursor` task runs of this run have ended, or `timeout` s pass."""
        with self._lock:
            self._changed.wait_for(lambda: len(self._ended) > cursor, timeout)

    def ended_since(self, cursor: int) -> tuple[int, list[str]]:
        """The task runs that ended after the first `cursor` endings of the run, and the new cursor."""
        with self._lock:
            ended = self._ended[cursor:]
        return cursor + len(ended), ended

    def prefetch(self, task_run_ids: Iterable[str]) -> None:
        """Fetch these ended task runs' results ahead, within the budget (`as_completed` yields them)."""
        tracks = [self._tracking[task_run_id] for task_run_id in task_run_ids if task_run_id not in self._fetched]
        tracks = [track for track in tracks if track.future is not None and track.future.status == "finished"]
        if len(tracks) < 2:
            return
        chosen = self._within_budget(tracks)
        if not chosen:
            return
        try:
            values = self.client.gather([track.future for track, _ in chosen])
        except Exception:
            logger.debug("gathering %d results failed", len(chosen), exc_info=True)
            return
        for (track, size), value in zip(chosen, values):
            self._hold(track, value, size)
