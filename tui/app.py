"""The flows-tui application: flows, runs history, the run's task tree and logs, the cluster.

Data flows one way. Engine events reach the app through one bridge: a bus subscriber
folds them into a RunModel off the UI thread and posts at most ~20 `RunEvents` messages a
second; the handler redraws inside `batch_update()`. Reload events of the flows
directory arrive the same way. Blocking work (starting the cluster, loading history,
running a flow) runs in thread workers that only post messages or call back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as _dt
import gc
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.markup import escape as escape_markup
from textual.message import Message
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from flows_tui import breakpoints
from flows_tui.cache import cache_directory, cache_size
from flows_tui.engine.cluster import Cluster, choose_cluster
from flows_tui.errors import FlowFileError, FlowsTuiError
from flows_tui.launch.launcher import Interrupted, RunLauncher
from flows_tui.launch.runner import recording
from flows_tui.terminal import exit_now, silence_stderr, silence_terminal
from flows_tui.launch.watch_run import WatchRun
from flows_tui.project.catalog import flow_config_for
from flows_tui.project.config import Config, reload_config
from flows_tui.project.flows_directory import FlowsDirectory, FlowsReloaded
from flows_tui.project.schedules import Schedule
from flows_tui.project.watch import FlowsWatcher
from flows_tui.record import events as ev
from flows_tui.record.failure_lines import run_end_message
from flows_tui.record.model import FlowRun, RunModel
from flows_tui.record.retention import Retention
from flows_tui.record.store import RunSummary
from flows_tui.record.tail import JournalTail
from flows_tui.safe_text import plain, visible
from flows_tui.schedule.scheduler import ScheduleLock, Scheduler
from flows_tui.states import FINAL_STATES, RUNNING, SUCCESS_STATES, now
from flows_tui.tracebacks import display_path

from .flow_list import FlowList, FlowRow
from .log_view import Line, LogView
from .param_form import ParamForm
from .run_history import SHOWN_RUNS, RunHistory
from .screens import ConfirmScreen, FramePicker, HelpScreen, TextScreen, key_help
from .status_bar import StatusBar
from .task_tree import TaskTree
from . import terminal

# The bridge posts at most one batch per this many seconds: ~20 UI updates a second however
# fast a run reports; what arrives meanwhile joins the next batch.
UPDATE_INTERVAL = 0.05
FULL_COLLECTION_THRESHOLD = 100  # gc's third threshold while the UI runs (Python's default: 10)
NARROW_WIDTH = 110
CLOSE_SECONDS = 3.0
KEY_NAMES = {"slash": "/", "question_mark": "?"}  # how a key is written in the footer and in `?`


class RunEvents(Message):
    """Something happened in one or more runs since the last batch (the bridge holds what)."""


class ConfigSaved(Message):
    """flows.toml was saved."""


class FlowsChanged(Message):
    def __init__(self, event: FlowsReloaded) -> None:
        super().__init__()
        self.event = event


class Bridge:
    """Bus subscriber: folds events into a RunModel on the bus's thread, hands the UI batches."""

    def __init__(self, app: "FlowsApp") -> None:
        self.app = app
        self.lock = threading.Lock()
        self.model = RunModel()
        self._lines: list[Line] = []
        self._changed: set[str] = set()
        self._ended: list[tuple[str, str, str]] = []  # (run id, flow, state) of runs that ended
        self._posted = False
        self._last_post = 0.0

    def __call__(self, batch: list) -> None:
        with self.lock:
            for event in batch:
                self.model.apply(event)
                run_id = getattr(event, "run_id", None)
                if run_id is None:
                    continue
                self._changed.add(run_id)
                if isinstance(event, ev.LogLines):
                    self._lines.extend(self._line(run_id, line) for line in event.lines)
                elif isinstance(event, ev.FlowStateChanged) and event.state in FINAL_STATES:
                    run = self.model.runs.get(run_id)
                    if run is not None:
                        self._ended.append((run_id, run.flow, event.state))
            if self._posted:
                return
            self._posted = True
        wait = UPDATE_INTERVAL - (time.monotonic() - self._last_post)
        if wait > 0:
            time.sleep(wait)  # events keep queueing on the bus; the next drain takes them all
        self._last_post = time.monotonic()
        self.app.post_message(RunEvents())

    def _line(self, run_id: str, line: ev.LogLine) -> Line:
        run = self.model.runs.get(run_id)
        task_run = run.task_runs.get(line.task_run_id) if run is not None and line.task_run_id else None
        return Line(run_id, task_run.name if task_run else "flow", task_run.task if task_run else None, line)

    def take(self) -> tuple[set[str], list[Line], list[tuple[str, str, str]]]:
        with self.lock:
            self._posted = False
            changed, self._changed = self._changed, set()
            lines, self._lines = self._lines, []
            ended, self._ended = self._ended, []
            return changed, lines, ended


