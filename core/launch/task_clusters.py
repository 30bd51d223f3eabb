"""`with cluster("big") as client:` inside a task or a flow body: a profile's cluster for one Dask
computation, as Prefect 1's ResourceManager gave ("use the big cluster only for large inputs").

The profile is read from the project's flows.toml (FLOWS_TUI_CONFIG, which flows-tui sets
for the workers it starts, else the current directory's). Its cluster is started, or the one
this process keeps for a `reuse = true` profile is used; inside the `with`, collections
compute there through the client (`client.compute(x)`, `x.compute(scheduler=client)`; a bare
`.compute()` inside a task stays on the run's own cluster, as Dask's worker client decides);
on the way out it is closed, or with `reuse`, kept until `idle_timeout` without use. The
run's log says which cluster computed.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any, Iterator

from flows_tui.engine.cluster import choose_cluster
from flows_tui.launch.launcher import where

from .flow_clusters import FlowClusters

CONFIG_ENV = "FLOWS_TUI_CONFIG"

# The clusters this process started for `cluster(...)`, closed when it exits.
_clusters = FlowClusters(lambda start, choice: start())
atexit.register(_clusters.close)


@contextlib.contextmanager
def cluster(name: str) -> Iterator[Any]:
    """A client of profile `name`'s cluster ([clusters.NAME] in flows.toml) for the `with`."""
    from flows_tui.project.config import load_config
    from flows_tui.record.logs import get_run_logger

    path = os.environ.get(CONFIG_ENV)
    config = load_config(Path(path) if path else None, cwd=Path.cwd())
    choice = dataclasses.replace(choose_cluster(None, config, {}, profile=name), source=f"cluster({name!r})")
    held = _clusters.acquire(choice)
    try:
        logger = get_run_logger()
    except Exception:  # outside a run: nothing to say it to
        logger = None
    if logger is not None:
        dashboard = _dashboard(held)
        logger.info("computing on cluster %r: %s%s", name, where(held), f" ({dashboard})" if dashboard else "")
    try:
        with held.client.as_current():
            yield held.client
    finally:
        _clusters.release(held)


def _dashboard(held: Any) -> str | None:
    try:
        return held.client.dashboard_link
    except Exception:
        return None
