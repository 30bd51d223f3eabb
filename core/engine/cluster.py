"""The Dask cluster a run uses: an embedded LocalCluster, or a scheduler we attach to."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Iterator

from flows_tui.errors import ClusterError
from flows_tui.project.cluster_config import DEFAULT_CONNECT_TIMEOUT

from .scheduler_probe import NoScheduler, probe_scheduler

logger = logging.getLogger(__name__)

# Closing an embedded cluster takes well under a second; a stuck task may hold it forever.
CLOSE_TIMEOUT_SECONDS = 5
# Behind the UI, the embedded cluster's worker processes run this much nicer than the UI's own
# process: on a machine whose cores they keep busy, the UI (and the scheduler and reports in its
# process) get the CPU first, and the workers still have every cycle the UI leaves. Measured on
# 2 cores during a 10,000-task run: key → effect p95 65-91 ms, was 122-182 ms.
UI_WORKER_NICENESS = 10
# A Cluster class (a profile's, a task runner's) is given at least this long to start unless the
# profile sets its own connect_timeout: a LocalCluster of processes took over 10 s on a busy 2-core machine.
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class ClusterChoice:
    """Where runs go: `address` set means attach; otherwise an embedded LocalCluster of these sizes."""

    address: str | None = None
    source: str = "default"  # --address, DASK_SCHEDULER_ADDRESS, flows.toml, default
    n_workers: int | None = None
    threads_per_worker: int | None = None
    processes: bool = True
    dashboard_address: str = ":0"
    memory_limit: str | None = None
    tls: Any = None  # config.TLSConfig
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # reaching the scheduler, or starting the cluster
    profile: str | None = None  # the [clusters.NAME] profile, or "task_runner"
    cluster_class: Any = None  # a Cluster class (or its "module.Class" path) to start instead of LocalCluster
    cluster_kwargs: Any = None  # dict
    adapt: Any = None  # dict of Cluster.adapt's arguments
    scale: int | None = None
    start_timeout: float | None = None  # how long a Cluster class may take to start (None: no limit)
    reuse: bool = False  # kept between runs (the UI, serve), closed after idle_timeout seconds without runs
    idle_timeout: float | None = None
    serve_pid: int | None = None  # serve's cluster, shared (launch.shared_cluster): the pid of that serve
    serve_started: float | None = None  # ... and when it started (a reused pid is not it)

    def describe(self) -> str:
        """Where runs go and why, as a run's first line and the status bar say it."""
        if self.serve_pid is not None:
            return f"serve's cluster (pid {self.serve_pid}) at {self.address}"
        if self.cluster_class is not None:
            name = self.cluster_class if isinstance(self.cluster_class, str) else self.cluster_class.__name__
            what = name.rpartition(".")[2]
        else:
            what = self.address or "LocalCluster"
        profile = f"profile {self.profile!r}, " if self.profile and self.profile != "task_runner" else ""
        return f"{what} ({profile}from {self.source})"


def choose_cluster(address: str | None = None, config: Any = None, environ: Any = None, *,
                   profile: str | None = None, flow: Any = None) -> ClusterChoice:
    """Where a run goes, the first that is given of: --address, --cluster NAME (`profile`), the flow's
    own `task_runner=DaskTaskRunner(...)`, its `[flows.X] cluster`, DASK_SCHEDULER_ADDRESS,
    `[cluster] address`, else the embedded LocalCluster. ConfigError for an unknown profile."""
    environ = os.environ if environ is None else environ
    cluster = getattr(config, "cluster", None)
    sizes: dict[str, Any] = {}
    if cluster is not None:
        sizes = dict(n_workers=cluster.n_workers, threads_per_worker=cluster.threads_per_worker,
                     processes=cluster.processes, dashboard_address=cluster.dashboard_address,
                     memory_limit=cluster.memory_limit, tls=cluster.tls, connect_timeout=cluster.connect_timeout)
    if address:
        return ClusterChoice(address=normalize_address(address), source="--address", **sizes)
    if profile:
        return _from_profile(config, profile, "--cluster", sizes)
    runner = _task_runner_choice(flow, sizes)
    if runner is not None:
        return runner
    flow_profile = _flow_profile(config, flow)
    if flow_profile:
        return _from_profile(config, flow_profile, f"flows.toml [flows.{flow.name}] cluster", sizes)
    if environ.get("DASK_SCHEDULER_ADDRESS"):
        return ClusterChoice(address=normalize_address(environ["DASK_SCHEDULER_ADDRESS"]),
                             source="DASK_SCHEDULER_ADDRESS", **sizes)
    if cluster is not None and cluster.address:
        return ClusterChoice(address=cluster.address, source="flows.toml [cluster] address", **sizes)
    return ClusterChoice(**sizes)


