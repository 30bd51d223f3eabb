"""What the public API calls in the layers above it, plugged in by flows_tui/__init__.py.

`Flow.__call__` runs a flow through `flows_tui.launch.runner`, `Flow.serve` serves through
`flows_tui.schedule.serve`, `Flow.from_source` loads through `flows_tui.project.flow_sources`,
a task called outside a flow runs through `flows_tui.engine.local_runs`, a task runner used
directly through `flows_tui.engine.runner_runs`, `get_dask_client(cluster=NAME)` starts a
profile's cluster through `flows_tui.launch.task_clusters`. Those modules sit above the public
API, which must not import them: the package's `__init__` sets these names when it is first
imported, which is before any module of it, so before any Flow or Task can exist.
"""

from __future__ import annotations

from typing import Any, Callable

run_from_python: Callable[..., Any]
serve_flow: Callable[..., None]
load_from_source: Callable[..., Any]
local_task_runs: Callable[[], Any]
runner_runs: Callable[[], Any]
named_cluster: Callable[[str], Any]
