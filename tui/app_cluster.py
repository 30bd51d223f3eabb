"""The cluster: starting or attaching to it, and what the status bar says of it.

A part of FlowsApp (tui/app.py), which mixes it in: `self` is the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work

from flows_tui.errors import FlowsTuiError
from flows_tui.safe_text import plain, visible

from .status_bar import StatusBar

if TYPE_CHECKING:
    from flows_tui.engine.cluster import Cluster


class ClusterPane:
    """The cluster: starting or attaching to it, and what the status bar says of it."""

    def _open_cluster(self) -> None:
        """At start: attach (an address, serve's cluster) or start a cluster of threads now; worker
        processes of our own wait for a first run, so a UI opened to watch starts none."""
        if self.launcher.starts_processes():
            self.query_one(StatusBar).set_cluster(Text("cluster: a LocalCluster starts with the first run", style="dim"))
            return
        self._ensure_cluster()

    def _ensure_cluster(self) -> None:
        """Start (or attach to) the cluster unless it is up or on its way."""
        if self.cluster is None and not self._cluster_starting:
            self._cluster_starting = True
            self.query_one(StatusBar).set_cluster(Text("cluster: starting…", style="yellow"))
            self.start_cluster()

    @work(thread=True, exclusive=True, group="cluster", exit_on_error=False)
    def start_cluster(self) -> None:
        from flows_tui.launch.launcher import Interrupted

        try:
            cluster = self.launcher.live_cluster()  # one start at a time, with the runs' threads
        except Interrupted:  # the UI is closing
            return
        except FlowsTuiError as error:
            self.cluster_error = error
            self.call_from_thread(self.query_one(StatusBar).set_cluster, plain(f"cluster: {error}", "red"))
            if self._waiting_runs:
                self.call_from_thread(self.notify, f"{len(self._waiting_runs)} run(s) not started: {error}",
                                      severity="error", timeout=8)
                self._waiting_runs = []
            return
        finally:
            self._cluster_starting = False
        self._show_cluster(cluster)
        self.call_from_thread(self._start_waiting_runs)

    def _no_cluster(self) -> None:
        """`r`, `p`, `R` or `w` with no cluster yet: still starting, or unreachable (then connect again)."""
        error, self.cluster_error = self.cluster_error, None
        if error is None:
            starting = self._cluster_starting or not self.connect_cluster
            self.notify("the cluster is still starting; try again in a moment" if starting else
                        "starting the cluster; try again in a moment", severity="warning")
            if self.connect_cluster:
                self._ensure_cluster()
            return
        self.notify(f"{error} (connecting again)", title="no cluster", severity="error", timeout=8)
        self.query_one(StatusBar).set_cluster(Text("cluster: connecting…", style="yellow"))
        self.start_cluster()

    def _show_cluster(self, cluster: Cluster) -> None:
        """On a thread: the cluster's size in the status bar."""
        info = cluster.info()
        text = plain(f"cluster: {info.describe()}")
        if cluster.choice.serve_pid is not None:  # launch.shared_cluster
            text = plain(f"cluster: serve's cluster (pid {cluster.choice.serve_pid}) at {info.describe()}")
        elif cluster.choice.source != "default":  # where it came from: --cluster, a profile, the environment
            text.append(plain(f" · from {cluster.choice.source}"
                              + (f" (profile {cluster.choice.profile})" if cluster.choice.profile else "")))
        self.call_from_thread(self.query_one(StatusBar).set_cluster, text, info.dashboard)

    @work(thread=True, exclusive=True, group="flow-clusters", exit_on_error=False)
    def _show_flow_clusters(self) -> None:
        """On a thread: the clusters of flows that choose their own, as they scale, in the status bar."""
        parts = []
        for cluster in self.launcher.flow_clusters.in_use():
            try:
                info = cluster.info()
            except Exception:  # closing meanwhile
                continue
            part = plain(info.in_use(cluster.choice.profile))
            if info.dashboard:
                part.append(f" · {visible(info.dashboard, one_line=True)}", style="dim")
            parts.append(part)
        text = Text("  ·  also ").join(parts) if parts else None
        if text is not None or self._flow_clusters_shown:
            self._flow_clusters_shown = text is not None
            self.call_from_thread(self.query_one(StatusBar).set_flow_clusters, text)

    @work(thread=True, exclusive=True, group="cluster-info", exit_on_error=False)
    def _refresh_cluster(self, cluster: Cluster) -> None:
        try:
            self._show_cluster(cluster)
        except Exception:  # lost again: the next second says so
            pass

    def _live_cluster(self) -> Cluster | None:
        """On a run's thread: the cluster, connected afresh first if the attached scheduler was lost.

        A run that was in progress when the scheduler went away ended Crashed; the next run
        reconnects to the same address (the scheduler restarted) or says it is unreachable.
        """
        from flows_tui.launch.launcher import Interrupted
        from flows_tui.launch.shared_cluster import still_served

        cluster = self.cluster
        if cluster is None and not self.connect_cluster:
            return None
        if cluster is not None and not cluster.lost and still_served(cluster.choice):
            return cluster
        status = self.query_one(StatusBar)
        address = cluster.choice.address if cluster is not None else None
        if cluster is None:  # a scheduled run, or `t`, before any run started the cluster
            self.call_from_thread(status.set_cluster, Text("cluster: starting…", style="yellow"))
        elif cluster.choice.serve_pid is not None:
            self.call_from_thread(status.set_cluster, plain(f"cluster: serve (pid {cluster.choice.serve_pid}) "
                                                            "stopped; starting one here…", "yellow"))
        else:
            self._lost_shown = True
            self.call_from_thread(status.set_cluster, plain(f"cluster: reconnecting to {address}…", "yellow"))
        try:
            fresh = self.launcher.live_cluster()
        except Interrupted:  # the UI is closing
            return None
        except FlowsTuiError as error:
            self.call_from_thread(status.set_cluster, plain(f"cluster: {error}", "red"))
            self.call_from_thread(self.notify, str(error), severity="error")
            return None
        if fresh is cluster:  # another run's thread reconnected meanwhile, or Dask's client found it again
            return fresh
        self._lost_shown = False
        if cluster is not None and cluster.choice.serve_pid is None:
            self.call_from_thread(self.notify, f"reconnected to the Dask scheduler at {address}")
        try:
            self._show_cluster(fresh)
        except Exception:  # lost again already: the run says so
            pass
        return fresh