def _flow_profile(config: Any, flow: Any) -> str | None:
    if flow is None or config is None:
        return None
    from flows_tui.project.catalog import flow_config_for

    flow_config = flow_config_for(config, flow)
    return getattr(flow_config, "cluster", None)


def _from_profile(config: Any, name: str, source: str, sizes: dict[str, Any]) -> ClusterChoice:
    from flows_tui.errors import ConfigError, did_you_mean
    from flows_tui.project.cluster_config import check_profile

    profiles = getattr(config, "clusters", {}) or {}
    chosen = profiles.get(name)
    if chosen is None:
        known = ", ".join(profiles) or "none: add [clusters.NAME] to flows.toml"
        raise ConfigError(f"no cluster profile named {name!r}{did_you_mean(name, profiles)} (profiles: {known})")
    check_profile(chosen)
    options = dict(sizes)
    options.update(tls=chosen.tls, profile=name, source=source)
    if chosen.connect_timeout is not None:
        options["connect_timeout"] = chosen.connect_timeout
    # Starting a cluster (processes, jobs, pods) takes longer than reaching a scheduler: the
    # profile's own connect_timeout, else at least a minute.
    options["start_timeout"] = chosen.connect_timeout or max(options.get("connect_timeout", 0), START_TIMEOUT)
    if chosen.address:
        return ClusterChoice(address=chosen.address, **options)
    options.update(reuse=chosen.reuse, idle_timeout=chosen.idle_timeout)
    return ClusterChoice(cluster_class=chosen.cluster_class, cluster_kwargs=dict(chosen.kwargs),
                         adapt=chosen.adapt, scale=chosen.scale, **options)


def _task_runner_choice(flow: Any, sizes: dict[str, Any]) -> ClusterChoice | None:
    """`@flow(task_runner=DaskTaskRunner(address=... | cluster_class=..., ...))`, as prefect-dask reads it."""
    from flows_tui.task_runners import DaskTaskRunner

    runner = getattr(flow, "task_runner", None)
    if not isinstance(runner, DaskTaskRunner):
        return None
    options = runner.options
    source = f"the task_runner of flow {getattr(flow, 'name', '?')!r}"
    if options.get("address"):
        return ClusterChoice(address=normalize_address(options["address"]), source=source, profile="task_runner",
                             **{k: v for k, v in sizes.items() if k != "tls"})
    if options.get("cluster_class"):
        connect_timeout = sizes.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        return ClusterChoice(cluster_class=options["cluster_class"], cluster_kwargs=dict(options.get("cluster_kwargs") or {}),
                             adapt=options.get("adapt_kwargs"), source=source, profile="task_runner",
                             connect_timeout=connect_timeout, start_timeout=max(connect_timeout, START_TIMEOUT))
    return None


def normalize_address(address: str) -> str:
    return address if "://" in address else f"tcp://{address}"


@dataclass
class ClusterInfo:
    """What the status bar and the run summary show about the cluster."""

    kind: str  # "LocalCluster" or "scheduler"
    address: str
    workers: int
    threads: int
    memory: int
    dashboard: str | None
    target: int | None = None  # the workers the cluster asked for (scale, adapt), when it says

    def in_use(self, profile: str | None) -> str:
        """One flow's own cluster as the UI lists it: profile, class, workers now/target, threads, memory."""
        gib = self.memory / 2 ** 30
        where = self.address if self.kind == "scheduler" else self.kind
        workers = f"{self.workers}/{self.target}" if self.target is not None else str(self.workers)
        name = f"{profile}: " if profile and profile != "task_runner" else ""
        return f"{name}{where} · {workers} workers · {self.threads} threads · {gib:.1f} GiB"

    def describe(self) -> str:
        gib = self.memory / 2 ** 30
        where = self.address if self.kind == "scheduler" else self.kind
        return f"{where} · {self.workers} workers · {self.threads} threads · {gib:.1f} GiB"