class FlowsCommands(Provider):
    """The command palette: every action, and every flow to run or open."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        """(text, what it does, help) for every action and every flow; the palette reads text as markup."""
        app = self.app
        assert isinstance(app, FlowsApp)
        commands: list[tuple[str, Any, str]] = [
            (name, lambda a=action: app.run_action(a), help_text)
            for name, (action, help_text) in app.palette_actions().items()]
        for flow in list(app.directory.flows.values()):
            for verb, action in (("run", "run"), ("run with parameters", "run_with_params")):
                # A flow's name is escaped for the palette's markup, and made visible.
                commands.append((escape_markup(visible(f"{verb} {flow.name}", one_line=True)),
                                 lambda f=flow.name, a=action: app.select_flow_and(f, a),
                                 escape_markup(visible(f"flow {flow.name}", one_line=True))))
        return commands

    async def discover(self) -> Hits:
        """An empty query lists the app's own commands first, then Textual's."""
        for text, command, help_text in self._commands():
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, help=help_text)


class FlowsApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "flows-tui"
    COMMANDS = App.COMMANDS | {FlowsCommands}
    # One registry of the app's actions: the bindings, the footer, `?` and the palette all come
    # from it. (key, action, footer label or None to keep it off the footer, what it does)
    ACTIONS = [
        ("r", "run", "Run", "Run the selected flow"),
        ("p", "run_with_params", "Params", "Run the selected flow with parameters (a form)"),
        ("R", "rerun", "Re-run", "Re-run the failed tasks of the run on screen (completed ones are reused)"),
        ("w", "watch", "Watch", "Watch-run the selected flow: run it on every save, reusing unchanged tasks"),
        ("c", "cancel", "Cancel", "Cancel the run in progress"),
        ("d", "debug", None, "Debug the task run under the cursor: here, with its inputs, in pdb"),
        ("e", "edit", None, "Open $EDITOR at the failing line (an attempt, a traceback, a broken file)"),
        ("l", "logs", "Logs", "Focus the logs"),
        ("slash", "filter", "Filter", "Filter the flows, or search the logs (esc clears)"),
        ("s", "toggle_schedule", None, "Pause or resume the selected flow's schedule"),
        ("t", "trigger", None, "Run the selected scheduled flow now"),
        ("z", "zoom", None, "Zoom the focused pane (again: all panes)"),
        ("f12", "save_screenshot", None, "Save a screenshot (SVG) under state_dir/screenshots"),
        ("question_mark", "help", "Help", "Show every key"),
        ("q", "quit", "Quit", "Quit (asks while a run is in progress)"),
    ]
    BINDINGS = [Binding(key, action, label or description, show=label is not None,
                        key_display=KEY_NAMES.get(key)) for key, action, label, description in ACTIONS] + [
        Binding("tab", "focus_next", "Next pane", show=False),
        Binding("shift+tab", "focus_previous", "Previous pane", show=False),
        # Ctrl-C quits, as in every terminal program (Textual's own says "press ctrl+q" instead).
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, config: Any, *, path: str | None = None, address: str | None = None,
                 cluster: str | None = None, bus: ev.EventBus | None = None, store: Any = None, watch: bool = True,
                 connect_cluster: bool = True) -> None:
        super().__init__()
        self.signalled: int | None = None  # SIGTERM, SIGHUP or SIGINT ended the UI (run_app exits 128 + it)
        self.config = config
        self.flows_dir = Path(path).resolve() if path else config.project.flows_dir
        self.bus = bus or ev.EventBus()
        # The cluster, the session whose results `R` and `w` reuse, and the runs in progress. A
        # saved flows.toml's [cluster] applies on restart, so the launcher keeps the config it began with.
        self.launcher = RunLauncher(choose_cluster(address, config, profile=cluster), config, self.bus, keep_results=True,
                                    behind_ui=True)
        self.cluster_error: FlowsTuiError | None = None  # the embedded cluster or the scheduler could not be had
        self._waiting_runs: list[tuple[Any, dict[str, Any], str | None]] = []  # r pressed while the cluster starts
        self._lost_shown = False  # the status bar says the scheduler was lost
        self._flow_clusters_shown = False  # the status bar lists flows' own clusters
        self.store = store
        self.bridge = Bridge(self)
        self.bus.subscribe(self.bridge, name="tui")
        self.directory = FlowsDirectory(self.flows_dir)
        self.watch_files = watch
        self.connect_cluster = connect_cluster
        self.clock = now  # what "now" is for durations and countdowns (tests pin it)
        self.shown_run: str | None = None  # the run in the tree and logs
        self.scheduler: Scheduler | None = None
        self._schedules: dict[str, Schedule] = {}  # flow → its schedule from flows.toml, as last built
        self.loaded = threading.Event()  # the first scan of the flows directory is done
        self._scheduled_runs = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="flows-tui-scheduled")
        self._filter_target = "flows"
        self._flows_shown = False
        self._last_run_of: dict[str, str] = {}  # flow → latest run id seen in this session
        self._started_here: set[str] = set()  # runs this UI started (their end is a notification)
        self._tail: JournalTail | None = None  # other processes' runs, from the store's journal
        self.watches: dict[str, WatchRun] = {}  # flow → its watch-run
        # flows.toml as last read: a save that does not load is shown, and the last good config stays.
        self.config_error: FlowsTuiError | None = None
        self._config_watch: FlowsWatcher | None = None
        self._retention: Retention | None = None  # [project] keep / keep_runs, once a day

    @property
    def cluster(self) -> Cluster | None:
        return self.launcher.cluster

    @property
    def session(self) -> Any:
        """Results of this session's runs, held on the cluster: `R`, `w` and `d` reuse them."""
        return self.launcher.session

    @property
    def engines(self) -> dict[str, Any]:
        """Run id → engine of the runs in progress."""
        return self.launcher.engines

    # Layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield FlowList(id="flows")
                yield RunHistory(id="runs")
            with Vertical(id="right"):
                yield TaskTree(id="tasks")
                yield LogView(id="logs")
        yield Input(placeholder="filter (as you type; enter keeps it, esc clears)", id="filter")
        yield StatusBar(id="status")
        yield Footer()

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Textual's notify, with the text shown as written: messages quote flows.toml keys
        ("[project] state_dir") and users' errors, which markup would eat or choke on; control
        characters in them (an escape sequence in a task's error) shown, never sent to the terminal."""
        super().notify(visible(message), title=visible(title, one_line=True), severity=severity, timeout=timeout,
                       markup=markup)

    def _stop_on_signals(self) -> None:
        """SIGTERM, SIGHUP (the terminal or SSH session closed) and SIGINT (Ctrl-C typed is a key
        here, but `kill -INT` or a signal to the process group is not) end the UI as `q` does: runs
        in progress are cancelled, recorded with the reason, and the terminal is given back as it
        was (alternate screen left, mouse reporting off). Before, the process died in the UI's
        screen, or (SIGINT during a run) left the screen and then waited for the run for ever."""
        loop = asyncio.get_running_loop()
        for signum, reason in ((signal.SIGTERM, "terminated (SIGTERM)"), (signal.SIGHUP, "terminal closed (SIGHUP)"),
                               (signal.SIGINT, "interrupted (Ctrl-C)")):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
                loop.add_signal_handler(signum, self._signalled, signum, reason)

    def _signalled(self, signum: int, reason: str) -> None:
        if self.signalled is not None:
            return
        self.signalled = signum
        if self.cluster is not None:  # the process exits at once after: a task that goes on may not hold it
            self.cluster.close_timeout = 0.5
        if signum == signal.SIGHUP:
            silence_terminal()  # writing to a closed terminal fails: the last frames go nowhere
        for engine in list(self.engines.values()):
            threading.Thread(target=engine.cancel, args=(reason,), daemon=True).start()
        self.exit()

    def on_mount(self) -> None:
        self._stop_on_signals()
        # Python's full garbage collections stop the UI thread for 0.3-1 s each once a run of
        # 10,000 tasks is in memory; ten times fewer of them took the keypress p95 during such a
        # run from about 200 ms to about 130 ms (tests/reliability/test_ui_load.py). Young
        # collections are unchanged; the thresholds are restored when the app ends.
        self._gc_thresholds = gc.get_threshold()
        young, middle, full = self._gc_thresholds
        gc.set_threshold(young, middle, max(full, FULL_COLLECTION_THRESHOLD))
        self.query_one("#flows").border_title = plain(f"flows · {self.flows_dir.name}", one_line=True)
        self.query_one("#runs").border_title = "runs"
        self.query_one("#tasks").border_title = "tasks"
        self.query_one("#logs").border_title = "logs"
        self.query_one("#filter").display = False
        self.query_one("#flows").border_subtitle = "loading…"  # until the flows are listed
        if not self.is_headless and self.console.color_system in ("standard", "windows"):  # 8 or 16 colours
            self.screen.add_class("few-colors")
        self._fit(self.size.width)
        self.query_one(FlowList).focus()
        self.load_flows()
        if self.connect_cluster:
            self.start_cluster()
        self.load_history()
        self._follow_project()
        self._watch_store()
        self.measure_cache()
        self.set_interval(1.0, self.every_second)
        self._say_config_warnings(self.config)
        # breakpoint() in a flow body run from here would wait for a terminal the UI holds: it says so instead.
        breakpoints.ui_holds_terminal = True
        breakpoints.install_breakpoint_hook()

    def _say_config_warnings(self, config: Config) -> None:
        """Once at start and after each reload of flows.toml: a toast each, and the status bar."""
        for warning in config.warnings:
            self.notify(warning, title="flows.toml", severity="warning", timeout=8)
        self.query_one(StatusBar).set_notify_off(config.notify.off)

    def on_resize(self, event: Any) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        self.set_class(width < NARROW_WIDTH, "narrow")
        # In 80 columns every footer key fits only without the palette's hint (ctrl+p is listed by `?`).
        self.query_one(Footer).show_command_palette = width >= NARROW_WIDTH

    # Blocking work, in threads ----------------------------------------------------------------

    @work(thread=True, exclusive=True, group="flows", exit_on_error=False)
    def load_flows(self) -> None:
        self._watch_config()
        if not self.flows_dir.exists():
            self.call_from_thread(self.notify, f"flows directory {self.flows_dir} does not exist", severity="error")
            self.call_from_thread(self._show_flows)
            return
        self.directory.subscribe(lambda event: self.post_message(FlowsChanged(event)))
        self.directory.load()
        self.loaded.set()
        self.call_from_thread(self._show_flows)  # an empty folder says what to do
        if self.watch_files:
            self.directory.watch()

    def _watch_config(self) -> None:
        """flows.toml's saves arrive as ConfigSaved messages (whether or not flow files are watched)."""
        path = self.config.path
        if path is None:
            return
        watch = FlowsWatcher(path.parent, lambda paths: self.post_message(ConfigSaved()), recursive=False, only=path)
        try:
            watch.start()
        except FlowsTuiError as error:
            self.call_from_thread(self.notify, f"{error}: flows.toml is read again on restart only",
                                  severity="warning")
            return
        self._config_watch = watch

    @work(thread=True, exclusive=True, group="cluster", exit_on_error=False)
    def start_cluster(self) -> None:
        try:
            cluster = self.launcher.connect()
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
        self._show_cluster(cluster)
        self.call_from_thread(self._start_waiting_runs)

    def _no_cluster(self) -> None:
        """`r`, `p`, `R` or `w` with no cluster yet: still starting, or unreachable (then connect again)."""
        error, self.cluster_error = self.cluster_error, None
        if error is None:
            self.notify("the cluster is still starting; try again in a moment", severity="warning")
            return
        self.notify(f"{error} (connecting again)", title="no cluster", severity="error", timeout=8)
        self.query_one(StatusBar).set_cluster(Text("cluster: connecting…", style="yellow"))
        self.start_cluster()

    def _show_cluster(self, cluster: Cluster) -> None:
        """On a thread: the cluster's size in the status bar."""
        info = cluster.info()
        text = plain(f"cluster: {info.describe()}")
        if cluster.choice.source != "default":  # where it came from: --cluster, a profile, the environment
            text.append(plain(f" · from {cluster.choice.source}"
                              + (f" (profile {cluster.choice.profile})" if cluster.choice.profile else "")))
        if info.dashboard:
            text.append(f" · {visible(info.dashboard, one_line=True)}", style="dim")
        self.call_from_thread(self.query_one(StatusBar).set_cluster, text)

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
        cluster = self.cluster
        if cluster is None or not cluster.lost:
            return cluster
        self._lost_shown = True
        status = self.query_one(StatusBar)
        address = cluster.choice.address
        self.call_from_thread(status.set_cluster, plain(f"cluster: reconnecting to {address}…", "yellow"))
        try:
            fresh = self.launcher.live_cluster()
        except FlowsTuiError as error:
            self.call_from_thread(status.set_cluster, plain(f"cluster: {error}", "red"))
            self.call_from_thread(self.notify, str(error), severity="error")
            return None
        if fresh is cluster:  # another run's thread reconnected meanwhile, or Dask's client found it again
            return fresh
        self._lost_shown = False
        self.call_from_thread(self.notify, f"reconnected to the Dask scheduler at {address}")
        try:
            self._show_cluster(fresh)
        except Exception:  # lost again already: the run says so
            pass
        return fresh

    def _follow_project(self) -> None:
        """Runs of other processes of the project (serve, `flows-tui run`, a script, another UI) reach
        the bridge from the store's journal, folded like this UI's own."""
        if self.store is None:
            return
        self._tail = JournalTail(self.store, self.bridge, recover=self.store.read_only is None)
        self._tail.start()

    def _watch_store(self) -> None:
        """A run store that cannot be written (read-only state_dir, full disk) is said, and the UI goes on."""
        if self.store is None:
            return
        self.store.on_problem = lambda message: self.call_from_thread(self.show_store_problem, message,
                                                                      "history incomplete")
        if self.store.read_only is not None:
            self.show_store_problem(f"{self.store.read_only}. Runs started here go on unrecorded, and schedules "
                                    "do not fire.", "runs not recorded")
        self._retention = Retention.for_project(self.store, self.config.project, self._history_pruned)

    def _history_pruned(self, message: str) -> None:
        """The retention thread removed old runs: say so, and show the runs that are left."""
        self.call_from_thread(self.notify, message, title="run history")
        self.call_from_thread(self.load_history)

    def show_store_problem(self, message: str, short: str) -> None:
        self.query_one(StatusBar).set_store_problem(short)
        self.notify(message, title="run history", severity="error", timeout=30)

    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def load_history(self) -> None:
        if self.store is None:
            return
        summaries = self.store.runs(limit=SHOWN_RUNS)
        self.call_from_thread(self.query_one(RunHistory).show, summaries)
        last: dict[str, str] = {}
        for summary in reversed(summaries):
            last[summary.flow] = summary.state
        self.call_from_thread(self._show_last_states, last)

    @work(thread=True, exclusive=True, group="cache", exit_on_error=False)
    def measure_cache(self) -> None:
        size = cache_size(cache_directory(self.config.project.state_dir))
        self.call_from_thread(self.query_one(StatusBar).set_cache_size, size)

    def _show_last_states(self, last: dict[str, str]) -> None:
        flows = self.query_one(FlowList)
        for flow, state in last.items():
            if flow not in flows.last_states:
                flows.set_last_state(flow, state)

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def open_stored_run(self, run_id: str) -> None:
        run = self.store.load_run(run_id)
        lines = [Line(run_id, stored.task or "flow", _task_of(run, stored.line.task_run_id), stored.line)
                 for stored in self.store.logs(run_id)]
        self.call_from_thread(self._show_stored_run, run, lines)

    def _show_stored_run(self, run: FlowRun, lines: list[Line]) -> None:
        self.shown_run = run.run_id
        with self.bridge.lock:  # a run in flight is folded live: its tree as it is now
            run = self.bridge.model.runs.get(run.run_id) or run
        with self.batch_update():
            self.query_one(TaskTree).show_run(run, self.clock())
            self.query_one(LogView).show_run(run.run_id, lines, title=_title(run))

    def start_run(self, flow: Any, parameters: dict[str, Any], file: str | None) -> None:
        if self.cluster is None and self.cluster_error is None and self.connect_cluster:
            # Still starting: the run waits for it (r pressed at launch runs as soon as it can).
            self._waiting_runs.append((flow, parameters, file))
            self.notify(f"{flow.name} runs as soon as the cluster is ready", timeout=4)
            return
        if self.cluster is None:
            self._no_cluster()
            return
        self._run_flow(flow, parameters, file)

    def _start_waiting_runs(self) -> None:
        """The cluster is ready: the runs asked for while it started, in order."""
        waiting, self._waiting_runs = self._waiting_runs, []
        for flow, parameters, file in waiting:
            self._run_flow(flow, parameters, file)

    @work(thread=True, group="runs", exit_on_error=False)
    def _run_flow(self, flow: Any, parameters: dict[str, Any], file: str | None) -> Any:
        return self._run_engine(flow, parameters, file)

    def _run_engine(self, flow: Any, parameters: dict[str, Any], file: str | None, *, reuse: bool = False) -> Any:
        """Run a flow to its end on this thread; the bridge shows it as it goes.

        Every run leaves its results in the session; with `reuse` (R, w) it also takes what
        the session holds instead of running those tasks again.
        """
        def started(engine: Any) -> None:
            self._started_here.add(engine.run_id)
            self.call_from_thread(self._follow_run, engine.run_id, flow.name)

        if self._live_cluster() is None:
            return None
        return self.launcher.launch(flow, parameters, file=file, reuse=reuse, on_engine=started)

    def _follow_run(self, run_id: str, flow: str) -> None:
        """A run this session started: show it as it goes."""
        self.shown_run = run_id
        self._last_run_of[flow] = run_id
        self.query_one(LogView).show_run(run_id, title=f"{flow} · {run_id}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.push_screen(TextScreen(f"{event.worker.name} failed",
                                        f"{type(error).__name__}: {error}" if error else "unknown error"))

    # Events -----------------------------------------------------------------------------------

    def on_run_events(self, message: RunEvents) -> None:
        changed, lines, ended = self.bridge.take()
        tree, logs = self.query_one(TaskTree), self.query_one(LogView)
        with self.batch_update():
            if self.shown_run in changed:
                with self.bridge.lock:
                    run = self.bridge.model.runs.get(self.shown_run)
                    if run is not None:
                        tree.show_run(run, self.clock())
            if lines:
                logs.add(lines)
            self._show_live_runs(changed)
            for run_id, flow, state in ended:
                if run_id in self._started_here or state not in SUCCESS_STATES:
                    severity = "information" if state in SUCCESS_STATES else "error"
                    self.notify(f"{flow}: {state}", severity=severity, timeout=4)
        if ended:
            self.load_history()
            self.measure_cache()

    def _show_live_runs(self, changed: set[str]) -> None:
        """The runs pane and the flows' last states follow every run of the project as it goes."""
        with self.bridge.lock:
            runs = [self.bridge.model.runs[run_id] for run_id in changed if run_id in self.bridge.model.runs]
            flows = {run.flow for run in runs}
            in_flight = {run.flow for run in self.bridge.model.runs.values() if run.flow in flows and run.ended is None}
        if not runs:
            return
        self.query_one(RunHistory).upsert([RunSummary(run.run_id, run.flow, run.state, run.started, run.ended)
                                           for run in runs])
        flow_list = self.query_one(FlowList)
        for run in sorted(runs, key=lambda run: run.started):
            flow_list.set_last_state(run.flow, RUNNING if run.flow in in_flight else run.state)

    def on_flows_changed(self, message: FlowsChanged) -> None:
        event = message.event
        first = not self._flows_shown  # the first scan: its errors are rows already, nothing was "reloaded"
        self._flows_shown = True
        self._update_schedules()
        self._show_flows()
        if first:
            self._show_plan_of_selected()
            return
        for error in event.failed:
            where = f"{Path(error.path).name}:{error.line}" if error.line else Path(error.path).name
            self.notify(f"{where}: {error.reason}", title="flow file failed to load", severity="error", timeout=6)
        changed = [*event.flows_added, *event.flows_changed]
        if changed:
            self.notify(f"reloaded: {', '.join(changed[:5])}", timeout=2)
        self._show_plan_of_selected()

    def _show_flows(self) -> None:
        rows: list[FlowRow] = []
        for loaded in self.directory.files:
            name = loaded.path.name
            for flow in loaded.flows.values():
                schedule = self._schedules.get(flow.name)
                rows.append(FlowRow(flow.name, name, flow=flow, schedule=schedule.describe() if schedule else None))
            if loaded.error is not None:
                rows.append(FlowRow(f"error:{loaded.path}", name, error=loaded.error))
        for duplicate in self.directory.duplicates:  # as `check` reports them: `r` could not tell them apart
            rows.append(FlowRow(f"error:{duplicate.path}:{duplicate.line}", duplicate.path.name,
                                error=FlowFileError(duplicate.message(lambda path: path.name), path=str(duplicate.path),
                                                    line=duplicate.line)))
        error = self.config_error
        if error is not None and self.config.path is not None:
            # A ✗ row like a broken flow file's: [key] reason in the list, file:line on enter.
            reason = f"[{error.key}] {error.reason}" if getattr(error, "key", None) else getattr(error, "reason", str(error))
            rows.append(FlowRow(f"error:{self.config.path}", self.config.path.name,
                                error=FlowFileError(reason, path=str(self.config.path), line=getattr(error, "line", None),
                                                    traceback=f"{error}\n\nThe last good flows.toml stays in use "
                                                              "until this is fixed and saved.")))
        if self.loaded.is_set() or not self.flows_dir.exists():
            self.query_one("#flows").border_subtitle = ""
        self.query_one(FlowList).show(rows, placeholder=self._no_flows_text() if not rows else ())

    def _no_flows_text(self) -> tuple[str, ...]:
        """What the empty flows pane says: still loading, or how to add a first flow."""
        try:
            folder = str(self.flows_dir.relative_to(self.config.root)) or "."
        except ValueError:
            folder = display_path(str(self.flows_dir))
        if not self.flows_dir.exists():
            return (f"no folder {folder}", "create it with a flow file,", "or run: flows-tui init")
        if not self.loaded.is_set():
            return ("loading flows…",)
        return (f"no flows in {folder}", "add a .py file with a @flow", "(README: A first flow),",
                "or run: flows-tui init")

    @on(FlowList.RowHighlighted, "#flows")
    def _flow_highlighted(self, event: FlowList.RowHighlighted) -> None:
        self._show_plan_of_selected()

    def _show_plan_of_selected(self) -> None:
        if self._quitting():
            return
        row = self.query_one(FlowList).current()
        if row is None or row.flow is None:
            return
        running = {e.run_id for e in self.engines.values() if e.flow.name == row.flow.name}
        if self.shown_run in running:
            return  # its run is on screen
        tree = self.query_one(TaskTree)
        run_id = self._last_run_of.get(row.key)
        if run_id is None and running:
            return  # just starting: _follow_run puts it on screen
        # Back on a flow whose run is in progress (after looking at another flow): its run again.
        if run_id is not None:
            with self.bridge.lock:
                run = self.bridge.model.runs.get(run_id)
                if run is not None:
                    self.shown_run = run_id
                    tree.show_run(run, self.clock())
            if run is not None:
                self._show_logs_of(run)
                return
        from flows_tui.project.plan import plan_flow

        self.shown_run = None
        self.query_one(LogView).show_run(None)  # the logs pane shows the run the tasks pane shows: none
        tree.show_plan(row.flow.name, plan_flow(row.flow))
        tree.border_subtitle = plain(row.file, one_line=True)

    def _show_logs_of(self, run: FlowRun) -> None:
        """The logs pane on `run` (its lines from the store), unless it shows that run already."""
        logs = self.query_one(LogView)
        if logs.run_id == run.run_id:
            return
        if self.store is None:  # the lines this session kept
            logs.show_run(run.run_id, [line for line in logs.lines if line.run_id == run.run_id], title=_title(run))
        else:
            self._load_logs(run)

    @work(thread=True, exclusive=True, group="logs", exit_on_error=False)
    def _load_logs(self, run: FlowRun) -> None:
        lines = [Line(run.run_id, stored.task or "flow", _task_of(run, stored.line.task_run_id), stored.line)
                 for stored in self.store.logs(run.run_id)]
        self.call_from_thread(self._show_loaded_logs, run, lines)

    def _show_loaded_logs(self, run: FlowRun, lines: list[Line]) -> None:
        if self.shown_run == run.run_id:  # still the run on screen
            self.query_one(LogView).show_run(run.run_id, lines, title=_title(run))

    @on(TaskTree.NodeHighlighted, "#tasks")
    def _task_highlighted(self, event: TaskTree.NodeHighlighted) -> None:
        tree = self.query_one(TaskTree)
        task_run_id, task = tree.selected_task()
        task_run = tree.flow_run.task_runs.get(task_run_id) if tree.flow_run is not None and task_run_id else None
        self.query_one(LogView).focus_task(task_run_id, task, name=task_run.name if task_run else task)

    @on(TaskTree.NodeSelected, "#tasks")
    def _task_selected(self, event: TaskTree.NodeSelected) -> None:
        """Enter on a task run: what it was given and returned (while held), its error and traceback."""
        tree = self.query_one(TaskTree)
        attempt = tree.selected_attempt()
        data = event.node.data
        run = tree.flow_run
        if event.node is tree.root and run is not None and run.ended is not None and run.state not in SUCCESS_STATES:
            tree.root.expand()  # enter toggled it; here it opens why the run failed instead
            self.push_screen(TextScreen(f"{run.flow}  {run.state}", run_end_message(run)))
        elif isinstance(data, tuple) and data[0] == "task_run" and run is not None and self.session is not None \
                and self.session.call_of(run.run_id, data[1]) is not None:
            self._show_task_run(run, run.task_runs[data[1]])
        elif attempt is not None and (attempt.traceback or attempt.error):
            self.push_screen(TextScreen(attempt.error or attempt.state, attempt.traceback or attempt.error))

    @work(thread=True, exclusive=True, group="inputs", exit_on_error=False)
    def _show_task_run(self, run: FlowRun, task_run: Any) -> None:
        """A task run's inputs and result, described on the cluster; its error and traceback below."""
        from flows_tui.launch.inputs import held_inputs, held_inputs_lines

        try:
            report = held_inputs(self.session, run.run_id, task_run.id)
        except Exception as error:  # the cluster went away meanwhile
            report, problem = None, f"its inputs could not be read from the cluster: {type(error).__name__}: {error}"
        else:
            problem = None if report is not None else "its inputs are no longer held on the cluster"
        lines = held_inputs_lines(report) if report is not None else [problem]
        attempt = task_run.attempts[-1] if task_run.attempts else None
        if task_run.error:
            lines += ["", f"error: {task_run.error}"]
        if attempt is not None and attempt.traceback:
            lines += ["", attempt.traceback]
        lines += ["", f"d debugs it here; flows-tui debug {run.run_id} {task_run.name} --inputs prints them"]
        self.call_from_thread(self.push_screen, TextScreen(f"{task_run.name}  {task_run.state}", "\n".join(lines),
                                                           error=bool(task_run.error)))

    @on(RunHistory.RowSelected, "#runs")
    def _run_selected(self, event: RunHistory.RowSelected) -> None:
        run_id = self.query_one(RunHistory).selected_run()
        if run_id is None:
            return
        with self.bridge.lock:
            live = self.bridge.model.runs.get(run_id)
        if live is not None and self.store is None:
            self.shown_run = run_id
            self.query_one(TaskTree).show_run(live, self.clock())
            return
        if self.store is not None:
            self.open_stored_run(run_id)

    @on(FlowList.RowSelected, "#flows")
    def _flow_selected(self, event: FlowList.RowSelected) -> None:
        row = self.query_one(FlowList).current()
        if row is None:
            return
        if row.error is not None:
            error = row.error
            where = f"{row.file}:{error.line}" if getattr(error, "line", None) else row.file
            self.push_screen(TextScreen(f"{where}: {error.reason}", error.traceback or str(error),
                                        location=(error.path, getattr(error, "line", None))))
        else:
            self.query_one(TaskTree).focus()

    # flows.toml, re-read when saved -------------------------------------------------------------

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

    # Schedules ----------------------------------------------------------------------------------

    def _update_schedules(self) -> None:
        """Schedules from flows.toml for the flows found, built once per change: the flows pane shows
        them, the scheduler fires them."""
        self._schedules = {}
        for flow in self.directory.flows.values():
            schedule = Schedule.from_config(flow.name, flow_config_for(self.config, flow))
            if schedule is not None:
                self._schedules[flow.name] = schedule
        schedules = list(self._schedules.values())
        if not schedules or self.store is None or self.store.read_only is not None:
            if self.scheduler is not None:
                self.scheduler.set_schedules([])
            return
        if self.scheduler is None:
            lock = ScheduleLock(self.config.project.state_dir, "the flows-tui UI")
            self.scheduler = Scheduler(self.store, self._scheduled_run, log=self._schedule_log, lock=lock)
            self.scheduler.set_schedules(schedules)
            self.scheduler.start()
        else:
            self.scheduler.set_schedules(schedules)

    def _scheduled_run(self, schedule: Schedule, due: _dt.datetime) -> Any:
        """On the scheduler's thread: start the run as `r` would; the future tells it when it ended."""
        flow = self.directory.flows.get(schedule.flow)
        if flow is None or self.cluster is None:
            raise FlowsTuiError("the flow or the cluster is not available")
        parameters = flow.validate(dict(schedule.parameters))
        return self._scheduled_runs.submit(self._run_engine, flow, parameters, flow.file)

    def _schedule_log(self, message: str) -> None:
        self.call_from_thread(self.notify, message, title="schedule", timeout=6)

    def every_second(self) -> None:
        """Countdowns: next scheduled runs, retry delays, running durations."""
        if self._quitting():
            return
        status = self.query_one(StatusBar)
        if self._flow_clusters_shown or self.launcher.flow_clusters.in_use():
            self._show_flow_clusters()
        cluster = self.cluster
        if cluster is not None and cluster.lost != self._lost_shown and not self.launcher.reconnecting:
            self._lost_shown = not self._lost_shown
            if self._lost_shown:
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

    # Actions ----------------------------------------------------------------------------------

    def _selected_flow(self) -> Any:
        row = self.query_one(FlowList).current()
        if row is None:
            waiting = self.flows_dir.exists() and not self.loaded.is_set()
            self.notify("the flows are still loading; press it again in a moment" if waiting else "no flow selected",
                        severity="warning")
            return None
        if row.flow is None:
            self.notify(f"{row.file} does not load: {row.error.reason}", severity="error")
            return None
        return row.flow

    def _values(self, flow: Any) -> dict[str, Any]:
        flow_config = flow_config_for(self.config, flow)
        return dict(flow_config.parameters) if flow_config else {}

    def action_run(self) -> None:
        flow = self._selected_flow()
        if flow is None:
            return
        try:
            parameters = flow.validate(self._values(flow))
        except FlowsTuiError as error:
            self.notify(f"{error} (press p to give parameters)", severity="error")
            return
        self.start_run(flow, parameters, flow.file)

    def action_run_with_params(self) -> None:
        flow = self._selected_flow()
        if flow is None:
            return

        def chosen(values: dict | None) -> None:
            if values is not None:
                self.start_run(flow, values, flow.file)

        self.push_screen(ParamForm(flow, self._values(flow)), chosen)

    def action_rerun(self) -> None:
        run_id = self.shown_run
        if run_id is None:
            self.notify("no run on screen: open one (runs pane, enter) to re-run its failed tasks", severity="warning")
        elif run_id in self.engines:
            self.notify("this run is still in progress", severity="warning")
        elif self.cluster is None:
            self._no_cluster()
        else:
            self._rerun(run_id)

    @work(thread=True, group="runs", exit_on_error=False)
    def _rerun(self, run_id: str) -> Any:
        """The flow of `run_id` again, on its parameters; what it completed is reused, the rest runs."""
        with self.bridge.lock:
            run = self.bridge.model.runs.get(run_id)
        if run is None and self.store is not None:
            run = self.store.load_run(run_id)
        if run is None:
            return None
        if run.state in SUCCESS_STATES:
            self.call_from_thread(self.notify, f"run {run_id} completed: nothing to re-run (r runs the flow again)")
            return None
        flow = self.directory.flows.get(run.flow)
        if flow is None:
            self.call_from_thread(self.notify, f"flow {run.flow} is not in the flows directory any more",
                                  severity="error")
            return None
        try:
            parameters = flow.validate(run.parameters)
        except FlowsTuiError as error:
            self.call_from_thread(self.notify, str(error), severity="error")
            return None
        if self.session is not None and self.session.holds(run_id):
            self.call_from_thread(self.notify, f"re-running {run.flow}: what run {run_id} completed is reused")
        else:
            # Results of an earlier session, or of an older run, are gone with that cluster's memory.
            self.call_from_thread(self.notify, f"re-running {run.flow}: run {run_id}'s results are not held in "
                                               "memory; only cached results are reused", severity="warning")
        return self._run_engine(flow, parameters, flow.file, reuse=True)

    def action_watch(self) -> None:
        flow = self._selected_flow()
        if flow is None:
            return
        watch = self.watches.pop(flow.name, None)
        if watch is not None:
            watch.stop(timeout=0)  # a run in progress finishes
            self.notify(f"stopped watching {flow.name}")
        elif self.cluster is None:
            self._no_cluster()
            return
        else:
            watch = self.watches[flow.name] = WatchRun(self.directory, flow.name, self._watch_run_once,
                                                       on_missing=self._watched_flow_missing)
            watch.start()
            self.notify(f"watching {flow.name}: every save runs it again, reusing unchanged tasks")
        self.query_one(FlowList).set_watching(set(self.watches))

    def _watch_run_once(self, flow: Any) -> None:
        """On the watch-run's thread: one run with the session, on the flow as last saved."""
        try:
            parameters = flow.validate(self._values(flow))
        except FlowsTuiError as error:
            self.call_from_thread(self.notify, f"{flow.name} not run: {error}", severity="error")
            return
        self._run_engine(flow, parameters, flow.file, reuse=True)

    def _watched_flow_missing(self, name: str) -> None:
        self.call_from_thread(self.notify, f"watched flow {name} is not in the flows directory any more",
                              severity="warning")

    def action_cancel(self) -> None:
        engine = self.engines.get(self.shown_run or "")
        with self.bridge.lock:
            shown = self.bridge.model.runs.get(self.shown_run or "")
        if engine is None and shown is not None and shown.ended is None and self.store is not None:
            # Another process's run on screen: its owner is asked through the store.
            self.notify(f"asking the process that runs {shown.flow} ({shown.run_id}) to cancel it")
            self._cancel_elsewhere(shown.run_id)
            return
        engine = engine or next(iter(self.engines.values()), None)
        if engine is None:
            self.notify("no run in progress", severity="warning")
            return
        threading.Thread(target=engine.cancel, args=("cancelled from the UI",), daemon=True).start()
        self.notify(f"cancelling {engine.flow.name} ({engine.run_id})")

    @work(thread=True, group="cancel", exit_on_error=False)
    def _cancel_elsewhere(self, run_id: str) -> None:
        from flows_tui.launch.requests import cancel_run

        outcome = cancel_run(self.store, run_id)
        self.call_from_thread(self.notify, outcome.message, severity="information" if outcome.cancelled else "error",
                              timeout=6)

    def action_debug(self) -> None:
        tree = self.query_one(TaskTree)
        run = tree.flow_run
        task_run_id, _ = tree.selected_task()
        task_run = run.task_runs.get(task_run_id) if run is not None and task_run_id else None
        if task_run is None:
            self.notify("put the cursor on a task run in the tasks pane (d debugs it)", severity="warning")
        elif not task_run.is_final:
            self.notify(f"{task_run.name} has not finished yet", severity="warning")
        elif self.cluster is None:
            self._no_cluster()
        else:
            self.notify(f"running {run.flow} again up to {task_run.name} to debug it…", timeout=3)
            self._reach_for_debug(run, task_run)

    @work(thread=True, exclusive=True, group="debug", exit_on_error=False)
    def _reach_for_debug(self, run: FlowRun, task_run: Any) -> None:
        """Get the task run's inputs (held results, the cache, or computed again), then the debugger."""
        from flows_tui.launch.debug import Target, input_lines, reach, reach_held

        flow = self.directory.flows.get(run.flow)
        cluster = self._live_cluster()
        try:
            if flow is None:
                raise FlowsTuiError(f"flow {run.flow} is not in the flows directory any more")
            if cluster is None:
                return
            # The run's own arguments and upstream results while the session holds them; else a re-run.
            reached = reach_held(self.session, run.run_id, task_run, flow) or \
                reach(flow, flow.validate(run.parameters), run.run_id, Target.of(run, task_run),
                      client=cluster.client, cache_dir=cache_directory(self.config.project.state_dir),
                      session=self.session, log_level=self.config.project.log_level,
                      say=lambda text: self.call_from_thread(self.notify, text))
        except FlowsTuiError as error:
            self.call_from_thread(self.notify, str(error), title="debug", severity="error", timeout=8)
            return
        lines = [f"debugging {task_run.name} of run {run.run_id} ({run.flow}); the UI comes back after"] + \
            input_lines(reached)
        self.call_from_thread(self._debug_in_terminal, reached, lines)

    def _debug_in_terminal(self, reached: Any, lines: list[str]) -> None:
        problem = terminal.debug_here(self, reached, [visible(line) for line in lines],
                                      self.config.project.log_level)
        if problem:
            self.notify(problem, severity="error")

    def action_edit(self) -> None:
        where = terminal.where_to_edit(self)
        if isinstance(where, str):
            self.notify(where, severity="warning")
        elif isinstance(where, list):  # a traceback's frames: which one?
            shown = [f"{visible(display_path(path), one_line=True)}:{line}" for path, line in where]
            self.push_screen(FramePicker(where, shown), lambda chosen: chosen and self._edit_at(*chosen))
        else:
            self._edit_at(*where)

    def _edit_at(self, path: str, line: int | None) -> None:
        problem = terminal.edit(self, path, line)
        if problem:
            self.notify(problem, severity="error")
        if not self.watch_files:  # else the watcher has reloaded the save already
            self.directory.reload([path])

    def action_logs(self) -> None:
        logs = self.query_one(LogView)
        logs.output.focus()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        self._filter_target = "logs" if self._in(LogView) or self._in(TaskTree) else "flows"
        box.placeholder = ("search the logs" if self._filter_target == "logs" else "filter flows") + \
            " (as you type; enter keeps it, esc clears)"
        current = self.query_one(LogView).search if self._filter_target == "logs" else self.query_one(FlowList).filter
        with box.prevent(Input.Changed):
            box.value = current
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        """As you type: the list (or the log search) follows each key."""
        self._set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._set_filter(event.value)
        self._close_filter()

    def _set_filter(self, text: str) -> None:
        if self._filter_target == "logs":
            self.query_one(LogView).set_search(text)
            return
        flows = self.query_one(FlowList)
        if flows.filter != text:
            flows.filter = text
            self._show_flows()
        title = f"flows · {self.flows_dir.name}" + (f" · /{text}" if text else "")
        self.query_one("#flows").border_title = plain(title, one_line=True)

    def _close_filter(self) -> None:
        self.query_one("#filter", Input).display = False
        target: Any = self.query_one(LogView).output if self._filter_target == "logs" else self.query_one(FlowList)
        target.focus()

    def on_key(self, event: Any) -> None:
        if event.key != "escape":
            return
        box = self.query_one("#filter", Input)
        if box.has_focus:
            self._set_filter("")
            self._close_filter()
            event.stop()
        elif self.query_one(FlowList).filter and self._in(FlowList):  # esc in the filtered pane clears it
            self._filter_target = "flows"
            self._set_filter("")
            event.stop()

    def _in(self, kind: type) -> bool:
        node = self.focused
        while node is not None:
            if isinstance(node, kind):
                return True
            node = node.parent
        return False

    def action_toggle_schedule(self) -> None:
        flow = self._selected_flow()
        if flow is None:
            return
        if self.scheduler is None or flow.name not in self.scheduler.next_due():
            self.notify(f"{flow.name} has no schedule ([flows.{flow.name}] cron or interval in flows.toml)",
                        severity="warning")
            return
        paused = self.scheduler.next_due()[flow.name] is not None
        self.scheduler.pause(flow.name, paused)
        self.notify(f"schedule of {flow.name} {'paused' if paused else 'resumed'}")
        self.every_second()

    def action_trigger(self) -> None:
        flow = self._selected_flow()
        if flow is None:
            return
        if self.scheduler is None or flow.name not in self.scheduler.next_due():
            self.action_run()
            return
        self.scheduler.trigger(flow.name)

    def action_zoom(self) -> None:
        """The focused pane alone on screen, or back to all panes."""
        panes = list(self.query("#flows, #runs, #tasks, #logs"))
        left = self.query_one("#left")
        if self.has_class("zoomed"):
            self.remove_class("zoomed")
            for widget in (*panes, left, self.query_one("#right")):
                widget.display = True
            left.styles.width = None
            return
        target = next((pane for pane in panes if self._contains_focus(pane)), None)
        if target is None:
            return
        self.add_class("zoomed")
        for pane in panes:
            pane.display = pane is target
        in_left = target.parent is left
        left.display = in_left
        self.query_one("#right").display = not in_left
        if in_left:
            left.styles.width = "1fr"

    def _contains_focus(self, pane: Any) -> bool:
        node = self.focused
        while node is not None:
            if node is pane:
                return True
            node = node.parent
        return False

    def action_save_screenshot(self) -> None:
        """An SVG of the screen under state_dir/screenshots (not in the project's own files), said where."""
        folder = self.config.project.state_dir / "screenshots"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = self.save_screenshot(path=str(folder))
        except OSError as error:
            self.notify(f"screenshot not saved: {error}", severity="error")
            return
        self.notify(f"screenshot saved: {display_path(path)}", timeout=5)

    def action_help(self) -> None:
        # The short form of each description (before its colon or parenthesis): the palette has the rest.
        everywhere = [(KEY_NAMES.get(key, key), re.split(r"[:(]", description)[0].strip())
                      for key, _, _, description in self.ACTIONS]
        sections = [
            ("Everywhere", everywhere + [("ctrl+p", "Command palette: every action and flow"),
                                         ("tab / shift+tab", "Next / previous pane"), ("ctrl+c", "Quit")]),
            ("Flows", [("j/k ↑/↓", "Move"), ("enter", "The task tree, or a broken file's traceback"),
                       ("esc", "Clear the filter")]),
            ("Runs", [("j/k g/G", "Move"), ("enter", "Open the run: its tree and logs")]),
            ("Tasks", [("j/k g/G", "Move; the logs follow the task"), ("space", "Expand or collapse"),
                       ("enter", "Inputs, result and traceback; on … more, more"),
                       ("d", "Debug the task run here, with its inputs"),
                       ("e", "Open the editor at the failing line")]),
            ("Logs", [("j/k g/G", "Scroll"), ("/", "Search as you type (esc clears)")]
             + key_help(LogView.BINDINGS)),
        ]
        self.push_screen(HelpScreen(sections))

    def palette_actions(self) -> dict[str, tuple[str, str]]:
        """What the command palette offers besides the flows: description → (action, key)."""
        return {description: (action, KEY_NAMES.get(key, key)) for key, action, _, description in self.ACTIONS}

    async def select_flow_and(self, flow_name: str, action: str) -> None:
        """The palette's "run NAME": select the flow, then do it (run_action is a coroutine: awaited)."""
        flows = self.query_one(FlowList)
        try:
            flows.move_cursor(row=flows.get_row_index(flow_name))
        except Exception:
            self.notify(f"flow {flow_name} is not listed", severity="warning")
            return
        await self.run_action(action)

    async def action_quit(self) -> None:
        if not self.engines:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                for engine in list(self.engines.values()):
                    threading.Thread(target=engine.cancel, args=("flows-tui was closed",), daemon=True).start()
                self.exit()

        if getattr(self.screen, "asks_to_quit", False):  # asked already: a second q or ctrl+c means yes
            answered(True)
            return
        question = ConfirmScreen(f"{len(self.engines)} run(s) in progress. Cancel them and quit? "
                                 "(y, or ctrl+c again)")
        question.asks_to_quit = True
        self.push_screen(question, answered)

    def on_unmount(self) -> None:
        gc.set_threshold(*self._gc_thresholds)
        if self._tail is not None:
            self._tail.stop()
        breakpoints.ui_holds_terminal = False
        for watch in self.watches.values():
            watch.stop(timeout=0)
        if self.scheduler is not None:
            self.scheduler.stop()
        if self._retention is not None:
            self._retention.stop(timeout=0)
        self.directory.stop()
        if self._config_watch is not None:
            self._config_watch.stop(timeout=0)
        for engine in list(self.engines.values()):
            engine.cancel("flows-tui was closed")
        self._scheduled_runs.shutdown(wait=False)
        # A thread worker still busy with a cancelled task would hold the close until the task
        # returns: give it a moment, then leave it to the end of the process. A cluster still
        # starting (q pressed meanwhile) is closed when it is up, or ends with the process.
        closing = threading.Thread(target=_close_quietly, args=(self.launcher,), name="flows-tui-close", daemon=True)
        closing.start()
        closing.join(CLOSE_SECONDS)


