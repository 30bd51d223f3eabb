"""The planned task tree of a flow: what its body will call, read from its source, never run.

Plans are made on every (re)load, before anything runs, so planning must not execute user
code beyond the import that already happened (ARCHITECTURE, "Execution model"). The planner
parses the flow function's source with `ast` and looks names up in the imported module's
globals and the function's closure: that tells Task and Flow objects apart from everything
else without calling anything (only `type()`, dict look-ups and `inspect.getattr_static`).
What only the run can know is marked rather than guessed: `dynamic` on a node whose call may
run zero or many times, `complete=False` with a note (and its line) where a call may be missed.

Live runs onto the plan: `FlowRun.groups()` holds one TaskGroup per Task *name*, in the order
the run first created a run of that task, and subflows' tasks join the parent run. A planned
node carries the same name, so a group stands for every planned call site of its task
(`FlowPlan.tasks_named(group.task)`, subflows included), and `FlowPlan.task_names()` is the
order the groups appear in when the run follows the plan. `match_plan` lays both side by side
for the tree: planned names in plan order, tasks the plan did not foresee slotted in where the
run created them.
"""

from __future__ import annotations

from flows_tui.flows import Flow

from .model import DYNAMIC_KINDS, FlowPlan, PlannedTask, PlanRow, match_plan
from .walker import _plan

__all__ = ["DYNAMIC_KINDS", "FlowPlan", "PlanRow", "PlannedTask", "match_plan", "plan_flow"]


def plan_flow(flow: Flow) -> FlowPlan:
    """The planned task tree of `flow`; never raises and never runs its body."""
    return _plan(flow, getattr(flow, "name", "?"), prefix="", stack=())