def _asked_for(local: Any) -> int | None:
    """How many workers a cluster we started asked for: a SpecCluster's (LocalCluster, dask-jobqueue's)
    worker specs, which scale and adapt set; None for one that does not say."""
    spec = getattr(local, "worker_spec", None)
    try:
        return len(spec) if spec is not None else None
    except TypeError:
        return None


def scheduler_lost(client: Any) -> bool:
    """Whether `client` has lost its scheduler: Dask is trying to reconnect, or gave up and closed it."""
    return getattr(client, "status", "running") not in ("running", "newly-created")


class Cluster:
    """A connected client, and the LocalCluster behind it when we started one. Close when done."""

    def __init__(self, client: Any, local: Any, choice: ClusterChoice, quiet: Any = None, *,
                 behind_ui: bool = False) -> None:
        self.client = client
        self.local = local
        self.choice = choice
        self.behind_ui = behind_ui
        self._quiet = quiet  # undoes the silencing of Dask's client logs (attached clusters)
        # How long closing waits for the embedded cluster. A task that never returns (a thread
        # stuck in a C call, an endless loop on a thread worker) held `close()` forever; past this
        # its workers are left to end with the process.
        self.close_timeout = CLOSE_TIMEOUT_SECONDS

    @property
    def lost(self) -> bool:
        """Attached, and the connection to the scheduler is gone (killed, restarted, unreachable)."""
        return self.local is None and scheduler_lost(self.client)

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def info(self) -> ClusterInfo:
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        dashboard = None
        try:
            dashboard = self.client.dashboard_link
        except Exception:
            pass
        return ClusterInfo(
            kind=type(self.local).__name__ if self.local is not None else "scheduler",
            address=self.address,
            workers=len(workers),
            threads=sum(w.get("nthreads", 0) for w in workers.values()),
            memory=sum(w.get("memory_limit", 0) or 0 for w in workers.values()),
            dashboard=dashboard,
            target=_asked_for(self.local),
        )

    def close(self) -> None:
        try:
            # A client whose scheduler is gone would wait its whole connect timeout to say goodbye.
            self.client.close(timeout=1) if self.lost else self.client.close()
        finally:
            try:
                if self.local is not None:
                    try:
                        self.local.close(timeout=self.close_timeout)
                    except (TimeoutError, asyncio.TimeoutError):
                        logger.debug("the embedded cluster did not close within %ss", self.close_timeout)
            finally:
                if self._quiet is not None:
                    self._quiet.close()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _security(tls: Any) -> Any:
    if tls is None:
        return None
    from distributed import Security

    return Security(tls_ca_file=str(tls.ca_file), tls_client_cert=str(tls.cert), tls_client_key=str(tls.key),
                    require_encryption=True)


def _attach(choice: ClusterChoice, silence_logging_cmgr: Any) -> Cluster:
    """A client of the scheduler at `choice.address`: asked first who answers there, within the deadline."""
    from distributed import Client

    security = _security(choice.tls)
    timeout = choice.connect_timeout
    where = f"(address from {choice.source})"
    try:
        probe_scheduler(choice.address, timeout, security.get_connection_args("client") if security else None)
    except NoScheduler as error:
        raise ClusterError(f"{error} {where}") from None
    # As the embedded cluster does (silence_logs): Dask's client logs, with its tracebacks when
    # the scheduler goes away, stay off the terminal; the run says what happened instead.
    quiet = contextlib.ExitStack()
    quiet.enter_context(silence_logging_cmgr(logging.CRITICAL))
    try:
        client = Client(choice.address, timeout=timeout, security=security, set_as_default=False)
    except (OSError, TimeoutError) as error:
        quiet.close()
        raise ClusterError(f"could not reach the Dask scheduler at {choice.address} within {timeout:g} s: {error} "
                           f"{where}") from None
    except Exception as error:
        quiet.close()
        raise ClusterError(f"could not attach to the Dask scheduler at {choice.address}: "
                           f"{type(error).__name__}: {error} {where}") from None
    return Cluster(client, None, choice, quiet)


