"""Start-up: the first frame first, then what it does without.

The first frame needs only Textual and the panes. After it: the flows, listed from their files'
syntax tree at once, then read in the child processes that import them (their import server starts
then); and on a thread of its own
the engine's imports, the store opened (when the app opens it: `open_store`) and the launcher
made. A key that needs the launcher before (r, p, w, a schedule) waits for it on the thread
that needs it; the UI thread never imports the engine.

A part of FlowsApp (tui/app.py), which mixes it in: `self` is the app."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message

from flows_tui.errors import FlowsTuiError

from .bridge import ConfigSaved, FlowsChanged, _close_quietly
from .screens import TextScreen

if TYPE_CHECKING:
    from flows_tui.engine.cluster import Cluster
    from flows_tui.launch.launcher import RunLauncher
    from flows_tui.project.flows_directory import FlowsDirectory
    from flows_tui.project.runnable_flows import RunnableFlows

SAY_WAITING_AFTER = 1.0  # a quit that waits longer for the start-up thread says so
WARM_UP_SECONDS = 60  # at most this long does the end of the UI wait for its start-up thread (a store locked…)


class EngineReady(Message):
    """The start-up thread has opened the store and made the launcher."""


class StartUp:
    """The first frame first, then what it does without (see the module's doc)."""

    @property
    def launcher(self) -> RunLauncher:
        """The runs' launcher (the cluster, the session, the runs in progress). Made by `warm_up` after
        the first frame; a key pressed before waits for it here (the store is opened first, so that
        nothing a run publishes goes unrecorded)."""
        if self._launcher is None:
            self._warm_up()
        assert self._launcher is not None
        return self._launcher

    def _warm_up(self) -> None:
        """Open the store (when the app opens it) and make the launcher: the engine's imports, once."""
        with self._warming:
            if self._launcher is not None:
                return
            if self._open_store is not None and self.store is None:
                try:
                    context = self._open_store()
                    self.store = context.__enter__()
                    self._store_context = context
                except Exception as error:  # said in the status bar; runs go on unrecorded, the UI goes on
                    self.store_error = f"the run store could not be opened: {error}"
                self._open_store = None
            from flows_tui.launch.launcher import RunLauncher

            # A saved flows.toml's [cluster] applies on restart, so the launcher keeps the config it began with.
            # A running serve's cluster stands in for the default embedded one (launch.shared_cluster).
            self._launcher = RunLauncher(self._cluster_choice, self.config, self.bus, keep_results=True,
                                         behind_ui=True, shared=True)
            self.warmed_up.set()

    def close_store(self) -> None:
        """The store the app opened (`open_store`), closed once the app has ended: what was published is
        committed, this process's unfinished runs marked Crashed. Waits for a start-up still under way."""
        thread = self._warm_up_thread
        if thread is not None:
            thread.join(SAY_WAITING_AFTER)
            if thread.is_alive():  # the terminal is the user's again: say why the prompt does not come back
                _say(f"flows-tui: waiting for the run store to open, to close it cleanly (another process may be "
                     f"writing to it); up to {WARM_UP_SECONDS:.0f} s, Ctrl-C leaves now")
                try:
                    thread.join(WARM_UP_SECONDS)
                except KeyboardInterrupt:
                    _say("flows-tui: left without waiting; the next command marks this session's runs")
                    return
        if not self._warming.acquire(timeout=WARM_UP_SECONDS):
            return
        try:
            if self._launcher is not None and self._closed_without_launcher:  # made as the app ended
                _close_quietly(self._launcher)
            context, self._store_context = self._store_context, None
            if context is not None:
                context.__exit__(None, None, None)
        finally:
            self._warming.release()

    @property
    def directory(self) -> FlowsDirectory:
        """The flows directory: its files, flows and errors (its import server starts with it).

        Each file is imported in a child process only, which reads its flows' names, parameter forms
        and plans for the panes: no flow file is imported in the UI's process to be listed or
        reloaded (one that exits, loops or starts a thread at import cannot end or hold the UI).
        Running a flow imports its file here (`runnable`)."""
        if self._directory is None:
            from flows_tui.project.flows_directory import FlowsDirectory

            with self._directory_lock:
                if self._directory is None:
                    self._directory = FlowsDirectory(self.flows_dir, import_here=False, details=True)
        return self._directory

    @property
    def runnable(self) -> RunnableFlows:
        """The flows as runs take them: a flow's file imported here when it is run, after its child's
        import succeeded, and again once it was saved since (on the thread that asks: never the UI's)."""
        if self._runnable is None:
            from flows_tui.project.runnable_flows import RunnableFlows

            directory = self.directory
            with self._directory_lock:
                if self._runnable is None:
                    self._runnable = RunnableFlows(directory)
        return self._runnable

    @property
    def cluster(self) -> Cluster | None:
        return self._launcher.cluster if self._launcher is not None else None

    @property
    def session(self) -> Any:
        """Results of this session's runs, held on the cluster: `R`, `w` and `d` reuse them."""
        return self._launcher.session if self._launcher is not None else None

    @property
    def engines(self) -> dict[str, Any]:
        """Run id → engine of the runs in progress."""
        return self._launcher.engines if self._launcher is not None else {}

    def _after_first_frame(self) -> None:
        if self._quitting():
            return
        self.load_flows()  # which starts the warm-up once the flows are listed from their source

    def _start_warm_up(self) -> None:
        if self._warm_up_thread is None:
            self._warm_up_thread = threading.Thread(target=self._warm_up_then_start, name="flows-tui-warm-up",
                                                    daemon=True)
            self._warm_up_thread.start()

    def _warm_up_then_start(self) -> None:
        """On its own thread: the engine imported, the store opened, the launcher made; then what needs them
        (a message, not call_from_thread: the app may end meanwhile, and close_store waits for this thread)."""
        self._warm_up()
        self.post_message(EngineReady())

    def on_engine_ready(self, message: EngineReady) -> None:
        """Once the launcher and the store are there: the cluster, the history, other processes' runs."""
        if self._quitting():
            return
        if self.store_error is not None:
            self.show_store_problem(self.store_error, "runs not recorded")
        if self.connect_cluster and not self._cluster_starting:  # else a run asked for meanwhile is starting it
            self._open_cluster()
        if not self._store_started:  # the store the app opened itself
            self._start_with_store()
        self.set_interval(1.0, self.every_second)
        if self.loaded.is_set():  # the flows loaded first: their schedules wait for the store
            self._update_schedules()

    def _start_with_store(self) -> None:
        """The runs pane from the store, and the runs of other processes from its journal as they go."""
        self._store_started = True
        self.load_history()
        self._follow_project()
        self._watch_store()
        self.measure_cache()

    def _list_from_source(self, budget: float | None = None) -> bool:
        """The flows' names read from their files' syntax trees (a file importing pandas or
        dask.dataframe takes seconds to import): listed at once, runnable once imported. With a
        `budget` (seconds), False if reading them all would take longer (left to the flows' thread)."""
        from flows_tui.project.flow_paths import flow_files, flow_names_in_source

        deadline = time.monotonic() + budget if budget is not None else None
        named: list[tuple[str, str]] = []
        for path in flow_files(self.flows_dir):
            if deadline is not None and time.monotonic() > deadline:
                return False
            named.extend((path.name, name) for name in flow_names_in_source(path))
        self._named_in_source = named
        self._listed_from_source = True
        return bool(named)

    @work(thread=True, exclusive=True, group="flows", exit_on_error=False)
    def load_flows(self) -> None:
        from flows_tui.project.import_probe import fork_server

        # The flow files' import server (a Python of its own) starts now, on the other core, while the
        # names are read: the flows' import, which `r` pressed at once waits for, starts ready.
        fork_server().start()
        if not self.flows_dir.exists():
            self._start_warm_up()
            self._watch_config()
            self.call_from_thread(self.notify, f"flows directory {self.flows_dir} does not exist", severity="error")
            self.call_from_thread(self._show_flows)
            return
        try:
            if not self._listed_from_source and self._list_from_source():
                self.call_from_thread(self._show_flows)
        finally:  # only now the engine's imports: they would slow the listing down (one interpreter lock)
            self._start_warm_up()
        self._watch_config()
        threading.Thread(target=self._load_directory, name="flows-tui-flows", daemon=True).start()

    def _load_directory(self) -> None:
        """The flow files imported (seconds for a file importing pandas), then watched: on a thread of its
        own, not a Textual worker, whose end Textual's own end waits for (`q` waited for the imports)."""
        try:
            self.directory.subscribe(lambda event: self.post_message(FlowsChanged(event)))
            self.directory.load()
            self.loaded.set()
            self._from_thread(self._show_flows)  # an empty folder says what to do
            self._from_thread(self._run_waiting_for_import)
            if self.watch_files and not self._ended:
                self.directory.watch()
                if self._ended:  # the app ended while the watch started: on_unmount stopped the directory before
                    self.directory.stop()
        except Exception as error:  # as a failed worker is shown
            self._from_thread(self.push_screen, TextScreen("loading the flows failed", f"{type(error).__name__}: {error}"))

    def _from_thread(self, callback: Any, *args: Any) -> None:
        """call_from_thread, unless the app has ended meanwhile."""
        if self._ended or not self.is_running:
            return
        with contextlib.suppress(RuntimeError, concurrent.futures.CancelledError):
            self.call_from_thread(callback, *args)

    def _watch_config(self) -> None:
        """flows.toml's saves arrive as ConfigSaved messages (whether or not flow files are watched)."""
        from flows_tui.project.watch import FlowsWatcher

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


def _say(text: str) -> None:
    """One line on the terminal, after the app has given it back."""
    import sys

    stream = sys.__stderr__
    if stream is not None:
        with contextlib.suppress(OSError, ValueError):
            stream.write(text + "\n")
            stream.flush()
