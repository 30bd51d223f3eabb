"""Running a flow end to end: choose the cluster, connect, run, close.

Shared by `flows-tui run`, calling a flow function from plain Python, and later
`serve` and the TUI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import cloudpickle

from . import events as ev
from .cluster import Cluster, ClusterChoice, choose_cluster, connect
from .engine import FlowRunEngine, run_flow

if TYPE_CHECKING:
    from .flows import Flow


def _user_module_by_value(flow: "Flow") -> None:
    """A flow imported from the user's own module travels by value, like flow files do."""
    module = sys.modules.get(getattr(flow.fn, "__module__", ""))
    filename = getattr(module, "__file__", None)
    if module is None or not filename or module.__name__ == "__main__":
        return  # __main__ is pickled by value already
    if any(part in filename for part in ("site-packages", "dist-packages")) or filename.startswith(sys.prefix):
        return
    try:
        cloudpickle.register_pickle_by_value(module)
    except ValueError:
        pass


def execute(flow: "Flow", parameters: dict[str, Any], choice: ClusterChoice, *, bus: ev.EventBus | None = None,
            file: str | None = None, run_id: str | None = None,
            on_connected: Callable[[Cluster], None] | None = None,
            on_engine: Callable[[FlowRunEngine], None] | None = None) -> FlowRunEngine:
    """Connect (ClusterError if that fails), run the flow to its end, close what we started."""
    _user_module_by_value(flow)
    cluster = connect(choice)
    try:
        if on_connected is not None:
            on_connected(cluster)
        return run_flow(flow, parameters, client=cluster.client, bus=bus, run_id=run_id, file=file,
                        address=cluster.address if cluster.local is None else "LocalCluster",
                        on_engine=on_engine)
    finally:
        cluster.close()


def run_from_python(flow: "Flow", parameters: dict[str, Any], *, return_state: bool = False) -> Any:
    """`my_flow(...)` from plain Python: run on the cluster the command line would use."""
    from .config import load_config

    config = load_config(None, cwd=Path.cwd())
    values = flow.validate(parameters)
    file = getattr(sys.modules.get(flow.fn.__module__), "__file__", None)
    engine = execute(flow, values, choose_cluster(None, config), file=file)
    state = engine.final
    if return_state:
        return state
    return state.result()
