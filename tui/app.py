"""The flows-tui application: flows, the run's tasks, its logs, and the cluster in the status bar.

Engine events reach the app through one bridge: a bus subscriber folds them into a
RunModel off the UI thread, and a timer redraws at most ten times a second.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Log, Static

from flows_tui import events as ev
from flows_tui.catalog import flow_config_for
from flows_tui.cluster import Cluster, choose_cluster, connect
from flows_tui.errors import FlowsTuiError
from flows_tui.model import RunModel
from flows_tui.progress import SYMBOLS
from flows_tui.reload import FlowFile, load_directory
from flows_tui.runner import recording


class _Bridge:
    """Bus subscriber: folds events off the UI thread; the app takes what changed on its timer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.model = RunModel()
        self.lines: list[str] = []
        self.dirty = False

    def __call__(self, batch: list) -> None:
        with self.lock:
            for event in batch:
                self.model.apply(event)
                if isinstance(event, ev.LogLines):
                    run = self.model.runs.get(event.run_id)
                    for line in event.lines:
                        task = run.task_runs.get(line.task_run_id) if run and line.task_run_id else None
                        source = task.name if task else "flow"
                        self.lines.append(f"{line.time.astimezone():%H:%M:%S} {source}: {line.message}")
            self.dirty = True

    def take(self) -> tuple[RunModel, list[str]] | None:
        with self.lock:
            if not self.dirty:
                return None
            self.dirty = False
            lines, self.lines = self.lines, []
            return self.model, lines


class FlowsApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "flows-tui"
    BINDINGS = [
        Binding("r", "run", "Run"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("tab", "focus_next", "Next pane"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, config: Any, *, path: str | None = None, address: str | None = None,
                 bus: ev.EventBus | None = None) -> None:
        super().__init__()
        self.config = config
        self.flows_dir = Path(path).resolve() if path else config.project.flows_dir
        self.choice = choose_cluster(address, config)
        self.cluster: Cluster | None = None
        self.files: list[FlowFile] = []
        self.rows: list[tuple[Any, FlowFile] | None] = []
        self.bus = bus or ev.EventBus()
        self.bridge = _Bridge()
        self.bus.subscribe(self.bridge, name="tui")
        self.running = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            yield DataTable(id="flows", cursor_type="row")
            with Vertical(id="right"):
                yield DataTable(id="tasks", cursor_type="row")
                yield Log(id="logs", max_lines=5000)
        yield Static("cluster: starting…", id="status")
        yield Footer()

    def on_mount(self) -> None:
        flows = self.query_one("#flows", DataTable)
        flows.border_title = f"flows · {self.flows_dir.name}"
        flows.add_columns("flow", "file", "last")
        tasks = self.query_one("#tasks", DataTable)
        tasks.border_title = "tasks"
        tasks.add_columns("task", "done", "states", "time")
        self.query_one("#logs", Log).border_title = "logs"
        self.load_flows()
        self.start_cluster()
        self.set_interval(0.1, self.redraw)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load_flows(self) -> None:
        files = load_directory(self.flows_dir) if self.flows_dir.exists() else []
        self.call_from_thread(self.show_flows, files)

    def show_flows(self, files: list[FlowFile]) -> None:
        self.files = files
        table = self.query_one("#flows", DataTable)
        table.clear()
        self.rows = []
        for loaded in files:
            for flow in loaded.flows.values():
                table.add_row(flow.name, loaded.path.name, "")
                self.rows.append((flow, loaded))
            if loaded.error is not None:
                table.add_row(Text(f"✗ {loaded.path.name}", style="red"), Text(str(loaded.error.reason), style="red"), "")
                self.rows.append(None)
        if not self.rows:
            table.add_row(Text("no flows found", style="dim"), str(self.flows_dir), "")
            self.rows.append(None)

    @work(thread=True, exclusive=True, group="cluster", exit_on_error=False)
    def start_cluster(self) -> None:
        try:
            cluster = connect(self.choice)
        except FlowsTuiError as error:
            self.call_from_thread(self.set_status, Text(f"cluster: {error}", style="red"))
            return
        self.cluster = cluster
        info = cluster.info()
        self.call_from_thread(self.set_status, f"cluster: {info.describe()}"
                              + (f" · {info.dashboard}" if info.dashboard else ""))

    def show_last_state(self, flow: Any, state: str) -> None:
        table = self.query_one("#flows", DataTable)
        for index, row in enumerate(self.rows):
            if row is not None and row[0] is flow:
                table.update_cell_at((index, 2), f"{SYMBOLS.get(state, '?')} {state}")

    def set_status(self, text: Any) -> None:
        self.query_one("#status", Static).update(text)

    def action_cursor_down(self) -> None:
        focused = self.focused
        if isinstance(focused, DataTable):
            focused.action_cursor_down()

    def action_cursor_up(self) -> None:
        focused = self.focused
        if isinstance(focused, DataTable):
            focused.action_cursor_up()

    def action_run(self) -> None:
        table = self.query_one("#flows", DataTable)
        row = self.rows[table.cursor_row] if 0 <= table.cursor_row < len(self.rows) else None
        if row is None:
            self.notify("select a flow to run", severity="warning")
            return
        if self.cluster is None:
            self.notify("the cluster is still starting", severity="warning")
            return
        if self.running:
            self.notify("a run is in progress", severity="warning")
            return
        flow, loaded = row
        self.query_one("#logs", Log).clear()
        self.run_flow(flow, loaded)

    @work(thread=True, group="runs", exit_on_error=False)
    def run_flow(self, flow: Any, loaded: FlowFile) -> None:
        from flows_tui.engine import run_flow

        self.running = True
        try:
            flow_config = flow_config_for(self.config, flow)
            parameters = flow.validate(dict(flow_config.parameters) if flow_config else {})
            engine = run_flow(flow, parameters, client=self.cluster.client, bus=self.bus, file=str(loaded.path),
                              log_level=self.config.project.log_level)
            self.call_from_thread(self.show_last_state, flow, engine.final.name)
            self.call_from_thread(self.notify, f"{flow.name}: {engine.final.name}",
                                  severity="information" if engine.final.is_completed() else "error")
        except FlowsTuiError as error:
            self.call_from_thread(self.notify, str(error), severity="error")
        finally:
            self.running = False

    def redraw(self) -> None:
        taken = self.bridge.take()
        if taken is None:
            return
        model, lines = taken
        with self.bridge.lock:
            runs = list(model.runs.values())
            rows = []
            if runs:
                run = runs[-1]
                groups: dict[str, list] = {}
                for task_run in run.current_task_runs():
                    groups.setdefault(task_run.task, []).append(task_run)
                for name, task_runs in groups.items():
                    counts: dict[str, int] = {}
                    for task_run in task_runs:
                        counts[task_run.state] = counts.get(task_run.state, 0) + 1
                    done = counts.get("Completed", 0) + counts.get("Cached", 0)
                    states = "  ".join(f"{SYMBOLS.get(s, '?')} {n} {s}" for s, n in counts.items())
                    seconds = sum(t.duration or 0 for t in task_runs)
                    rows.append((name, f"{done}/{len(task_runs)}", states, f"{seconds:.1f}s"))
                title = f"tasks · {run.flow} · {SYMBOLS.get(run.state, '')} {run.state}"
            else:
                title = "tasks"
        tasks = self.query_one("#tasks", DataTable)
        with self.batch_update():
            tasks.border_title = title
            tasks.clear()
            for row in rows:
                tasks.add_row(*row)
            if lines:
                self.query_one("#logs", Log).write_lines(lines)

    def on_unmount(self) -> None:
        if self.cluster is not None:
            self.cluster.close()


def run_app(config: Any, *, path: str | None = None, address: str | None = None) -> int:
    # Worker processes need multiprocessing's resource tracker, which is started with our
    # stderr's file descriptor: start it now, before Textual replaces sys.stderr.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    bus = ev.EventBus()
    with recording(bus, config):  # every run the UI starts is stored, as with `flows-tui run`
        FlowsApp(config, path=path, address=address, bus=bus).run()
    return 0
