"""`flows-tui serve` and `flow.serve(...)`: scheduled runs, headless, until SIGTERM or Ctrl-C.

One cluster for the whole session; every run is recorded and notified like any other
(`runner.recording`). A stop signal stops scheduling, lets running runs finish for a
grace period, then cancels what is left and records it Cancelled.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable

from rich.console import Console
from rich.text import Text

from flows_tui.engine.cluster import ClusterChoice
from flows_tui.engine.flow_run import FlowRunEngine
from flows_tui.errors import FlowsTuiError
from flows_tui.launch.launcher import Interrupted, RunLauncher, where
from flows_tui.launch.runner import recording
from flows_tui.launch.shared_cluster import publish, withdraw
from flows_tui.project.schedules import Schedule
from flows_tui.record import events as ev
from flows_tui.record.progress import SYMBOLS, format_duration, state_text
from flows_tui.record.retention import Retention
from flows_tui.safe_text import plain, visible
from flows_tui.states import SUCCESS_STATES

from .firing import ScheduledRuns

DEFAULT_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Served:
    """A flow and the schedule it runs on."""

    flow: Any  # Flow
    schedule: Schedule
    file: str | None = None


class Service:
    """Runs the scheduled flows of one `serve` session on one cluster."""

    def __init__(self, served: list[Served], config: Any, choice: ClusterChoice, *, console: Console,
                 clock: Any = None) -> None:
        self.config = config
        self.choice = choice
        self.console = console
        self.clock = clock
        self._served = {entry.schedule.flow: entry for entry in served}
        self._lock = threading.Lock()
        self.bus = ev.EventBus()
        self.launcher = RunLauncher(choice, config, self.bus, say=self.say)
        self.scheduled: ScheduledRuns | None = None

    def say(self, text: Any) -> None:
        stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
        line = Text(f"{stamp} ")
        line.append(text if isinstance(text, Text) else plain(text))
        self.console.print(line, highlight=False, soft_wrap=True)

    def update(self, served: list[Served]) -> None:
        """New flows or schedules after a reload; runs in progress keep their code."""
        with self._lock:
            self._served = {entry.schedule.flow: entry for entry in served}
        if self.scheduled is not None:
            self.scheduled.set_schedules([entry.schedule for entry in served])

    def run(self, stop: threading.Event, grace: float = DEFAULT_GRACE_SECONDS) -> None:
        """Serve until `stop` is set; then wind down (grace period, then cancel)."""
        with recording(self.bus, self.config) as store:
            store.on_problem = self.say  # "the history of this run is incomplete: …", once per run
            # A stop while the cluster starts or connects ends the wait at once.
            threading.Thread(target=self._stop_connecting, args=(stop,), name="flows-tui-serve-stop",
                             daemon=True).start()
            try:
                cluster = self.launcher.connect()
            except Interrupted:
                self.say("stopped before the cluster was ready")
                return
            retention = Retention.for_project(store, self.config.project, self.say)
            shared = self._share(cluster)
            try:
                self.scheduled = ScheduledRuns(self.launcher, store, "flows-tui serve", self._flow_of, log=self.say,
                                               clock=self.clock, started=self._started, ended=self._ended,
                                               not_started=self._not_started)
                self.scheduled.set_schedules([entry.schedule for entry in self._served.values()])
                chosen = "" if self.choice.source == "default" else f", from {self.choice.source}"  # as run says it
                self.say(f"serving {len(self._served)} schedule(s) on {where(cluster)}{chosen}; Ctrl-C or SIGTERM stops")
                for flow, due in sorted(self.scheduled.scheduler.next_due().items()):
                    schedule = self._served[flow].schedule
                    self.say(f"  {flow}: {schedule.describe()}, next run {_local(due)}")
                self.scheduled.start()
                stop.wait()
                if shared:  # no new run of another process comes to a cluster about to close
                    withdraw(self.config.project.state_dir)
                self.scheduled.scheduler.stop()
                self._wind_down(grace)
                self.say("stopped")
            finally:
                if self.scheduled is not None:
                    self.scheduled.stop()  # again after an error: the schedules' lock goes to a standby
                if shared:  # first: the UI and `run` stop coming to a cluster that is closing
                    withdraw(self.config.project.state_dir)
                self.launcher.close()
                if retention is not None:
                    retention.stop()

    def _share(self, cluster: Any) -> bool:
        """The embedded LocalCluster, published in the state_dir for the UI and `flows-tui run` of the
        project to use (launch.shared_cluster), unless `[cluster] shared = false`."""
        if cluster.local is None or self.choice.source != "default" or self.choice.cluster_class is not None \
                or not getattr(self.config.cluster, "shared", True) or cluster.address.startswith("inproc://"):
            return False  # a cluster of threads (processes = false) is reachable from this process only
        try:
            dashboard = cluster.client.dashboard_link
        except Exception:
            dashboard = None
        if publish(self.config.project.state_dir, cluster.address, dashboard) is None:
            return False
        self.say(f"the UI and flows-tui run of this project use this cluster ({cluster.address}) "
                 "unless told otherwise ([cluster] shared = false)")
        return True

    def _stop_connecting(self, stop: threading.Event) -> None:
        stop.wait()
        if self.launcher.cluster is None:
            self.launcher.close()

    def _flow_of(self, name: str) -> tuple[Any, str | None]:
        with self._lock:
            entry = self._served[name]
        return entry.flow, entry.file

    def _started(self, engine: FlowRunEngine, due: _dt.datetime) -> None:
        self.say(f"{SYMBOLS['Running']} {engine.flow.name} started (run {engine.run_id}, due {_local(due)})")

    def _not_started(self, schedule: Schedule, due: _dt.datetime, error: FlowsTuiError) -> None:
        self.say(f"{schedule.flow}: the run due {_local(due)} did not start: {error}")

    def _ended(self, engine: FlowRunEngine, due: _dt.datetime) -> None:
        run = engine.flow_run
        text = Text.assemble(state_text(run.state),
                             visible(f" {engine.flow.name} in {format_duration(run.duration)} (run {run.run_id})"))
        if run.state not in SUCCESS_STATES and run.message:
            text.append(f": {visible(run.message)}")
        self.say(text)

    def _wind_down(self, grace: float) -> None:
        running = self.scheduled.scheduler.running() if self.scheduled else []
        if not running:
            return
        self.say(f"stopping: waiting up to {grace:g}s for {len(running)} run(s) to finish")
        _, still = concurrent.futures.wait(running, timeout=grace)
        if still:
            self.say(f"cancelling {len(self.launcher.running())} run(s) still in progress after {grace:g}s")
            self.launcher.cancel_all(f"flows-tui serve stopped; the run did not finish within the {grace:g}s "
                                     "grace period")
            concurrent.futures.wait(still, timeout=30)


def _local(moment: _dt.datetime | None) -> str:
    return "paused" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set `stop` (a second one is not needed); returns a function restoring the handlers."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handle(signum: int, frame: Any) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def scheduled_flows(config: Any, files: list) -> list[Served]:
    """The flows with a schedule in flows.toml, their parameters checked now rather than at 3 a.m."""
    from flows_tui.project.catalog import flow_config_for
    from flows_tui.errors import UsageError

    served = []
    for loaded in files:
        for flow in loaded.flows.values():
            flow_config = flow_config_for(config, flow)
            schedule = Schedule.from_config(flow.name, flow_config)
            if schedule is None:
                continue
            flow.validate(dict(schedule.parameters))  # ParameterError names the flow and parameter
            served.append(Served(flow, schedule, str(loaded.path)))
    if not served:
        raise UsageError("nothing to serve: no flow has a schedule (add `cron` or `interval` under "
                         "[flows.NAME] in flows.toml; `flows-tui check` reports names that match no flow)")
    return served


def schedule_of(flow: Any, *, cron: str | None, interval: Any, parameters: dict[str, Any], timezone: str | None,
                overlap: str = "skip", catchup: str = "skip", what: str = "") -> Schedule:
    """The schedule `flow.serve(...)` or `flow.to_deployment(...)` asks for; UsageError naming what is wrong."""
    from flows_tui.errors import UsageError
    from flows_tui.project.config import parse_interval

    what = what or f"{flow.name}.serve()"
    if (cron is None) == (interval is None):
        raise UsageError(f"{what} needs either cron=... or interval=...")
    if cron is not None:
        from croniter import croniter

        if not croniter.is_valid(cron):
            raise UsageError(f"{what}: invalid cron expression {cron!r} (expected five fields, e.g. \"0 * * * *\")")
    every = None
    if interval is not None:
        try:
            every = interval if isinstance(interval, _dt.timedelta) else parse_interval(interval)
        except ValueError:
            raise UsageError(f"{what}: invalid interval {interval!r} (seconds, a timedelta, or text like \"90s\", "
                             "\"5m\", \"1h\")") from None
    if timezone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"{what}: unknown timezone {timezone!r} (an IANA name like \"Europe/Berlin\")") from None
    schedule = Schedule(flow.name, dict(parameters), cron=cron, interval=every, timezone=timezone, overlap=overlap,
                            catchup=catchup)
    flow.validate(dict(parameters))
    return schedule


def serve_flow(flow: Any, *, cron: str | None, interval: Any, parameters: dict[str, Any], timezone: str | None,
               overlap: str, catchup: str, grace: float) -> None:
    """`flow.serve(...)` in a script: the same session as `flows-tui serve`, for one flow."""
    serve_scheduled(lambda: [Served(flow, schedule_of(flow, cron=cron, interval=interval, parameters=parameters,
                                                      timezone=timezone, overlap=overlap, catchup=catchup),
                                    flow.file)], grace)


def serve_deployments(deployments: tuple, grace: float) -> None:
    """`serve(a.to_deployment(...), b.to_deployment(...))` in a script: one session for them all."""
    from flows_tui.errors import UsageError

    def served() -> list[Served]:
        entries: dict[str, Served] = {}
        for deployment in deployments:
            flow = deployment.flow
            what = f"{flow.name}.to_deployment({deployment.name!r})"
            if flow.name in entries:
                raise UsageError(f"{what}: flow {flow.name!r} is served already; one schedule per flow (give another "
                                 f"deployment another flow name, e.g. {flow.name}.with_options(name=...))")
            entries[flow.name] = Served(flow, schedule_of(flow, cron=deployment.cron, interval=deployment.interval,
                                                          parameters=deployment.parameters,
                                                          timezone=deployment.timezone, what=what), flow.file)
        if not entries:
            raise UsageError("serve() needs at least one deployment: serve(my_flow.to_deployment(\"name\", cron=...))")
        return list(entries.values())

    serve_scheduled(served, grace)


def serve_scheduled(served: Callable[[], list[Served]], grace: float) -> None:
    """Serve what `served()` gives until SIGTERM or Ctrl-C; a usage error is one line and exit 2."""
    from pathlib import Path

    from flows_tui.engine.cluster import choose_cluster
    from flows_tui.project.config import load_config

    console = Console(highlight=False, soft_wrap=True)
    try:
        entries = served()
        config = load_config(None, cwd=Path.cwd())
        service = Service(entries, config, choose_cluster(None, config), console=console)
    except FlowsTuiError as error:
        console.print(visible(f"error: {error}"), markup=False, style="red")
        raise SystemExit(2) from None
    stop = threading.Event()
    restore = stop_on_signals(stop)
    try:
        service.run(stop, grace)
    finally:
        restore()
