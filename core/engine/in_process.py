"""Task calls handed by reference to Dask workers that live in this same process.

On a LocalCluster of threads (`processes = false`) the workers share this process, yet Dask
pickles every task on its way to them, so a task would run on a copy of what the flow
gave it: a list it appends to, a mock a hook calls, a closure's variables. Prefect's
thread pool shares them; so does this. Objects registered here travel as a token, and the
task's wrapper, in a worker thread of this process, turns the token back into the object
itself. Worker processes and remote workers never see a token: they get copies, as Dask
sends them.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

_objects: dict[str, dict[int, Any]] = {}  # run id → token → object
_lock = threading.Lock()
_tokens = itertools.count()


class _ByReference:
    """A token for an object of this process; `resolve` in the worker's thread gives the object back."""

    __slots__ = ("run_id", "token")

    def __init__(self, run_id: str, token: int) -> None:
        self.run_id = run_id
        self.token = token

    def __reduce__(self) -> Any:
        return (_ByReference, (self.run_id, self.token))


def resolve(value: Any) -> Any:
    """The object a token stands for (a value that is no token is itself)."""
    if type(value) is not _ByReference:
        return value
    with _lock:
        return _objects[value.run_id][value.token]


def is_reference(value: Any) -> bool:
    return type(value) is _ByReference


def by_reference(run_id: str, value: Any) -> Any:
    """`value`, to travel by reference to workers of this process until `release(run_id)`."""
    token = next(_tokens)
    with _lock:
        _objects.setdefault(run_id, {})[token] = value
    return _ByReference(run_id, token)


def release(run_id: str) -> None:
    """The run ended: let go of what it handed to workers."""
    with _lock:
        _objects.pop(run_id, None)


# Values crossing a comm between Dask's client and workers that all live in this process
# (a task run's result on its way to the flow or to another worker): token → the value, from the
# sender's serializer until the receiver's deserializer takes it.
_in_transit: dict[int, Any] = {}


def send_along(value: Any) -> int:
    """A token standing in for `value` on a comm inside this process; `receive(token)` takes it back."""
    token = next(_tokens)
    with _lock:
        _in_transit[token] = value
    return token


def receive(token: int) -> Any:
    with _lock:
        return _in_transit.pop(token)


def workers_in_this_process(client: Any) -> bool:
    """Whether every worker of `client`'s cluster runs in this process (a LocalCluster of threads)."""
    try:
        from distributed import Worker

        here = {worker.address for worker in list(Worker._instances)}
        if not here:  # no worker lives here (a cluster of processes, a remote one): no need to ask
            return False
        workers = set(client.scheduler_info(n_workers=-1).get("workers", {}))
    except Exception:
        return False
    return bool(workers) and workers <= here