def _start_class(choice: ClusterChoice) -> Cluster:
    """The profile's (or task runner's) Cluster class, started with its kwargs, scaled, and a client of it."""
    from distributed import Client
    from flows_tui.project.cluster_config import import_cluster_class

    what = choice.describe()

    def error(message: str) -> ClusterError:
        return ClusterError(f"cluster {what}: {message}")

    cls = import_cluster_class(choice.cluster_class, error)
    kwargs = dict(choice.cluster_kwargs or {})
    try:
        with ctrl_c_left_to_us():
            started = cls(**kwargs)
    except Exception as problem:
        raise error(f"could not start {cls.__name__}: {type(problem).__name__}: {problem}") from None
    try:
        if choice.adapt is not None:
            started.adapt(**choice.adapt)
        elif choice.scale is not None:
            started.scale(choice.scale)
        client = Client(started, set_as_default=False, timeout=choice.connect_timeout)
    except Exception as problem:
        _close_started(started)
        raise error(f"{type(problem).__name__}: {problem}") from None
    return Cluster(client, started, choice)


def _close_started(started: Any) -> None:
    try:
        started.close()
    except Exception:
        pass


def connect(choice: ClusterChoice, *, behind_ui: bool = False) -> Cluster:
    """Start the embedded cluster or attach to `choice.address`; ClusterError if that fails.

    `behind_ui`: the UI runs in this process, so the embedded cluster's worker processes run
    at a lower CPU priority (UI_WORKER_NICENESS); an attached cluster's workers are not ours.
    """
    import dask
    from distributed import Client, LocalCluster

    try:
        from distributed.utils import silence_logging_cmgr
    except ImportError:  # an older distributed: its logs go where they always went
        silence_logging_cmgr = lambda level: contextlib.nullcontext()  # noqa: E731

    _short_debug_logs()
    if choice.address:
        return _attach(choice, silence_logging_cmgr)
    if choice.cluster_class is not None:
        return _start_class(choice)

    _restarts_outlast_lost_worker_timeout()
    options: dict[str, Any] = dict(processes=choice.processes, dashboard_address=choice.dashboard_address,
                                   silence_logs=logging.CRITICAL)
    for name in ("n_workers", "threads_per_worker", "memory_limit"):
        value = getattr(choice, name)
        if value is not None:
            options[name] = value
    # Tasks are small and many; queuing them on the scheduler halves map throughput here.
    with dask.config.set({"distributed.scheduler.worker-saturation": float("inf")}):
        try:
            with ctrl_c_left_to_us():
                local = LocalCluster(**options)
        except Exception as error:
            raise ClusterError(f"could not start the embedded LocalCluster: {type(error).__name__}: {error}") from None
    client = Client(local, set_as_default=False)
    if choice.processes:
        _register_plugins(client, behind_ui)
    return Cluster(client, local, choice, behind_ui=behind_ui)


# Dask keeps, for its developers, the last `distributed.admin.low-level-log-length` (1,000)
# batches of messages each of its streams sent (`BatchedSend.recent_message_log`: every task
# sent with its arguments, every batch of a run's reports and log lines), transitions and
# events per topic. In a process that runs flow after flow (`serve`, the UI) they filled for
# hundreds of runs: +88 kB a run in the process after 150 runs, the workers as well. Left
# as the user set it if they did; worker processes take it from this process's config.
# The scheduler also keeps its last 100 computations (one a run) with their task groups, and
# every process its last hour of system figures (7,200 samples of a dozen quantities: ~2 MB a
# process, growing through a serve's first hour); the dashboard's system page shows 5 minutes.
SHORTER = {"distributed.admin.low-level-log-length": (1000, 50),
           "distributed.diagnostics.computations.max-history": (100, 10),
           "distributed.admin.system-monitor.log-length": (7200, 600)}
