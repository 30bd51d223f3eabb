"""Where every run starts: `flows-tui run`, `run --watch`, `serve`, the UI and a flow called
from Python all launch through a RunLauncher.

It owns the cluster (chosen from --address, DASK_SCHEDULER_ADDRESS or flows.toml, connected,
and connected afresh when an attached scheduler was lost), the session that lets a run
reuse the results of the runs before it, the engines of the runs in flight, and cancelling
them all. What each run is told about its cluster (address, log level, cache directory)
comes from here too, so every way of starting a run reports it the same way.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from flows_tui.cache import cache_directory
from flows_tui.engine.cluster import Cluster, ClusterChoice, choose_cluster, connect, reconnect
from flows_tui.engine.flow_run import FlowRunEngine, run_flow
from flows_tui.engine.session import Session
from flows_tui.errors import ClusterError

from .flow_clusters import FlowClusters
from .shared_cluster import may_share, shared_choice, still_served

if TYPE_CHECKING:
    from flows_tui.flows import Flow
    from flows_tui.project.config import Config
    from flows_tui.record.events import EventBus


# Every run in flight in this process, whichever launcher started it: a request from another
# process (cancel) finds its engine here.
_in_flight: dict[str, FlowRunEngine] = {}
_in_flight_lock = threading.Lock()


def engine_in_flight(run_id: str) -> FlowRunEngine | None:
    with _in_flight_lock:
        return _in_flight.get(run_id)


def where(cluster: Cluster) -> str:
    """The cluster as a run's first line and the tasks pane say it: "LocalCluster", the scheduler's
    address, or the class, with the profile that named it ("SLURMCluster (profile big)"); a running
    serve's, shared (shared_cluster): "serve's cluster (pid N) at tcp://…"."""
    if cluster.choice.serve_pid is not None:
        return f"serve's cluster (pid {cluster.choice.serve_pid}) at {cluster.address}"
    what = cluster.address if cluster.local is None else type(cluster.local).__name__
    profile = _profile(cluster)
    return f"{what} (profile {profile})" if profile else what


def cluster_name(cluster: Cluster) -> str:
    """The cluster in one word, as `flows-tui runs` lists it: the profile's name, else the class or address."""
    if cluster.choice.serve_pid is not None:
        return f"serve's cluster (pid {cluster.choice.serve_pid})"
    return _profile(cluster) or (cluster.address if cluster.local is None else type(cluster.local).__name__)


def _profile(cluster: Cluster) -> str | None:
    profile = cluster.choice.profile
    return profile if profile not in (None, "task_runner") else None


class Interrupted(ClusterError):
    """The launcher was closed (quit, stop, Ctrl-C) while its cluster was starting or connecting."""


def _close_quietly(cluster: Cluster) -> None:
    try:
        cluster.close()
    except Exception:  # a cluster half gone may not close cleanly; it is dropped either way
        pass


