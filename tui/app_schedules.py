"""flows.toml re-read when saved, and the schedules the UI fires while open.

A part of FlowsApp (tui/app.py), which mixes it in: `self` is the app."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from flows_tui.errors import FlowsTuiError
from flows_tui.project.config import reload_config
from flows_tui.project.schedules import Schedule
from flows_tui.safe_text import plain

from .flow_list import FlowList
from .status_bar import StatusBar
from .task_tree import TaskTree
from .bridge import ConfigSaved


class ConfigAndSchedules:
    """flows.toml re-read when saved, and the schedules the UI fires while open."""

    def _quitting(self) -> bool:
        """The panes are gone (the app is closing) while a last timer tick or queued event still arrives."""
        return len(self.query("FlowList, TaskTree, StatusBar")) < 3

    def on_config_saved(self, message: ConfigSaved) -> None:
        """A saved flows.toml brings new schedules and parameters at once.

        One that does not load is shown (a ✗ row with its key path and line, and a notification);
        the last good config stays in use. [project], [cluster] and [notify] apply on restart.
        """
        if self._quitting():
            return
        try:
            self.config, restart = reload_config(self.config)
        except FlowsTuiError as error:
            self.config_error = error
            self.notify(f"{error} (the last good flows.toml stays in use)", title="flows.toml not reloaded",
                        severity="error", timeout=10)
        else:
            had_error, self.config_error = self.config_error is not None, None
            note = f"; restart flows-tui to apply [{'], ['.join(restart)}]" if restart else ""
            self.notify(f"flows.toml reloaded{' (fixed)' if had_error else ''}{note}", timeout=4)
            self._update_schedules()
        self._show_flows()

    def _update_schedules(self) -> None:
        """Schedules from flows.toml for the flows found, built once per change: the flows pane shows
        them, the scheduler fires them."""
        from flows_tui.project.catalog import flow_config_for

        self._schedules = {}
        for flow in self.directory.flows.values():
            schedule = Schedule.from_config(flow.name, flow_config_for(self.config, flow))
            if schedule is not None:
                self._schedules[flow.name] = schedule
        schedules = list(self._schedules.values())
        if not schedules or self.store is None or self.store.read_only is not None:
            if self.scheduled is not None:
                self.scheduled.set_schedules([])
            return
        if self.scheduled is None:  # fired as serve fires them, the runs followed here as `r`'s are
            from flows_tui.schedule.firing import ScheduledRuns

            self.scheduled = ScheduledRuns(self.launcher, self.store, "the flows-tui UI", self._scheduled_flow,
                                           log=self._schedule_log, ready=lambda: self._live_cluster() is not None,
                                           started=self._scheduled_run_started)
            self.scheduled.set_schedules(schedules)
            self.scheduled.start()
        else:
            self.scheduled.set_schedules(schedules)

    @property
    def scheduler(self) -> Any:
        """What the schedules are doing (next due times, pause, trigger); None while nothing is scheduled."""
        return self.scheduled.scheduler if self.scheduled is not None else None

    def _scheduled_flow(self, name: str) -> tuple[Any, str | None]:
        """On the scheduler's thread: the flow a due schedule runs, as loaded now (with no cluster,
        `ready` starts it first)."""
        if name not in self.directory.flows or (self.cluster is None and not self.connect_cluster):
            raise FlowsTuiError("the flow or the cluster is not available")
        flow = self.runnable.named(name)  # its file imported here, if it was not since its last save
        return flow, flow.file

    def _scheduled_run_started(self, engine: Any, due: _dt.datetime) -> None:
        self._started_here.add(engine.run_id)
        self.call_from_thread(self._follow_run, engine.run_id, engine.flow.name)

    def _schedule_log(self, message: str) -> None:
        self.call_from_thread(self.notify, message, title="schedule", timeout=6)

    def every_second(self) -> None:
        """Countdowns: next scheduled runs, retry delays, running durations."""
        if self._quitting():
            return
        status = self.query_one(StatusBar)
        if self.cluster is None and self.connect_cluster and not self._cluster_starting and self.cluster_error is None \
                and not self.launcher.starts_processes():  # a serve started since: its cluster, shown now
            self._ensure_cluster()
        if self._flow_clusters_shown or self.launcher.flow_clusters.in_use():
            self._show_flow_clusters()
        cluster = self.cluster
        if cluster is not None and cluster.lost != self._lost_shown and not self.launcher.reconnecting:
            self._lost_shown = not self._lost_shown
            if self._lost_shown and cluster.choice.serve_pid is not None:
                status.set_cluster(plain(f"cluster: serve (pid {cluster.choice.serve_pid}) stopped, and its cluster "
                                         "with it; the next run starts one here", "red"))
            elif self._lost_shown:
                status.set_cluster(plain(f"cluster: lost the Dask scheduler at {cluster.choice.address}; "
                                         "the next run reconnects", "red"))
            else:  # Dask's client found the scheduler again on its own
                self._refresh_cluster(cluster)
        if self.scheduler is not None:
            next_runs = self.scheduler.next_due()
            self.query_one(FlowList).set_next_runs(next_runs)
            upcoming = [(moment, flow) for flow, moment in next_runs.items() if moment is not None]
            if upcoming:
                moment, flow = min(upcoming)
                status.set_next_run(flow, moment)
            else:
                status.set_next_run(None, None)
        with self.bridge.lock:
            run = self.bridge.model.runs.get(self.shown_run or "")
            if run is not None and run.ended is None:  # durations and countdowns of a run in progress
                self.query_one(TaskTree).show_run(run, self.clock())
