"""Prefect's task runner names, accepted so a flow's `task_runner=` option ports unchanged.

flows-tui always runs tasks on Dask. A flow's `DaskTaskRunner(address=...)` or
`DaskTaskRunner(cluster_class=..., cluster_kwargs=..., adapt_kwargs=...)` says where, as in
prefect-dask (the class may be given as "module.Class"), unless `--address` or `--cluster`
is given; other runners are accepted and the cluster comes from the usual places.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

from . import plugged  # flows_tui.engine.runner_runs, above this module


class TaskRunner:
    """The options a task runner was given; `duplicate()` and `==` as Prefect's runners have."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def duplicate(self) -> "TaskRunner":
        return copy.copy(self)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.options == self.options  # type: ignore[attr-defined]

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({options})"

    # Used directly, as Prefect's runners are (`flows_tui.engine.runner_runs`) --------------------

    def __enter__(self) -> "TaskRunner":
        plugged.runner_runs().start(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        plugged.runner_runs().stop(self)

    def submit(self, task: Any, parameters: dict[str, Any], wait_for: Iterable[Any] | None = None,
               dependencies: Any = None) -> Any:
        """Run `task` with `parameters` (by name) as a task run of no flow; its future."""
        return plugged.runner_runs().submit(self, task, parameters, wait_for)



class ThreadPoolTaskRunner(TaskRunner):
    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers=max_workers)


class DaskTaskRunner(TaskRunner):
    def __init__(self, cluster: Any = None, address: str | None = None, cluster_class: Any = None,
                 cluster_kwargs: dict | None = None, adapt_kwargs: dict | None = None,
                 client_kwargs: dict | None = None, performance_report_path: str | None = None) -> None:
        super().__init__(cluster=cluster, address=address, cluster_class=cluster_class,
                         cluster_kwargs=cluster_kwargs, adapt_kwargs=adapt_kwargs, client_kwargs=client_kwargs,
                         performance_report_path=performance_report_path)
        # Read back as prefect-dask's runner shows them.
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.adapt_kwargs = adapt_kwargs
        self.client_kwargs = dict(client_kwargs or {})
        self.performance_report_path = performance_report_path


__all__ = ["DaskTaskRunner", "TaskRunner", "ThreadPoolTaskRunner"]
