"""serve's cluster, shared: on a small box, one set of worker processes for the whole project.

`flows-tui serve` with the embedded LocalCluster publishes its scheduler's address in the
state_dir (`cluster.json`: address, pid, host, when the process started), written atomically
and removed when serve stops. The UI and `flows-tui run` then use that cluster instead of
starting their own, unless they were given a cluster (`--address`, `--cluster`, a flow's own,
DASK_SCHEDULER_ADDRESS, `[cluster] address`) or `[cluster] shared = false`. A file whose process
is gone (serve killed -9) is ignored; one of another host too (its address is that host's).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flows_tui.record.store.owners import owner_alive, process_started

FILE_NAME = "cluster.json"


@dataclass(frozen=True)
class Published:
    """A serve's cluster as its file says it."""

    address: str
    pid: int
    host: str
    started: float | None
    dashboard: str | None = None


def _path(state_dir: Any) -> Path:
    return Path(state_dir) / FILE_NAME


def publish(state_dir: Any, address: str, dashboard: str | None = None) -> Path | None:
    """Write this process's cluster for the others; the file's path, or None if it cannot be written
    or another live serve published its own first (theirs stays)."""
    if published(state_dir) is not None:
        return None
    path = _path(state_dir)
    pid = os.getpid()
    document = {"address": address, "pid": pid, "host": socket.gethostname(), "started": process_started(pid),
                "dashboard": dashboard}
    partial = path.with_name(f".{FILE_NAME}.{pid}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(document), encoding="utf-8")
        os.replace(partial, path)  # a reader sees the whole file or none
    except OSError:
        try:
            partial.unlink()
        except OSError:
            pass
        return None
    return path


def withdraw(state_dir: Any) -> None:
    """Remove the file if it is still this process's."""
    current = read(state_dir)
    if current is not None and current.pid == os.getpid() and current.host == socket.gethostname():
        try:
            _path(state_dir).unlink()
        except OSError:
            pass


def read(state_dir: Any) -> Published | None:
    """The file as written, alive or not; None when absent or unreadable."""
    try:
        document = json.loads(_path(state_dir).read_text(encoding="utf-8"))
        return Published(str(document["address"]), int(document["pid"]), str(document["host"]),
                         document.get("started"), document.get("dashboard"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def published(state_dir: Any) -> Published | None:
    """A serve's cluster of this host whose process still runs; None otherwise (stale files ignored)."""
    found = read(state_dir)
    if found is None or found.host != socket.gethostname():
        return None
    if not owner_alive(found.host, found.pid, found.started):
        return None
    return found


def still_served(choice: Any) -> bool:
    """Whether the serve whose cluster `choice` attached to still runs."""
    return choice.serve_pid is None or owner_alive(socket.gethostname(), choice.serve_pid, choice.serve_started)


def may_share(choice: Any, config: Any) -> bool:
    """Whether serve's cluster may stand in for `choice`: only the default embedded LocalCluster
    (nothing chose a cluster), and only while `[cluster] shared` is not false."""
    if config is None:
        return False
    return choice.source == "default" and choice.address is None and choice.cluster_class is None \
        and getattr(getattr(config, "cluster", None), "shared", True)


def shared_choice(choice: Any, config: Any) -> Any:
    """serve's cluster in place of the default embedded one, when a serve of the project publishes
    one and `choice` may share it; else None."""
    if not may_share(choice, config):
        return None
    found = published(config.project.state_dir)
    if found is None:
        return None
    return replace(choice, address=found.address, source=f"serve's cluster (pid {found.pid})", tls=None,
                   serve_pid=found.pid, serve_started=found.started)
