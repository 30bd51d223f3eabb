"""What a plan is: the planned call sites of a flow, and how live task groups line up with them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator


# What `PlannedTask.dynamic` says about a call the run may make zero or many times. Nested
# constructs report the strongest claim: "function" (may never be called), then "loop" (may run
# many times), then the innermost block; after a return or raise inside a block, "conditional".
DYNAMIC_KINDS = ("loop", "conditional", "try", "with", "function")
MAX_DEPTH = 12  # nested subflows / inlined helpers: far beyond real flows, far below the recursion limit
MUTATORS = frozenset({"append", "extend", "add", "update", "insert", "setdefault", "appendleft"})


@dataclass(frozen=True)
class PlannedTask:
    """One call site in a flow body: a task call, `.submit`, `.map` (a mapped group) or a subflow."""

    id: str  # f"{task}@{line}", "#2"… for a second call on one line; subflow children are "{parent id}/{id}"
    task: str  # the Task's name (the key of a live TaskGroup), or the subflow's name
    call: str  # "call" | "submit" | "map"
    line: int  # in the file that defines the flow (for subflow children: their own flow's file)
    upstream: tuple[str, ...] = ()  # nodes whose results reach this call's arguments
    waits_for: tuple[str, ...] = ()  # nodes in `wait_for=`: ordering without data
    dynamic: str | None = None  # one of DYNAMIC_KINDS; on a subflow node it covers its whole plan
    map_count: int | None = None  # for "map": the element count when the source fixes it
    subflow: FlowPlan | None = None  # set exactly on subflow nodes


@dataclass(frozen=True)
class FlowPlan:
    flow: str
    tasks: tuple[PlannedTask, ...] = ()  # in evaluation order: `b(a())` lists a first, as the run creates it
    complete: bool = True  # False: something the planner could not resolve may call tasks (see notes)
    notes: tuple[str, ...] = ()
    file: str | None = None

    def walk(self) -> Iterator[PlannedTask]:
        """Every node, subflow nodes followed by their own plan's nodes: the order a run meets them."""
        for node in self.tasks:
            yield node
            if node.subflow is not None:
                yield from node.subflow.walk()

    def node(self, node_id: str) -> PlannedTask | None:
        return next((node for node in self.walk() if node.id == node_id), None)

    def tasks_named(self, task_name: str) -> list[PlannedTask]:
        """The call sites a live TaskGroup of `task_name` stands for (subflow nodes are not task runs)."""
        return [node for node in self.walk() if node.subflow is None and node.task == task_name]

    def task_names(self) -> tuple[str, ...]:
        """Distinct task names by first appearance: the expected order of `FlowRun.groups()`."""
        return tuple(dict.fromkeys(node.task for node in self.walk() if node.subflow is None))

    def document(self) -> dict[str, Any]:
        """As JSON: a plan made in the child process that imported the flow's file travels to the UI."""
        return asdict(self)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> FlowPlan:
        tasks = tuple(PlannedTask(**{**task, "upstream": tuple(task["upstream"]),
                                     "waits_for": tuple(task["waits_for"]),
                                     "subflow": None if task["subflow"] is None
                                     else cls.from_document(task["subflow"])})
                      for task in document["tasks"])
        return cls(document["flow"], tasks, document["complete"], tuple(document["notes"]), document["file"])


@dataclass(frozen=True)
class PlanRow:
    """One row of the task tree: a task name, its planned call sites, whether the run has created it."""

    task: str
    planned: tuple[PlannedTask, ...]  # () for a task the plan did not foresee (dynamic or unresolved code)
    live: bool


def match_plan(plan: FlowPlan, live_task_names: Iterable[str]) -> tuple[PlanRow, ...]:
    """Rows for the tree from a plan and the live group names (`[g.task for g in run.groups()]`).

    Planned names keep plan order (a planned task not run yet is a row with live=False); a live
    name the plan lacks goes right after the live name created before it, so it shows where it ran.
    """
    live = list(dict.fromkeys(live_task_names))
    order = list(plan.task_names())
    planned = set(order)
    anchor = -1
    for name in live:
        if name in planned:
            anchor = order.index(name)
        else:
            anchor += 1
            order.insert(anchor, name)
    live_names = set(live)
    return tuple(PlanRow(name, tuple(plan.tasks_named(name)), name in live_names) for name in order)
