"""One run from start to end: `flows-tui run` and a flow called from plain Python.

`recording` attaches what every run is observed by, whoever starts it (this, `run --watch`,
`serve`, the UI): the store (as the bus's journal) and the notifier.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from flows_tui.engine.cluster import Cluster, ClusterChoice, choose_cluster
from flows_tui.engine.flow_run import FlowRunEngine
from flows_tui.record import events as ev
from flows_tui.tracebacks import is_user_file
from flows_tui.user_code.pickling import send_by_value

from .launcher import RunLauncher
from .requests import CancelRequests

if TYPE_CHECKING:
    from flows_tui.project.config import Config
    from flows_tui.flows import Flow
    from flows_tui.record.store import Store


@contextlib.contextmanager
def recording(bus: ev.EventBus, config: "Config", *, unrecorded_ok: bool = False,
              deferred: bool = False) -> Iterator["Store"]:
    """Record everything on `bus` in the state_dir's store and send the configured notifications.

    A store that cannot be written raises StoreNotWritable before anything runs; with
    `unrecorded_ok` (the UI) the store comes back read-only instead (`store.read_only` says
    why) and runs go on unrecorded. `deferred` (the UI): a state_dir without a store is left as
    it is until something is recorded (see DeferredStore). On the way out: notifications still
    in flight are given their time, everything published is committed, and runs this process
    left unfinished are marked Crashed.
    """
    from flows_tui.record.notify import attach
    from flows_tui.record.store import Store, StoreNotWritable
    from flows_tui.record.store.deferred import DeferredStore

    try:
        state_dir = config.project.state_dir
        store = DeferredStore.for_state_dir(state_dir) if deferred else Store.open(state_dir)
    except StoreNotWritable as error:
        if not unrecorded_ok:
            raise
        store = Store.unrecorded(config.project.state_dir, error)
    requests = None
    if store.read_only is None:
        bus.set_journal(store.record)
        requests = CancelRequests(store).start()  # other processes may cancel this one's runs
    notifier = attach(bus, config.notify)
    try:
        yield store
    finally:
        if requests is not None:
            requests.stop()
        if notifier is not None:
            notifier.close()
        bus.flush()
        bus.remove_journal()
        store.close()


def _user_module_by_value(flow: "Flow") -> None:
    """A flow imported from the user's own module travels by value, like flow files do."""
    module = sys.modules.get(getattr(flow.fn, "__module__", ""))
    filename = getattr(module, "__file__", None)
    if module is None or not filename or module.__name__ == "__main__":
        return  # __main__ is pickled by value already
    if not is_user_file(filename):
        return
    send_by_value(module)


def execute(flow: "Flow", parameters: dict[str, Any], choice: ClusterChoice, config: "Config", *,
            bus: ev.EventBus, file: str | None = None, run_id: str | None = None,
            on_connected: Callable[[Cluster], None] | None = None,
            on_engine: Callable[[FlowRunEngine], None] | None = None, shared: bool = False,
            say: Callable[[str], None] | None = None) -> FlowRunEngine:
    """One run: connect (ClusterError if that fails), run to the end, close what was started.

    `shared` (`flows-tui run`): on a running serve's cluster instead of the default embedded one."""
    _user_module_by_value(flow)
    with RunLauncher(choice, config, bus, shared=shared, say=say) as launcher:
        cluster = launcher.connect()
        if on_connected is not None:
            on_connected(cluster)
        return launcher.launch(flow, parameters, file=file, run_id=run_id, on_engine=on_engine)


def run_from_python(flow: "Flow", parameters: dict[str, Any], *, return_state: bool = False) -> Any:
    """`my_flow(...)` from plain Python: run on the cluster the command line would use."""
    from flows_tui.project.config import load_config

    from flows_tui.errors import ParameterError

    config = load_config(None, cwd=Path.cwd())
    try:
        values = flow.validate(parameters)
    except ParameterError as error:
        return _refused(flow, parameters, error, config, return_state=return_state)
    bus = ev.EventBus()
    with recording(bus, config):
        engine = execute(flow, values, choose_cluster(None, config), config, bus=bus, file=flow.file)
    state = engine.final
    if return_state:
        return state
    return state.result()


def _refused(flow: "Flow", parameters: dict[str, Any], error: Exception, config: "Config", *,
             return_state: bool) -> Any:
    """Bad parameters given from Python, as in Prefect: a flow run that ends Failed before its body
    runs (recorded, notified), its on_failure hooks called; the call raises the error, or returns
    the Failed state with `return_state=True`. No cluster is needed for it."""
    import logging

    from flows_tui.context import run_hook
    from flows_tui.engine.flow_run import new_run_id
    from flows_tui.errors import describe
    from flows_tui.record.model import RunModel
    from flows_tui.states import FAILED, State, now

    run_id = new_run_id()
    events = [ev.FlowRunStarted(run_id, flow.name, dict(parameters), now(), file=flow.file),
              ev.FlowStateChanged(run_id, FAILED, now(), message=str(error))]
    bus = ev.EventBus()
    with recording(bus, config):
        bus.publish_many(events)
    model = RunModel()
    model.apply_all(events)
    flow_run = model.runs[run_id]
    flow_run.name = run_id  # its flow_run_name may read the very parameters that were refused
    state = State(FAILED, str(error), _exception=error)
    for hook in flow.on_failure_hooks:
        try:
            run_hook(hook, flow, flow_run, state)
        except Exception as hook_error:  # as in a run: a failing hook is logged, never raised
            logging.getLogger("flows_tui.flow_runs").error("flow hook %r failed: %s",
                                                          getattr(hook, "__name__", hook), describe(hook_error))
    if return_state:
        return state
    raise error