# The embedded LocalCluster closes the nanny of a worker that has not come back `lost-worker-timeout`
# (15 s) after it was removed. The timer of each death is its own: a task that killed its
# workers one after another (KilledWorker after 4 deaths) left timers running, and one that
# fired while the nanny was still starting the latest process again (seconds on a busy
# machine) closed a nanny that was bringing its worker back. The cluster was then left
# without workers for good, and the next run waited for one. Two minutes outlast restarts.
# Only for the embedded cluster: a cluster class's (a job queue's) lost jobs go at Dask's pace.
LONGER = {"distributed.deploy.lost-worker-timeout": ("15s", "120s")}


def _short_debug_logs() -> None:
    _keep_ours_unless_set(SHORTER)


def _restarts_outlast_lost_worker_timeout() -> None:
    _keep_ours_unless_set(LONGER)


def _keep_ours_unless_set(settings: dict[str, tuple[Any, Any]]) -> None:
    """Dask's settings for a cluster that runs flow after flow, left as the user set them if they did."""
    import dask

    for key, (default, ours) in settings.items():
        if dask.config.get(key, default) == default:
            dask.config.set({key: ours})


_QUIET_TRACKER = "ignore:resource_tracker:UserWarning"


def start_semaphore_tracker() -> None:
    """Start multiprocessing's resource tracker, which worker processes need, now (the UI: before
    Textual replaces sys.stderr, whose file the tracker is started with), and quiet.

    It outlives a process that ends at once on Ctrl-C, frees the semaphores that process left,
    and said so in a warning on the terminal: nothing the user could act on.
    """
    from multiprocessing import resource_tracker

    if _QUIET_TRACKER not in sys.warnoptions:
        sys.warnoptions.append(_QUIET_TRACKER)  # the -W options of the processes multiprocessing starts
    try:
        resource_tracker.ensure_running()
    except (OSError, ValueError):  # "bad value(s) in fds_to_keep": sys.stderr replaced (Textual's capture)
        pass  # then it starts with the first worker, as it did before


@contextlib.contextmanager
def ctrl_c_left_to_us() -> Iterator[None]:
    """While a cluster starts on this thread, the processes it starts (worker processes, batch jobs run
    locally) never see Ctrl-C: it is ours to handle (cancel, close the cluster, say "interrupted").

    Ctrl-C goes to the terminal's whole process group. A worker process hit while still importing
    Dask, before the plugin below could tell it to ignore the signal, died of it and printed its
    KeyboardInterrupt traceback over our one line. A blocked signal stays blocked across fork and
    exec, so SIGINT is blocked on this thread and the threads Dask starts from it (its IO loop, which
    starts and restarts the workers); the main thread still takes Ctrl-C. Only off the main thread:
    there, blocking it would hold Ctrl-C back until the cluster was up.
    """
    if threading.current_thread() is threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    # Started first: the thread that starts it has SIGINT unblocked afterwards, whatever it was before.
    start_semaphore_tracker()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _register_plugins(client: Any, behind_ui: bool) -> None:
    """Worker plugins of the embedded cluster's processes: the scheduler gives them to every worker
    that joins, so a worker process the nanny starts again after a crash has them too."""
    from .worker_signals import LeaveCtrlCToParent

    plugins = [(LeaveCtrlCToParent(), "flows-tui-leave-ctrl-c")]
    if behind_ui:
        from .worker_priority import YieldToUI, niceness

        plugins.append((YieldToUI(niceness() + UI_WORKER_NICENESS), "flows-tui-yield-to-ui"))
    for plugin, name in plugins:
        try:
            client.register_plugin(plugin, name=name)
        except Exception:  # each is a courtesy; the cluster works without it
            logger.debug("could not register the worker plugin %s", name, exc_info=True)


def reconnect(cluster: Cluster) -> Cluster:
    """A fresh connection to the scheduler `cluster` lost (ClusterError while it is not back); the old one is closed."""
    try:
        cluster.close()
    except Exception:  # a client without its scheduler may not close cleanly; it is dropped either way
        pass
    return connect(cluster.choice, behind_ui=cluster.behind_ui)
