"""Results held in cluster memory between runs, so a re-run executes only what changed.

A `Session` lives as long as one connection to a cluster (the TUI's, or `run --watch`'s).
Every run given the session leaves in it the Dask futures of its completed task runs,
keyed by their *lineage*: a hash of the task's name and code (TASK_SOURCE, helpers
included), of its literal arguments and of the lineages of its upstream task runs (the
futures it is given, and the values the flow body received from task runs and passes
on). A run that reuses the session looks each task call up before submitting it: a hit
hands the held future to the calls downstream (no new Dask task, no data through the
client) and the task run is recorded as Cached; a miss runs as usual.

Lineages are computed on the client at submit time, without waiting for any upstream:
they say "the same code applied to the same inputs", which is all a re-run needs. No
cache policy is involved and nothing is written to disk; the persistent cache
(`flows_tui.cache`) is what survives the process.

What is never reused: a task with `cache_policy=NO_CACHE` or `refresh_cache=True` (the
user said its result must be computed each time), a task whose code or literal inputs
cannot be hashed deterministically, and any task downstream of a task run that was not
itself reused in this run (new data upstream, or a task that always runs, means new
data here). Like any memoisation it assumes a task's result depends on its code and
inputs only: a task that reads a file no task wrote, or the clock, should say NO_CACHE.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from flows_tui.cache import UnhashableInput, stable_token
from flows_tui.cache_policies import NoCache
from flows_tui.user_code.task_source import task_source


class NotReusable(Exception):
    """Why a task call has no lineage; the engine tells the user once per task and runs it."""


def lineage_key(task: Any, args_template: Any, kwargs_template: Any, upstream: list[str],
                map_index: int | None) -> str | None:
    """The lineage of one task call; None when the task opts out, NotReusable when it has none.

    `args_template`/`kwargs_template` are the call's arguments with each upstream future
    replaced by a `Ref` (an index into `upstream`), so hashing them with the ordered
    upstream lineages pins down every input. `task_source` is memoised per Task object.
    """
    if isinstance(task.__dict__.get("_user_cache_policy", task.cache_policy), NoCache) or task.refresh_cache:
        return None
    try:
        source = task_source(task)
    except Exception as error:  # code the walk cannot read: run it, as the cache does
        raise NotReusable(f"its source could not be read ({type(error).__name__}: {error})") from None
    try:
        inputs = stable_token((args_template, kwargs_template))
    except UnhashableInput as error:
        raise NotReusable(str(error).splitlines()[0]) from None
    return hashlib.sha256(repr((task.name, source, tuple(upstream), inputs, map_index)).encode()).hexdigest()


@dataclass(frozen=True)
class Held:
    """One completed task run's result, held on the cluster: the future of its envelope."""

    future: Any  # distributed.Future of a successful `worker.Outcome`
    run_id: str  # the flow run that computed it


@dataclass(frozen=True)
class HeldCall:
    """One task run of a flow's last run as it was submitted, so its inputs can be looked at later."""

    future: Any  # its envelope's future (a held one for a task run reused from an earlier run)
    call: tuple | None  # (task, args template, kwargs template, upstream futures, allowed); None when reused
    reused_from: str | None = None


class Session:
    """Completed task runs' results, by lineage, for the last run of each flow on one client.

    Holding a future keeps its data in the workers' memory; only the results of each
    flow's last run are kept, so memory stays bounded by one run per flow. Dropping the
    references lets Dask release the older ones.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._by_flow: dict[str, dict[str, Held]] = {}
        self._last_run: dict[str, str] = {}
        self._calls: dict[str, dict[str, HeldCall]] = {}  # flow → its last run's task runs, by id

    def find(self, flow: str, lineage: str) -> Held | None:
        """The held result of `lineage`, if its data is still on the cluster."""
        with self._lock:
            held = self._by_flow.get(flow, {}).get(lineage)
        # A result lost with its worker, or released, is not reused: the task runs again.
        if held is None or held.future.status != "finished":
            return None
        return held

    def keep(self, flow: str, run_id: str, results: dict[str, Held], calls: dict[str, HeldCall] | None = None) -> None:
        """What `run_id` of `flow` completed or reused replaces what the flow's earlier run left.

        `calls`: every task run of the run, so the UI can show what each was given and returned
        (the data stays on the cluster; only short descriptions travel when asked for).
        """
        with self._lock:
            self._by_flow[flow] = dict(results)
            self._last_run[flow] = run_id
            self._calls[flow] = dict(calls or {})

    def call_of(self, run_id: str, task_run_id: str) -> HeldCall | None:
        """How task run `task_run_id` of `run_id` was submitted, while `run_id` is its flow's last run here."""
        with self._lock:
            flow = next((flow for flow, last in self._last_run.items() if last == run_id), None)
            return None if flow is None else self._calls.get(flow, {}).get(task_run_id)

    def holds(self, run_id: str) -> bool:
        """Whether `run_id` is the last run of its flow in this session (its results are held)."""
        with self._lock:
            return run_id in self._last_run.values()
