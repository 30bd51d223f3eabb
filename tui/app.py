"""The flows-tui application: flows, runs history, the run's task tree and logs, the cluster.

Data flows one way. Engine events reach the app through one bridge: a bus subscriber
folds them into a RunModel off the UI thread and posts at most ~20 `RunEvents` messages a
second; the handler redraws inside `batch_update()`. Reload events of the flows
directory arrive the same way. Blocking work (starting the cluster, loading history,
running a flow) runs in thread workers that only post messages or call back.

FlowsApp is composed here (its keys, panes, start and end) from parts, one module each:
the cluster (`app_cluster`), the project's runs and history (`app_history`), the runs it
starts (`app_runs`), what the panes show (`app_panes`), flows.toml and schedules
(`app_schedules`), the actions its keys call (`app_actions`); the bridge and the app's
messages are in `bridge`. Handlers bound with `@on(...)` stay in this class: Textual
collects them from the class that defines them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.markup import escape as escape_markup
from textual.widgets import Input

# Only what the first frame needs is imported here: the engine, the launcher, the store, the flows
# directory (its import server), file watching and the schedules are imported after the first frame,
# on a thread (`warm_up`), or on first use; `import flows_tui.tui.app` imports no Dask.
from flows_tui import breakpoints
from flows_tui.errors import FlowsTuiError
from flows_tui.terminal import exit_now, silence_stderr, silence_terminal
from flows_tui.project.config import Config
from flows_tui.project.schedules import Schedule
from flows_tui.record import events as ev
from flows_tui.record.failure_lines import run_end_message
from flows_tui.safe_text import plain, visible
from flows_tui.states import SUCCESS_STATES, now

from .driver import driver_class
from .flow_list import FlowList
from .footer import Footer
from .log_view import LogView
from .run_history import RunHistory
from .screens import ConfirmScreen, TextScreen
from .status_bar import StatusBar
from .task_tree import TaskTree
from .app_cluster import ClusterPane
from .app_history import HistoryPane
from .app_runs import RunsInProgress
from .app_panes import PaneContents
from .app_schedules import ConfigAndSchedules
from .app_actions import Actions
from .app_start import StartUp
from .bridge import (FULL_COLLECTION_THRESHOLD, NARROW_WIDTH, CLOSE_SECONDS, KEY_NAMES, Bridge,
                     _close_quietly)
from .bridge import FULL_COLLECTION_EVERY, FULL_COLLECTION_IDLE, FULL_COLLECTION_LATEST

FIRST_FRAME_LISTING = 0.05  # seconds the first frame waits at most for the flows' names (else: after it)

if TYPE_CHECKING:
    from flows_tui.launch.launcher import RunLauncher
    from flows_tui.launch.watch_run import WatchRun
    from flows_tui.project.flows_directory import FlowsDirectory
    from flows_tui.project.runnable_flows import RunnableFlows
    from flows_tui.project.watch import FlowsWatcher
    from flows_tui.record.retention import Retention
    from flows_tui.record.tail import JournalTail
    from flows_tui.schedule.firing import ScheduledRuns


class FlowsCommands(Provider):
    """The command palette: every action, and every flow to run or open."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        """(text, what it does, help) for every action and every flow; the palette reads text as markup."""
        app = self.app
        assert isinstance(app, FlowsApp)
        commands: list[tuple[str, Any, str]] = [
            (name, lambda a=action: app.run_action(a), help_text)
            for name, (action, help_text) in app.palette_actions().items()]
        for flow in list(app._directory.flows.values() if app._directory is not None else ()):
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


class FlowsApp(StartUp, ClusterPane, HistoryPane, RunsInProgress, PaneContents, ConfigAndSchedules, Actions, App):
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

    def get_driver_class(self) -> Any:
        """Textual's driver, its output kept alive when the terminal hangs up (see `driver`)."""
        return driver_class() or super().get_driver_class()

    def __init__(self, config: Any, *, path: str | None = None, address: str | None = None,
                 cluster: str | None = None, bus: ev.EventBus | None = None, store: Any = None, watch: bool = True,
                 connect_cluster: bool = True, open_store: Callable[[], ContextManager[Any]] | None = None) -> None:
        """`store`: the run store, open; or `open_store`: how to open it (`recording`), which the UI does
        after its first frame, as it imports the engine (see `warm_up`), and closes in `close_store`."""
        super().__init__()
        self.signalled: int | None = None  # SIGTERM, SIGHUP or SIGINT ended the UI (run_app exits 128 + it)
        self.config = config
        self.flows_dir = Path(path).resolve() if path else config.project.flows_dir
        self.bus = bus or ev.EventBus()
        # The cluster, the session whose results `R` and `w` reuse, and the runs in progress. A
        # saved flows.toml's [cluster] applies on restart, so the launcher keeps the config it began with.
        # A running serve's cluster stands in for the default embedded one (launch.shared_cluster).
        # Made by `warm_up` after the first frame (or by the first thing that needs it, which waits for it).
        from flows_tui.engine.cluster import choose_cluster  # a bad --cluster or --address: an error before the UI

        self._launcher: RunLauncher | None = None
        self._cluster_choice = choose_cluster(address, config, profile=cluster)
        self._open_store = open_store
        self._store_context: ContextManager[Any] | None = None
        self._warming = threading.Lock()  # held while the store is opened and the launcher made
        self._warm_up_thread: threading.Thread | None = None
        self.warmed_up = threading.Event()  # the store is open, the launcher made: keys act at once
        self._closed_without_launcher = False
        self._store_started = False  # the history loaded, the journal followed
        self._ended = False  # on_unmount has run
        self._listed_from_source = False  # the flows' names read from their files' source
        self.store_error: str | None = None  # why the store the app opens could not be opened
        self._cluster_starting = False  # start_cluster is on its way
        self.cluster_error: FlowsTuiError | None = None  # the embedded cluster or the scheduler could not be had
        self._waiting_runs: list[tuple[Any, dict[str, Any], str | None]] = []  # r pressed while the cluster starts
        self._lost_shown = False  # the status bar says the scheduler was lost
        self._flow_clusters_shown = False  # the status bar lists flows' own clusters
        self.store = store
        self.bridge = Bridge(self)
        self.bus.subscribe(self.bridge, name="tui")
        self._directory: FlowsDirectory | None = None  # made on the flows' thread, after the first frame
        self._directory_lock = threading.Lock()
        self._runnable: RunnableFlows | None = None  # the flows' files imported here as they are run
        self.watch_files = watch
        self.connect_cluster = connect_cluster
        self.clock = now  # what "now" is for durations and countdowns (tests pin it)
        self.shown_run: str | None = None  # the run in the tree and logs
        self.scheduled: ScheduledRuns | None = None  # the schedules of flows.toml this UI fires
        self._schedules: dict[str, Schedule] = {}  # flow → its schedule from flows.toml, as last built
        self.loaded = threading.Event()  # the first scan of the flows directory is done
        self._filter_target = "flows"
        self._flows_shown = False
        self._named_in_source: list[tuple[str, str]] = []  # (file, flow) read from the source before the import
        self._after_import: tuple[str, str] | None = None  # (flow, action) asked for while its file imported
        self.opened_run: str | None = None  # a run opened from the runs pane: the flows pane's loading keeps it
        self._highlighted_flow: str | None = None
        self._last_run_of: dict[str, str] = {}  # flow → latest run id seen in this session
        self._stored_last_run: dict[str, str] = {}  # flow → its latest run in the history read from the store
        self._started_here: set[str] = set()  # runs this UI started (their end is a notification)
        self._tail: JournalTail | None = None  # other processes' runs, from the store's journal
        self.watches: dict[str, WatchRun] = {}  # flow → its watch-run
        # flows.toml as last read: a save that does not load is shown, and the last good config stays.
        self.config_error: FlowsTuiError | None = None
        self._config_watch: FlowsWatcher | None = None
        self._retention: Retention | None = None  # [project] keep / keep_runs, once a day

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
        self.query_one(TaskTree).file_of = self._file_of_flow
        # Python's full garbage collections stop the UI thread for 0.3-1 s each once a run of
        # 10,000 tasks is in memory (tests/reliability/test_ui_load.py), or while a run logs 10,000
        # lines a second (bench/live_tail.py): they run when the UI is idle instead (_collect_when_idle).
        # Young collections are unchanged; the thresholds are restored when the app ends.
        self._gc_thresholds = gc.get_threshold()
        young, middle, full = self._gc_thresholds
        gc.set_threshold(young, middle, max(full, FULL_COLLECTION_THRESHOLD))
        self._collected = time.monotonic()
        self.set_interval(1.0, self._collect_when_idle)
        # What exists now (Textual, Dask, the flows' modules: most of the process's objects) lives as long
        # as the app: out of the collector's sight, a full collection while a run logs 10,000 lines a
        # second took 0.6 s, the UI frozen for it (bench/live_tail.py). Given back at the end.
        gc.freeze()
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
        self._say_config_warnings(self.config)
        # breakpoint() in a flow body run from here would wait for a terminal the UI holds: it says so instead.
        breakpoints.ui_holds_terminal = True
        breakpoints.install_breakpoint_hook()
        if self.store is not None:  # given open: its history and other processes' runs at once
            self._start_with_store()
        # The first frame first: the panes, with the flows' names read from their source when that is quick
        # (a few dozen files), else "loading…". Then the flows' import, and on a thread of its own the
        # engine's imports, the store and the launcher.
        with contextlib.suppress(Exception):  # unreadable: the flows' thread says why
            if self.flows_dir.is_dir() and self._list_from_source(budget=FIRST_FRAME_LISTING):
                self._show_flows()
        self.call_after_refresh(self._after_first_frame)

    def _say_config_warnings(self, config: Config) -> None:
        """Once at start and after each reload of flows.toml: a toast each, and the status bar."""
        for warning in config.warnings:
            self.notify(warning, title="flows.toml", severity="warning", timeout=8)
        self.query_one(StatusBar).set_notify_off(config.notify.off)

    def on_resize(self, event: Any) -> None:
        self._fit(event.size.width)

    def _file_of_flow(self, flow_name: str) -> str:
        row = self.query_one(FlowList).rows_by_key.get(flow_name)
        return row.file if row is not None and row.flow is not None else ""

    def _fit(self, width: int) -> None:
        # In 80 columns every footer key fits only without the palette's hint (ctrl+p is listed by `?`).
        self.query_one(Footer).show_command_palette = width >= NARROW_WIDTH

    @on(FlowList.RowHighlighted, "#flows")
    def _flow_highlighted(self, event: FlowList.RowHighlighted) -> None:
        # The rows arriving (read from the source, then imported, then reloaded) highlight a row
        # again, maybe another one as the rows sort: that does not replace a run opened from the
        # runs pane; the user moving to another flow in the flows pane does.
        if self._quitting() or not self.screen_stack:  # a highlight arriving as the app closes
            return
        key = event.row_key.value if event.row_key is not None else None
        moved = self.focused is event.control and key != self._highlighted_flow
        self._highlighted_flow = key
        self._show_plan_of_selected(moved=moved)

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

    # The filter line (/), under the flows or the logs ----------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        """As you type: the list (or the log search) follows each key."""
        self._set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._set_filter(event.value)
        self._close_filter()

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

    def _collect_when_idle(self) -> None:
        """The full garbage collection Python no longer starts itself (see bridge.FULL_COLLECTION_THRESHOLD)."""
        now = time.monotonic()
        since = now - self._collected
        idle = now - self.bridge._last_post >= FULL_COLLECTION_IDLE
        if since >= FULL_COLLECTION_LATEST or (idle and since >= FULL_COLLECTION_EVERY):
            gc.collect()
            self._collected = time.monotonic()

    def on_unmount(self) -> None:
        gc.set_threshold(*self._gc_thresholds)
        gc.unfreeze()
        if self._tail is not None:
            self._tail.stop()
        breakpoints.ui_holds_terminal = False
        for watch in self.watches.values():
            watch.stop(timeout=0)
        if self.scheduled is not None:
            self.scheduled.stop()
        if self._retention is not None:
            self._retention.stop(timeout=0)
        self._ended = True  # the flows' thread, still importing, starts no watch after this
        if self._directory is not None:
            self._directory.stop()
        if self._config_watch is not None:
            self._config_watch.stop(timeout=0)
        for engine in list(self.engines.values()):
            engine.cancel("flows-tui was closed")
        # A thread worker still busy with a cancelled task would hold the close until the task
        # returns: give it a moment, then leave it to the end of the process. A cluster still
        # starting (q pressed meanwhile) is closed when it is up, or ends with the process.
        if self._launcher is None:  # q before the start-up thread made it: nothing was started
            self._closed_without_launcher = True
            return
        closing = threading.Thread(target=_close_quietly, args=(self._launcher,), name="flows-tui-close",
                                   daemon=True)
        closing.start()
        closing.join(CLOSE_SECONDS)


def run_app(config: Any, *, path: str | None = None, address: str | None = None, cluster: str | None = None,
            first_frame: Any = None) -> int:
    from flows_tui.engine.cluster import start_semaphore_tracker

    start_semaphore_tracker()  # before Textual replaces sys.stderr
    bus = ev.EventBus()
    # Every run the UI starts is stored, as with `flows-tui run`; if the store cannot be written, unrecorded.
    # The UI opened only to look creates nothing: the store is created by the first run it records.

    def open_store() -> Any:
        from flows_tui.launch.runner import recording

        return recording(bus, config, unrecorded_ok=True, deferred=True)

    app = FlowsApp(config, path=path, address=address, cluster=cluster, bus=bus, open_store=open_store)
    if first_frame is not None:  # drawn before Textual loaded: the terminal's settings back for Textual to save
        first_frame.hand_over()
    try:
        app.run()
    finally:
        app.close_store()
    status = 128 + app.signalled if app.signalled is not None else 0
    # Everything is recorded and the terminal is given back: the process ends now. Left to the
    # interpreter, its exit joined Dask's threads and closed the cluster again (4-5 s after `q`
    # on a busy machine); the worker processes are stopped, and end anyway when we do.
    silence_stderr()
    exit_now(status)
    return status

