"""Clusters of the flows that choose their own, besides the launcher's: `[flows.X] cluster = "NAME"`
or the flow's `task_runner=DaskTaskRunner(...)`.

Each is started when a run needs it. A profile with `reuse = true` stays up between runs
(the UI, serve, `run --watch`) and is closed after `idle_timeout` without runs; any other is
closed when its last run ends, as prefect-dask closes the cluster a task runner started.
`close()` closes them all, whatever they are doing: nothing flows-tui started outlives it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from flows_tui.engine.cluster import Cluster, ClusterChoice, connect

log = logging.getLogger(__name__)

# A reused profile without an idle_timeout is closed after this long without runs.
DEFAULT_IDLE_SECONDS = 600.0


class FlowClusters:
    def __init__(self, start: Callable[[Callable[[], Cluster], ClusterChoice], Cluster]) -> None:
        self._start = start  # the launcher's: interruptible, and closes what comes up after close()
        self._lock = threading.Lock()
        self._starting: dict[str, threading.Lock] = {}
        self._clusters: dict[str, Cluster] = {}
        self._users: dict[str, int] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._closed = False

    def in_use(self) -> list[Cluster]:
        with self._lock:
            return list(self._clusters.values())

    def acquire(self, choice: ClusterChoice) -> Cluster:
        """The cluster of `choice`, started (ClusterError if it cannot be) or the one up already."""
        key = repr(choice)
        with self._lock:
            starting = self._starting.setdefault(key, threading.Lock())
        with starting:  # two runs of one profile at once start it once
            with self._lock:
                timer = self._timers.pop(key, None)
                if timer is not None:
                    timer.cancel()
                cluster = self._clusters.get(key)
                if cluster is not None and not cluster.lost:
                    self._users[key] = self._users.get(key, 0) + 1
                    return cluster
            if cluster is not None:  # an attached scheduler that went away: connect afresh
                self._drop(key)
            cluster = self._start(lambda: connect(choice), choice)
            with self._lock:
                if self._closed:
                    _close_quietly(cluster)
                    raise RuntimeError("closed")
                self._clusters[key] = cluster
                self._users[key] = self._users.get(key, 0) + 1
            return cluster

    def release(self, cluster: Cluster) -> None:
        """A run on `cluster` ended: close it, or with `reuse`, after it stays idle for idle_timeout."""
        key = repr(cluster.choice)
        with self._lock:
            users = self._users.get(key, 0) - 1
            self._users[key] = max(0, users)
            if users > 0 or self._clusters.get(key) is not cluster:
                return
            if cluster.choice.reuse and not self._closed:
                idle = cluster.choice.idle_timeout or DEFAULT_IDLE_SECONDS
                timer = threading.Timer(idle, self._close_idle, args=(key, cluster))
                timer.daemon = True
                timer.name = "flows-tui-idle-cluster"
                self._timers[key] = timer
                timer.start()
                return
            self._clusters.pop(key, None)
        _close_quietly(cluster)

    def _close_idle(self, key: str, cluster: Cluster) -> None:
        with self._lock:
            if self._users.get(key, 0) or self._clusters.get(key) is not cluster:
                return
            self._clusters.pop(key, None)
            self._timers.pop(key, None)
        log.info("closing the cluster of profile %s after %ss without runs", cluster.choice.profile,
                 cluster.choice.idle_timeout or DEFAULT_IDLE_SECONDS)
        _close_quietly(cluster)

    def _drop(self, key: str) -> None:
        with self._lock:
            cluster = self._clusters.pop(key, None)
        if cluster is not None:
            _close_quietly(cluster)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clusters = list(self._clusters.values())
            self._clusters.clear()
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
        for cluster in clusters:
            _close_quietly(cluster)


def _close_quietly(cluster: Any) -> None:
    try:
        cluster.close()
    except Exception:  # a cluster half gone may not close cleanly; it is dropped either way
        pass