def _close_quietly(launcher: RunLauncher) -> None:
    try:
        launcher.close()
    except BaseException:  # the process may be ending under it; nothing is left to tell
        pass


def _title(run: FlowRun) -> str:
    """How the logs pane names a run: its flow and the run's name."""
    return f"{run.flow} · {run.name or run.run_id}"


def _task_of(run: FlowRun, task_run_id: str | None) -> str | None:
    task_run = run.task_runs.get(task_run_id) if task_run_id else None
    return task_run.task if task_run else None


def run_app(config: Any, *, path: str | None = None, address: str | None = None, cluster: str | None = None) -> int:
    # Worker processes need multiprocessing's resource tracker, which is started with our
    # stderr's file descriptor: start it now, before Textual replaces sys.stderr.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    bus = ev.EventBus()
    # Every run the UI starts is stored, as with `flows-tui run`; if the store cannot be written, unrecorded.
    with recording(bus, config, unrecorded_ok=True) as store:
        app = FlowsApp(config, path=path, address=address, cluster=cluster, bus=bus, store=store)
        app.run()
    status = 128 + app.signalled if app.signalled is not None else 0
    if app.launcher.abandoned:  # quit while the cluster was starting: it must not hold the exit
        silence_stderr()
        exit_now(status)
    return status