class RunLauncher:
    """The cluster, the session and the runs in flight of one process (a command, serve or the UI).

    `connect()` before the first launch (ClusterError if the cluster cannot be had); `close()`
    when done, which closes what we started. With `keep_results` (`run --watch`, the UI) a
    session holds each run's results on the cluster for the runs after it. Thread-safe: the
    UI and serve launch from several threads at once.
    """

    def __init__(self, choice: ClusterChoice, config: "Config", bus: "EventBus", *, keep_results: bool = False,
                 behind_ui: bool = False, shared: bool = False, say: Callable[[str], None] | None = None) -> None:
        self.choice = choice
        # The UI and `run`: a running serve's embedded cluster stands in for the default one (shared_cluster).
        self.shared = shared and may_share(choice, config)
        self.config = config
        self.bus = bus
        self.keep_results = keep_results
        self.behind_ui = behind_ui
        self.say = say or (lambda text: None)  # hears what the launcher does on its own (reconnects)
        self.cluster: Cluster | None = None
        self.session: Session | None = None
        self.engines: dict[str, FlowRunEngine] = {}  # run id → engine, while the run is in flight
        self._lock = threading.Lock()
        self._reconnecting = threading.Lock()  # one reconnect at a time
        self._closed = threading.Event()
        self._starting = 0  # clusters starting on their threads
        self.abandoned = False
        # Flows that choose their own cluster ([flows.X] cluster, a DaskTaskRunner) run there, unless
        # --address or --cluster said where every run goes.
        self.flow_clusters = FlowClusters(self._start_interruptibly)
        self.forced = choice.source in ("--address", "--cluster")  # closed while a cluster was still starting: it is closed when it is up

    # The cluster ---------------------------------------------------------------------------------

    def connect(self) -> Cluster:
        """Start the embedded cluster or attach to the scheduler; ClusterError if that fails.

        The cluster starts on a thread of its own and this waits for it, so `close()` (the UI's
        `q`, serve's stop) and Ctrl-C (a KeyboardInterrupt here) end the wait at once, whatever
        Dask is doing; a cluster that comes up after that is closed then.
        """
        served = shared_choice(self.choice, self.config) if self.shared else None
        if served is not None:
            try:
                return self._connect(lambda: connect(served))
            except Interrupted:
                raise
            except ClusterError as error:  # serve is stopping, or hung: a cluster of our own instead
                self.say(f"{served.describe()} did not answer ({error}); starting one here")
        return self._connect(lambda: connect(self.choice, behind_ui=self.behind_ui))

    def starts_processes(self) -> bool:
        """Whether connecting now would start worker processes here (the embedded LocalCluster of
        processes, no serve's cluster to share): the UI waits for a first run before it does."""
        choice = self.choice
        if choice.address is not None or choice.cluster_class is not None or not choice.processes:
            return False
        return not (self.shared and shared_choice(choice, self.config) is not None)

    def _connect(self, start: Callable[[], Cluster]) -> Cluster:
        cluster = self._start_interruptibly(start, self.choice)
        self._use(cluster)
        return cluster

    def _start_interruptibly(self, start: Callable[[], Cluster], choice: ClusterChoice | None = None) -> Cluster:
        """`start()` on a thread of its own, waited for until close() or Ctrl-C; for a Cluster class
        (`choice.cluster_class`), until its start_timeout too (ClusterError naming the profile)."""
        if self._closed.is_set():
            raise Interrupted("stopped before the cluster was ready")
        done, gave_up = threading.Event(), threading.Event()
        outcome: dict[str, Any] = {}
        with self._lock:
            self._starting += 1

        def starting() -> None:
            try:
                outcome["cluster"] = start()
            except BaseException as error:  # handed to the waiting thread
                outcome["error"] = error
            with self._lock:
                self._starting -= 1
                done.set()
                unwanted = (self._closed.is_set() or gave_up.is_set()) and "cluster" in outcome
            if unwanted:
                _close_quietly(outcome["cluster"])

        limit = choice.start_timeout if choice is not None and choice.cluster_class is not None else None
        deadline = None if limit is None else time.monotonic() + limit
        threading.Thread(target=starting, name="flows-tui-cluster-start", daemon=True).start()
        while not done.wait(0.05):  # interruptible: Ctrl-C raises KeyboardInterrupt here
            if self._closed.is_set():
                raise Interrupted("stopped before the cluster was ready")
            if deadline is not None and time.monotonic() > deadline:
                with self._lock:
                    if not done.is_set():
                        gave_up.set()
                        raise ClusterError(f"cluster {choice.describe()} did not start within {limit:g} s "
                                           "(connect_timeout; a cloud or batch cluster may need more)")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["cluster"]

    def _use(self, cluster: Cluster) -> None:
        with self._lock:
            if self._closed.is_set():
                _close_quietly(cluster)
                raise Interrupted("stopped before the cluster was ready")
            self.cluster = cluster
            self.session = Session(cluster.client) if self.keep_results else None

    @property
    def reconnecting(self) -> bool:
        return self._reconnecting.locked()

    def live_cluster(self) -> Cluster:
        """The cluster for the next run, connected afresh first if the attached scheduler was lost.

        A run in progress when the scheduler went away ended Crashed; the next one reconnects
        to the same address (the scheduler restarted) or raises ClusterError while it is
        unreachable. `say` hears both steps.
        """
        with self._reconnecting:
            cluster = self.cluster
            if cluster is None:
                return self.connect()
            if cluster.choice.serve_pid is not None and (cluster.lost or not still_served(cluster.choice)):
                # serve stopped (or went away): its cluster with it. Another serve's, or one of our own.
                self.say(f"serve (pid {cluster.choice.serve_pid}) stopped, and its cluster with it; "
                         "starting one here")
                with self._lock:
                    self.cluster, self.session = None, None
                _close_quietly(cluster)
                return self.connect()
            if not cluster.lost:
                return cluster
            address = cluster.choice.address
            self.say(f"lost the Dask scheduler at {address}; reconnecting")
            fresh = self._connect(lambda: reconnect(cluster))
            self.say(f"reconnected to the Dask scheduler at {address}")
            return fresh

    def close(self) -> None:
        """Close what we started; a cluster still starting is closed as soon as it is up."""
        with self._lock:
            self._closed.set()
            cluster, self.cluster, self.session = self.cluster, None, None
            self.abandoned = self._starting > 0
        try:
            self.flow_clusters.close()
        finally:
            if cluster is not None:
                cluster.close()

    def __enter__(self) -> "RunLauncher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # Runs ----------------------------------------------------------------------------------------

    def launch(self, flow: "Flow", parameters: dict[str, Any], *, file: str | None = None,
               run_id: str | None = None, reuse: bool = False,
               on_engine: Callable[[FlowRunEngine], None] | None = None) -> FlowRunEngine:
        """Run `flow` to its end on the live cluster; the engine, with its final state.

        With `reuse` (and `keep_results`), task calls whose results the session holds are not
        run again. ClusterError when no cluster can be had.
        """
        own = self.choice_for(flow)
        if own is None:
            cluster, session = self.live_cluster(), self.session
        else:
            cluster, session = self.flow_clusters.acquire(own), None
        started: list[FlowRunEngine] = []

        def track(engine: FlowRunEngine) -> None:
            started.append(engine)
            with self._lock:
                self.engines[engine.run_id] = engine
            with _in_flight_lock:
                _in_flight[engine.run_id] = engine
            if on_engine is not None:
                on_engine(engine)

        project = self.config.project
        try:
            return run_flow(flow, parameters, client=cluster.client, bus=self.bus, run_id=run_id, file=file,
                            address=where(cluster), cluster=cluster_name(cluster), on_engine=track,
                            log_level=project.log_level,
                            cache_dir=cache_directory(project.state_dir), session=session,
                            reuse=reuse and session is not None)
        finally:
            with self._lock:
                for engine in started:
                    self.engines.pop(engine.run_id, None)
            with _in_flight_lock:
                for engine in started:
                    _in_flight.pop(engine.run_id, None)
            if own is not None:
                for engine in started:
                    engine.let_go_of_results()
                # The body's futures may sit in reference cycles (its frames) until a collection:
                # until then Dask keeps their data, and adapt the workers holding it.
                gc.collect()
                self.flow_clusters.release(cluster)

    def choice_for(self, flow: "Flow") -> ClusterChoice | None:
        """The flow's own cluster when it chooses one other than the launcher's; None: the launcher's."""
        if self.forced:
            return None
        own = choose_cluster(None, self.config, flow=flow)
        if own == self.choice or not own.source.startswith(("the task_runner", "flows.toml [flows.")):
            return None
        return own

    def running(self) -> list[FlowRunEngine]:
        with self._lock:
            return list(self.engines.values())

    def cancel_all(self, reason: str) -> int:
        """Cancel every run in flight (each ends Cancelled with `reason`); how many there were."""
        engines = self.running()
        for engine in engines:
            engine.cancel(reason)
        return len(engines)
