"""The run's task tree: flow → tasks → mapped children → attempts, live.

Before a run it shows the flow's plan (read from its source, nothing executed); during
and after a run, the RunModel's groups. A mapped task is one row with counts
(`clean  312/1000 ✓ 3 ✗ ⟳ 2`); its children are added only when the row is expanded,
in chunks, so a 10,000-task run costs the UI one row per task, not 10,000.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from flows_tui.record.model import FlowRun, TaskGroup, TaskRun
from flows_tui.record.progress import ORDER, STYLES, SYMBOLS, format_duration, state_text
from flows_tui.safe_text import plain, visible
from flows_tui.states import COMPLETED, PENDING, RETRYING, RUNNING
from flows_tui.tui.keys import vi_keys

# Children of an expanded mapped group are added this many at a time; the rest wait behind a
# "more" row the user can open.
CHUNK = 200
COUNT_ORDER = tuple(state for state in ORDER if state != PENDING)  # pending ones are counted last, in words


def _retry_in(task_run: TaskRun, now: _dt.datetime) -> str:
    if task_run.state != RETRYING or task_run.retry_at is None:
        return ""
    return f" in {max(0, round((task_run.retry_at - now).total_seconds()))}s"


def task_run_label(task_run: TaskRun, now: _dt.datetime, *, name: str | None = None) -> Text:
    label = Text.assemble(state_text(task_run.state), _retry_in(task_run, now), "  ", (visible(name or task_run.name, one_line=True), "bold"))
    if task_run.duration is not None:
        label.append(f"  {format_duration(task_run.duration)}", style="dim")
    elif task_run.state == RUNNING and task_run.started is not None:
        label.append(f"  {format_duration((now - task_run.started).total_seconds())}…", style="dim")
    if len(task_run.attempts) > 1:
        label.append(f"  {len(task_run.attempts)} attempts", style="yellow")
    if task_run.error:
        label.append(f"  {visible(_first_line(task_run.error))}", style="red")
    return label


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text.strip() else ""


def group_label(group: TaskGroup, now: _dt.datetime) -> Text:
    """`⟳ clean  312/1000  ✓ 310 ✗ 2 ⟳ 5  1.2s`: every count with its symbol, so colour is optional."""
    counts = group.counts
    label = Text.assemble((SYMBOLS.get(group.state, "?") + " ", STYLES.get(group.state, "")), (visible(group.task, one_line=True), "bold"),
                          f"  {group.done}/{group.total}")
    for state in COUNT_ORDER:
        if counts.get(state):
            label.append(f"  {SYMBOLS[state]} {counts[state]}", style=STYLES.get(state, ""))
    if counts.get(PENDING):
        label.append(f"  {SYMBOLS[PENDING]} {counts[PENDING]} pending", style="dim")
    if group.duration is not None:
        label.append(f"  {format_duration(group.duration)}", style="dim")
    if group.retries:
        label.append(f"  {group.retries} retries", style="yellow")
    return label


def _is_many(group: TaskGroup) -> bool:
    """A group row with children: a mapped task, or a task called more than once."""
    return group.is_mapped or group.total > 1


def attempt_label(attempt: Any) -> Text:
    label = Text.assemble(f"attempt {attempt.number}  ", state_text(attempt.state))
    if attempt.duration is not None:
        label.append(f"  {format_duration(attempt.duration)}", style="dim")
    if attempt.worker:
        label.append(f"  on {visible(attempt.worker, one_line=True)}", style="dim")
    if attempt.error:
        label.append(f"  {visible(_first_line(attempt.error))}", style="red")
    return label


class TaskTree(Tree):
    """The tree of the run on screen; `show_plan` before a run, `show_run` on every batch of events."""

    # Tree's own ▶/▼ would read as the Running state's symbol.
    ICON_NODE = "+ "
    ICON_NODE_EXPANDED = "- "

    BINDINGS = vi_keys(top="scroll_home", bottom="scroll_end")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("no run yet", **kwargs)
        self.show_root = True
        self.guide_depth = 3
        self.flow_run: FlowRun | None = None
        # The file a flow comes from, by its name ("" when unknown): the pane's subtitle says where the
        # plan or run on screen comes from, whichever flow that is.
        self.file_of: Callable[[str], str] = lambda flow_name: ""
        self._groups: dict[str, TreeNode] = {}  # task name → its row
        self._runs: dict[str, TreeNode] = {}  # task run id → its row (only where shown)
        self._shown: dict[str, int] = {}  # task name → how many mapped children are rows
        self._attempts: dict[str, int] = {}  # task run id → how many attempt rows
        self._drawn: dict[str, tuple | None] = {}  # task run id → what its row shows (None: a clock)
        self.root.expand()

    # Before a run: the plan ----------------------------------------------------------------------

    def show_plan(self, flow_name: str, plan: Any) -> None:
        """The flow's planned tasks, from its source (nothing ran): what a run will fill in."""
        self._reset(Text.assemble((visible(flow_name, one_line=True), "bold"), ("  planned, not run yet", "dim")))
        self.border_title = "tasks"
        self._name_file(flow_name)
        if plan is None:
            return
        for planned in plan.tasks:
            self._add_planned(self.root, planned)
        if not plan.complete:
            for note in plan.notes:
                self.root.add_leaf(plain(f"? {note}", "dim", one_line=True))

    def show_waiting(self, flow_name: str) -> None:
        """`r` while the cluster starts: the run waits for it (the flow's plan, if shown, stays below)."""
        label = Text.assemble((visible(flow_name, one_line=True), "bold"), ("  waiting for the cluster…", "yellow"))
        if self.flow_run is None:
            self.root.set_label(label)
        else:
            self._reset(label)
        self._name_file(flow_name)

    def _name_file(self, flow_name: str) -> None:
        self.border_subtitle = plain(self.file_of(flow_name), one_line=True)

    def _add_planned(self, parent: TreeNode, planned: Any) -> None:
        label = Text.assemble((f"{SYMBOLS[PENDING]} ", "dim"), (visible(planned.task, one_line=True), "bold"))
        if planned.call == "map":
            label.append(f"  map ×{planned.map_count}" if planned.map_count is not None else "  map", style="cyan")
        elif planned.call == "submit":
            label.append("  submit", style="dim")
        if planned.dynamic:
            label.append(f"  (in a {planned.dynamic})", style="yellow")
        if planned.upstream:
            label.append("  ← " + ", ".join(u.split("@")[0] for u in planned.upstream), style="dim")
        label.append(f"  line {planned.line}", style="dim")
        if planned.subflow is not None:
            node = parent.add(label, expand=True)
            for child in planned.subflow.tasks:
                self._add_planned(node, child)
        else:
            parent.add_leaf(label)

    # During and after a run ----------------------------------------------------------------------

    def show_run(self, run: FlowRun, now: _dt.datetime | None = None) -> None:
        """Bring the tree up to date with `run`; rows are kept, so cursor and expansion stay put."""
        now = now or _dt.datetime.now(_dt.timezone.utc)
        if self.flow_run is None or self.flow_run.run_id != run.run_id:
            self._reset("")
            self.flow_run = run
            # Which cluster runs it, in the pane's title: the run's root row has the flow's own words.
            self.border_title = plain(f"tasks · on {run.address}", one_line=True) if run.address else "tasks"
            self._name_file(run.flow)
        self.root.set_label(self._root_label(run, now))
        for group in run.groups():
            node = self._groups.get(group.task)
            if node is None:
                node = self._groups[group.task] = self.root.add(plain(group.task, one_line=True),
                                                                data=("group", group.task), allow_expand=True)
            if _is_many(group):
                if node.data[0] != "group":  # called again: the single row becomes a group
                    self._attempts.pop(node.data[1], None)
                    self._runs.pop(node.data[1], None)
                    node.remove_children()
                    node.data = ("group", group.task)
                node.set_label(group_label(group, now))
                if node.is_expanded:
                    self._fill_mapped(node, group, now)
            else:
                self._show_task_run(node, group.runs[0], now, name=group.runs[0].name)

    def _root_label(self, run: FlowRun, now: _dt.datetime) -> Text:
        label = Text.assemble(state_text(run.state), "  ", (visible(run.flow, one_line=True), "bold"),
                              (f"  {visible(run.run_id, one_line=True)}", "dim"))
        duration = run.duration if run.ended is not None else (now - run.started).total_seconds()
        label.append(f"  {format_duration(duration)}", style="dim")
        if run.message and run.state not in (COMPLETED, RUNNING, PENDING):
            label.append(f"  {visible(_first_line(run.message))}", style="red")
        return label

    def _show_task_run(self, node: TreeNode, task_run: TaskRun, now: _dt.datetime, name: str | None = None) -> None:
        # A row that shows no clock (not Running or Retrying) is drawn again only when it changed:
        # the UI redraws up to 20 times a second, and a mapped task can have thousands of rows.
        attempts = task_run.attempts
        drawn = None if task_run.state in (RUNNING, RETRYING) else (
            task_run.state, len(attempts), attempts[-1].state if attempts else None, task_run.message, name, id(node))
        if drawn is not None and self._drawn.get(task_run.id) == drawn:
            return
        self._drawn[task_run.id] = drawn
        node.data = ("task_run", task_run.id)
        self._runs[task_run.id] = node
        node.set_label(task_run_label(task_run, now, name=name))
        shown = self._attempts.get(task_run.id, 0)
        for attempt in task_run.attempts[shown:]:
            node.add_leaf(attempt_label(attempt), data=("attempt", task_run.id, attempt.number))
        if shown:  # the last shown attempt may have ended since
            children = list(node.children)
            for attempt, child in zip(task_run.attempts[:shown], children[:shown]):
                child.set_label(attempt_label(attempt))
        self._attempts[task_run.id] = len(task_run.attempts)
        node.allow_expand = bool(task_run.attempts)

    def _fill_mapped(self, node: TreeNode, group: TaskGroup, now: _dt.datetime) -> None:
        """Rows for the mapped children shown so far; more are added a chunk at a time."""
        shown = self._shown.get(group.task, 0)
        for task_run in group.runs[:shown]:
            child = self._runs.get(task_run.id)
            if child is not None:
                self._show_task_run(child, task_run, now)
        # Expanded while the map was still creating its children: the rest come behind "more",
        # whose count follows the group as it grows.
        last = node.children[-1] if node.children else None
        more = last if last is not None and isinstance(last.data, tuple) and last.data[0] == "more" else None
        if shown and group.total > shown:
            label = Text(f"… {group.total - shown} more (enter)", style="dim")
            if more is None:
                node.add_leaf(label, data=("more", group.task))
            else:
                more.set_label(label)

    def expand_group(self, node: TreeNode) -> None:
        """Add the next chunk of a mapped group's children (on expand, or on its "more" row)."""
        if self.flow_run is None or not isinstance(node.data, tuple):
            return
        kind = node.data[0]
        if kind == "more":
            group_node = node.parent
            node.remove()
        elif kind == "group":
            group_node = node
        else:
            return
        task = group_node.data[1]
        group = next((g for g in self.flow_run.groups() if g.task == task), None)
        if group is None or not _is_many(group):
            return
        now = _dt.datetime.now(_dt.timezone.utc)
        shown = self._shown.get(task, 0)
        for task_run in group.runs[shown:shown + CHUNK]:
            child = group_node.add(plain(task_run.name, one_line=True), data=("task_run", task_run.id))
            self._show_task_run(child, task_run, now)
        self._shown[task] = min(group.total, shown + CHUNK)
        if self._shown[task] < group.total:
            group_node.add_leaf(Text(f"… {group.total - self._shown[task]} more (enter)", style="dim"),
                                data=("more", task))

    def on_tree_node_expanded(self, event: Tree.NodeExpanded) -> None:
        data = event.node.data
        if isinstance(data, tuple) and data[0] == "group" and not self._shown.get(data[1]):
            self.expand_group(event.node)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        if isinstance(event.node.data, tuple) and event.node.data[0] == "more":
            self.expand_group(event.node)

    def selected_task(self) -> tuple[str | None, str | None]:
        """(task run id, task name) of the row under the cursor: what the logs pane follows."""
        node = self.cursor_node
        if node is None or not isinstance(node.data, tuple):
            return None, None
        kind = node.data[0]
        if kind == "group":
            return None, node.data[1]
        if kind in ("task_run", "attempt"):
            return node.data[1], None
        return None, None

    def selected_attempt(self) -> Any:
        """The attempt under the cursor: that row's, or a task run's last one."""
        node = self.cursor_node
        if self.flow_run is None or node is None or not isinstance(node.data, tuple):
            return None
        kind = node.data[0]
        if kind not in ("task_run", "attempt"):
            return None
        task_run = self.flow_run.task_runs.get(node.data[1])
        if task_run is None or not task_run.attempts:
            return None
        if kind == "attempt":
            return next((a for a in task_run.attempts if a.number == node.data[2]), None)
        return task_run.attempts[-1]

    def _reset(self, label: Any) -> None:
        self.clear()
        self.root.set_label(label)
        self.root.expand()
        self.flow_run = None
        self._groups.clear()
        self._runs.clear()
        self._shown.clear()
        self._attempts.clear()
        self._drawn.clear()
