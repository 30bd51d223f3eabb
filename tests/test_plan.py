"""The planned task tree, read from flow files loaded as the app loads them; no flow body ever runs.

Each test writes a small flow module into tmp_path and imports it with `load_flow_file`
(a real import under a private name). No Dask: planning needs none.
"""

from __future__ import annotations

import datetime as dt
import sys
import textwrap
from pathlib import Path

import pytest

from flows_tui.record import events as ev
from flows_tui.flows import Flow
from flows_tui.record.model import RunModel
from flows_tui.project.plan import FlowPlan, PlannedTask, match_plan, plan_flow
from flows_tui.project.flow_files import load_flow_file

ROOT = Path(__file__).resolve().parent.parent

HEADER = """\
from flows_tui import allow_failure, flow, task, unmapped

@task
def extract(n=3):
    return list(range(n))

@task
def transform(rows, factor=1):
    return [r * factor for r in rows]

@task
def load(rows, extra=None):
    return len(rows)

@task
def inc(x):
    return x + 1

@task
def add(x, y):
    return x + y
"""


def load_flows(tmp_path: Path, body: str, name: str = "flows.py", header: str = HEADER) -> dict[str, Flow]:
    path = tmp_path / name
    path.write_text(header + textwrap.dedent(body))
    loaded = load_flow_file(path)
    assert loaded.error is None, loaded.error
    return loaded.flows


def write_module(tmp_path: Path, name: str, text: str) -> None:
    """A helper module beside the flow file; names are unique to this file so no other test's
    module of the same name, cached in sys.modules, is imported instead."""
    sys.modules.pop(name, None)
    (tmp_path / f"{name}.py").write_text(text)


def line_of(tmp_path: Path, text: str, name: str = "flows.py") -> int:
    """The file line holding `text` (exactly one), so tests do not hard-code line numbers."""
    lines = [n for n, line in enumerate((tmp_path / name).read_text().splitlines(), 1) if text in line]
    assert len(lines) == 1, (text, lines)
    return lines[0]


def by_task(plan: FlowPlan) -> dict[str, PlannedTask]:
    nodes = {node.task: node for node in plan.tasks}
    assert len(nodes) == len(plan.tasks), "the test expects one call site per task"
    return nodes


def test_straight_line_code_has_data_edges_in_source_order(tmp_path):
    flows = load_flows(tmp_path, """
        @flow
        def etl(factor: int = 2):
            raw = extract()
            shaped, more = transform(raw, factor), extract(5)
            total = load(shaped)
            total += load(more, extra=raw)
            summary = {"rows": [total], "note": "done"}
            return add(summary, inc(1))
    """)
    plan = plan_flow(flows["etl"])
    assert plan.flow == "etl" and plan.complete and plan.notes == ()
    assert plan.file == str(tmp_path / "flows.py")
    l_raw, l_pair = line_of(tmp_path, "raw = extract()"), line_of(tmp_path, "shaped, more =")
    l_load1, l_load2 = line_of(tmp_path, "total = load("), line_of(tmp_path, "total += load(")
    l_add = line_of(tmp_path, "return add(")
    assert [n.id for n in plan.tasks] == [
        f"extract@{l_raw}", f"transform@{l_pair}", f"extract@{l_pair}", f"load@{l_load1}", f"load@{l_load2}",
        f"inc@{l_add}", f"add@{l_add}"]  # inc before add: the run creates arguments first
    nodes = {n.id: n for n in plan.tasks}
    assert nodes[f"transform@{l_pair}"].upstream == (f"extract@{l_raw}",)
    assert nodes[f"extract@{l_pair}"].upstream == ()  # pairwise unpacking: `more` is only extract(5)
    assert nodes[f"load@{l_load1}"].upstream == (f"transform@{l_pair}",)
    assert nodes[f"load@{l_load2}"].upstream == (f"extract@{l_pair}", f"extract@{l_raw}")
    # `total += ...` keeps both loads; the dict literal carries them into add.
    assert nodes[f"add@{l_add}"].upstream == (f"load@{l_load1}", f"load@{l_load2}", f"inc@{l_add}")
    assert all(n.call == "call" and n.dynamic is None and n.subflow is None for n in plan.tasks)
    assert plan.tasks[0].line == l_raw


def test_tuple_unpacking_reassignment_and_two_calls_on_one_line(tmp_path):
    flows = load_flows(tmp_path, """
        @flow
        def shapes():
            a, b = extract()
            c = add(a, b)
            a = inc(1)
            d = add(inc(2), a)
            return load([c, d])
    """)
    plan = plan_flow(flows["shapes"])
    l1, l2 = line_of(tmp_path, "a, b = extract()"), line_of(tmp_path, "c = add(a, b)")
    l4 = line_of(tmp_path, "d = add(inc(2), a)")
    l3 = line_of(tmp_path, "a = inc(1)")
    nodes = {n.id: n for n in plan.tasks}
    assert nodes[f"add@{l2}"].upstream == (f"extract@{l1}",)  # both names come from extract
    assert nodes[f"add@{l4}"].upstream == (f"inc@{l4}", f"inc@{l3}")  # `a` was reassigned
    assert nodes[f"load@{l4 + 1}"].upstream == (f"add@{l2}", f"add@{l4}")
    # Two calls of one task on one line get distinct, still readable ids.
    flows = load_flows(tmp_path, """
        @flow
        def twice():
            return add(inc(1), inc(2))
    """, name="twice.py")
    line = line_of(tmp_path, "return add(inc(1), inc(2))", name="twice.py")
    assert [n.id for n in plan_flow(flows["twice"]).tasks] == [f"inc@{line}", f"inc@{line}#2", f"add@{line}"]


def test_map_with_unmapped_and_known_counts(tmp_path):
    flows = load_flows(tmp_path, """
        @flow
        def fan(items: list, limit: int = 10):
            first = inc.map(range(5))
            added = add.map(first, unmapped(limit))
            listed = inc.map([1, 2, 3])
            unknown = inc.map(items)
            pinned = add.map(range(2, 8, 2), y=unmapped(first))
            failing = add.map(allow_failure(added), unmapped(1))
            return load(added)
    """)
    plan = plan_flow(flows["fan"])
    assert plan.complete
    nodes = {n.id: n for n in plan.tasks}
    line = line_of(tmp_path, "first = inc.map(range(5))")
    first, added = nodes[f"inc@{line}"], nodes[f"add@{line + 1}"]
    assert (first.call, first.map_count, first.upstream) == ("map", 5, ())
    # add is mapped over first (5 elements): the count follows; `limit` is passed whole.
    assert (added.call, added.map_count, added.upstream) == ("map", 5, (first.id,))
    assert nodes[f"inc@{line + 2}"].map_count == 3
    assert nodes[f"inc@{line + 3}"].map_count is None  # a parameter: known only at run time
    pinned = nodes[f"add@{line + 4}"]
    assert pinned.map_count == 3 and pinned.upstream == (first.id,)  # unmapped(first) is data, not a count
    failing = nodes[f"add@{line + 5}"]
    assert failing.map_count == 5 and failing.upstream == (added.id,)  # allow_failure still carries data
    assert nodes[f"load@{line + 6}"].call == "call" and nodes[f"load@{line + 6}"].upstream == (added.id,)


def test_submit_wait_for_and_result(tmp_path):
    flows = load_flows(tmp_path, """
        @flow
        def ordered():
            rows = extract.submit()
            side = inc.submit(1, wait_for=[rows])
            value = side.result()
            done = load.submit(rows.result(), extra=value, wait_for=[side, rows])
            return add(done, 1, return_state=True)
    """)
    plan = plan_flow(flows["ordered"])
    assert plan.complete
    extract_, inc_, load_, add_ = plan.tasks
    assert [n.call for n in plan.tasks] == ["submit", "submit", "submit", "call"]
    assert inc_.upstream == () and inc_.waits_for == (extract_.id,)  # ordering only, no data
    assert load_.upstream == (extract_.id, inc_.id)  # through .result() and a name assigned from it
    assert load_.waits_for == ()  # both are data edges already
    assert add_.upstream == (load_.id,)


def test_loops_conditionals_and_other_blocks_are_dynamic(tmp_path):
    flows = load_flows(tmp_path, """
        import contextlib

        @flow
        def dynamic(n: int = 3, fast: bool = False):
            rows = extract()
            for i in range(n):
                inc(i)
            while n > 0:
                n = add(n, -1)
            squares = [inc(x) for x in rows]
            if fast:
                picked = transform(rows)
            else:
                picked = load(rows)
            try:
                add(1, 2)
            except ValueError:
                extract(0)
            with contextlib.suppress(KeyError):
                transform(squares)
            def later():
                return inc(100)
            maybe = fast and add(3, 4)
            if not rows:
                return None
            return load(picked)
    """)
    plan = plan_flow(flows["dynamic"])
    assert plan.complete
    dynamic = {(n.task, n.line): n.dynamic for n in plan.tasks}
    assert dynamic == {
        ("extract", line_of(tmp_path, "rows = extract()")): None,
        ("inc", line_of(tmp_path, "inc(i)")): "loop",
        ("add", line_of(tmp_path, "n = add(n, -1)")): "loop",
        ("inc", line_of(tmp_path, "squares = [inc(x)")): "loop",
        ("transform", line_of(tmp_path, "picked = transform(rows)")): "conditional",
        ("load", line_of(tmp_path, "picked = load(rows)")): "conditional",
        ("add", line_of(tmp_path, "add(1, 2)")): "try",
        ("extract", line_of(tmp_path, "extract(0)")): "conditional",
        ("transform", line_of(tmp_path, "transform(squares)")): "with",
        ("inc", line_of(tmp_path, "return inc(100)")): "function",
        ("add", line_of(tmp_path, "maybe = fast and add(3, 4)")): "conditional",
        # After a return inside an if, whatever follows may not run.
        ("load", line_of(tmp_path, "return load(picked)")): "conditional",
    }
    final = plan.tasks[-1]
    # Either branch may have produced `picked`.
    assert set(final.upstream) == {f"transform@{line_of(tmp_path, 'picked = transform(rows)')}",
                                   f"load@{line_of(tmp_path, 'picked = load(rows)')}"}


def test_futures_collected_in_a_loop_reach_the_reduce(tmp_path):
    flows = load_flows(tmp_path, """
        @flow
        def collect(n: int = 4):
            futures = []
            for i in range(n):
                futures.append(inc.submit(i))
            results = {}
            for i in range(n):
                results[i] = add.submit(i, 1)
            return load([f.result() for f in futures], extra=results)
    """)
    plan = plan_flow(flows["collect"])
    inc_, add_, load_ = plan.tasks
    assert inc_.dynamic == add_.dynamic == "loop" and load_.dynamic is None
    assert load_.upstream == (inc_.id, add_.id)


def test_subflows_are_nested_plans_and_recursion_is_guarded(tmp_path):
    flows = load_flows(tmp_path, """
        @flow(name="child-flow")
        def child(rows):
            shaped = transform(rows)
            return load(shaped)

        @flow
        def parent():
            rows = extract()
            count = child(rows)
            return add(count, 1)

        @flow
        def countdown(n: int = 3):
            inc(n)
            if n:
                countdown(n - 1)
    """)
    plan = plan_flow(flows["parent"])
    assert plan.complete
    extract_, sub, add_ = plan.tasks
    line = line_of(tmp_path, "count = child(rows)")
    assert (sub.id, sub.task, sub.call, sub.upstream) == (f"child-flow@{line}", "child-flow", "call", (extract_.id,))
    assert isinstance(sub.subflow, FlowPlan) and sub.subflow.flow == "child-flow" and sub.subflow.complete
    inner = sub.subflow.tasks
    assert [n.id for n in inner] == [f"child-flow@{line}/transform@{line_of(tmp_path, 'shaped = transform(rows)')}",
                                     f"child-flow@{line}/load@{line_of(tmp_path, 'return load(shaped)')}"]
    assert inner[1].upstream == (inner[0].id,)
    assert add_.upstream == (sub.id,)
    # The subflow's tasks join the parent's run: they are part of the parent's task names.
    assert [n.id for n in plan.walk()] == [extract_.id, sub.id, inner[0].id, inner[1].id, add_.id]
    assert plan.task_names() == ("extract", "transform", "load", "add")
    assert plan.node(inner[1].id) is inner[1]

    recursive = plan_flow(flows["countdown"])
    assert not recursive.complete
    nested = recursive.tasks[1]
    assert nested.dynamic == "conditional" and not nested.subflow.complete
    assert any("calls itself" in note for note in nested.subflow.notes)


def test_unresolvable_calls_make_the_plan_incomplete_with_lines(tmp_path):
    flows = load_flows(tmp_path, """
        import sys

        @flow
        def indirect(step=inc, name: str = "inc"):
            rows = extract()
            step(rows)
            getattr(sys.modules[__name__], name)(rows)
            rows.sort()
            return load(rows)
    """)
    plan = plan_flow(flows["indirect"])
    assert not plan.complete
    assert [n.task for n in plan.tasks] == ["extract", "load"]  # what it can resolve is still planned
    step_line, getattr_line = line_of(tmp_path, "step(rows)"), line_of(tmp_path, "getattr(sys.modules")
    assert len(plan.notes) == 2  # a method of a value (`rows.sort()`) is not flagged
    assert plan.notes[0].startswith(f"line {step_line}: ") and "`step(...)`" in plan.notes[0]
    assert plan.notes[1].startswith(f"line {getattr_line}: ")


def test_tasks_reached_by_name_are_resolved(tmp_path):
    """Aliases, with_options, module attributes, closures, lists of tasks and same-file helpers."""
    write_module(tmp_path, "plan_test_steps", HEADER)
    flows = load_flows(tmp_path, """
        import plan_test_steps as steps

        STEPS = [inc, extract]

        def prepare(rows):
            return transform(rows, 2)

        def make_flow():
            captured = load

            @flow(name="closure")
            def closure():
                rows = steps.extract()
                fast = inc.with_options(name="fast-inc", retries=2)
                fast.submit(1)
                alias = add
                shaped = prepare(rows)
                total = alias.with_options(retries=1).map(shaped, unmapped(1))
                for step in STEPS:
                    step(total)
                return captured(shaped)

            return closure

        closure = make_flow()
    """)
    plan = plan_flow(flows["closure"])
    assert plan.complete, plan.notes
    calls = [(n.task, n.call, n.dynamic) for n in plan.tasks]
    assert calls == [("extract", "call", None), ("fast-inc", "submit", None), ("transform", "call", None),
                     ("add", "map", None), ("inc", "call", "loop"), ("extract", "call", "loop"),
                     ("load", "call", None)]
    extract_, _, transform_, add_, _, _, load_ = plan.tasks
    assert transform_.line == line_of(tmp_path, "return transform(rows, 2)")  # planned inside the helper
    assert transform_.upstream == (extract_.id,) and add_.upstream == (transform_.id,)
    assert load_.upstream == (transform_.id,)


def test_a_flow_body_is_never_executed(tmp_path):
    marker = tmp_path / "ran.txt"
    flows = load_flows(tmp_path, f"""
        from pathlib import Path

        MARKER = Path({str(marker)!r})

        def touch():
            MARKER.write_text("helper ran")
            return extract()

        @flow
        def harmful():
            MARKER.write_text("flow body ran")
            rows = touch()
            load(rows)
            raise SystemExit("the body ran")
    """)
    plan = plan_flow(flows["harmful"])
    assert not marker.exists()
    assert [n.task for n in plan.tasks] == ["extract", "load"]
    assert plan.tasks[1].upstream == (plan.tasks[0].id,)


def test_unreadable_sources_and_odd_syntax_never_raise(tmp_path):
    namespace: dict = {}
    exec("from flows_tui import flow\n@flow\ndef typed_in_repl():\n    return 1\n", namespace)
    plan = plan_flow(namespace["typed_in_repl"])
    assert not plan.complete and plan.tasks == () and "source" in plan.notes[0]

    lambda_plan = plan_flow(Flow(lambda: 1, name="lam"))
    assert (lambda_plan.flow, lambda_plan.complete) == ("lam", False)

    flows = load_flows(tmp_path, """
        @flow
        def odd(rows: list, mode: str = "a"):
            global COUNTER
            match mode:
                case "a" if (n := len(rows)):
                    inc(n)
                case {"k": value, **rest}:
                    add(value, rest)
                case _:
                    pass
            squares = {k: inc(v) for k, v in enumerate(rows)}
            chosen = (lambda x: transform(x))(rows)
            first, *others = rows
            print(f"{first!r:>10}", *others, sep="")
            del first
            async def never():
                await something()
            class Local:
                value = extract()
            return load(squares) if rows else load([])
    """)
    plan = plan_flow(flows["odd"])
    assert plan.complete, plan.notes  # every construct understood, nothing tripped over
    dynamics = [(n.task, n.dynamic) for n in plan.tasks]
    assert dynamics == [("inc", "conditional"), ("add", "conditional"), ("inc", "loop"),
                        ("transform", "function"), ("extract", "function"), ("load", "conditional"),
                        ("load", "conditional")]
    assert plan.tasks[5].upstream == (plan.tasks[2].id,)


def test_an_edited_file_is_reported_not_misread(tmp_path):
    flows = load_flows(tmp_path, """
        @flow
        def edited():
            return inc(1)
    """)
    path = tmp_path / "flows.py"
    # Saved again after the import, same lines: the source on disk no longer is the imported code.
    path.write_text(path.read_text().replace("def edited", "def renamed"))
    plan = plan_flow(flows["edited"])
    assert not plan.complete and plan.tasks == ()
    assert "changed since it was imported" in plan.notes[0]


@pytest.mark.parametrize("sample, expected", [
    ("map_reduce.py", [("inc", "map", ()), ("double", "map", ()), ("add", "map", ("inc", "double")),
                       ("sum_all", "call", ("add",))]),
    ("taxi_tips.py", [("generate_trips", "call", ()), ("split_hourly", "submit", ("generate_trips",)),
                      ("clean", "map", ("split_hourly",)), ("best", "map", ("clean",)),
                      ("report", "call", ("best",))]),
])
def test_bundled_sample_flows(sample, expected):
    loaded = load_flow_file(ROOT / "sample_flows" / sample)
    assert loaded.error is None
    [flow] = loaded.flows.values()
    plan = plan_flow(flow)
    assert plan.complete and plan.notes == ()
    by_id = {n.id: n.task for n in plan.tasks}
    shape = [(n.task, n.call, tuple(by_id[u] for u in n.upstream)) for n in plan.tasks]
    assert shape == expected
    assert all(n.dynamic is None and n.map_count is None and n.waits_for == () for n in plan.tasks)
    assert all(n.id == f"{n.task}@{n.line}" for n in plan.tasks)


def test_live_groups_match_planned_nodes_by_task_name(tmp_path):
    """A run's TaskGroups (one per task name, in creation order) fill the planned rows."""
    flows = load_flows(tmp_path, """
        @flow
        def pipeline(n: int = 2):
            rows = extract()
            a = inc.map(rows)
            b = inc(1)
            if n > 5:
                transform(rows)
            return load(a, extra=b)
    """)
    plan = plan_flow(flows["pipeline"])
    assert [n.task for n in plan.tasks_named("inc")] == ["inc", "inc"]
    assert plan.task_names() == ("extract", "inc", "transform", "load")

    # The run: extract, the inc map and call, a task the plan did not foresee, then load.
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    model = RunModel()
    model.apply(ev.FlowRunStarted("r", "pipeline", {}, t0))
    created = [("e", "extract", None), ("i0", "inc", 0), ("i1", "inc", 1), ("i2", "inc", None),
               ("x", "audit", None), ("l", "load", None)]
    for number, (task_run_id, task, index) in enumerate(created):
        model.apply(ev.TaskRunCreated("r", task_run_id, task, f"{task}-{number}", t0, index, (), 1))
    groups = model.runs["r"].groups()
    rows = match_plan(plan, [group.task for group in groups])
    assert [(row.task, len(row.planned), row.live) for row in rows] == [
        ("extract", 1, True), ("inc", 2, True), ("audit", 0, True), ("transform", 1, False), ("load", 1, True)]
    inc_row = rows[1]
    assert [n.call for n in inc_row.planned] == ["map", "call"]
    assert {g.task: g for g in groups}["inc"].total == 3  # the group holds both call sites' runs


def test_helpers_in_other_files_and_computed_names_are_flagged(tmp_path):
    write_module(tmp_path, "plan_test_helpers", HEADER + "\n\ndef prepare(rows):\n    return transform(rows)\n")
    flows = load_flows(tmp_path, """
        from plan_test_helpers import prepare

        @flow
        def flagged(suffix: str = "x"):
            rows = prepare(extract())
            renamed = inc.with_options(name="inc-" + suffix)
            renamed(1)
            for step in [inc, load]:
                step(rows)
    """)
    plan = plan_flow(flows["flagged"])
    assert not plan.complete
    assert plan.notes == (
        f"line {line_of(tmp_path, 'rows = prepare(')}: prepare() in plan_test_helpers calls tasks; "
        "they are not planned",
        f"line {line_of(tmp_path, 'renamed = inc.with_options(')}: with_options(name=...) is computed: "
        "runs will carry a name the plan does not know",
    )
    step_line = line_of(tmp_path, "step(rows)")
    # A loop over a literal list of tasks plans each of them at the call site.
    assert [(n.id, n.dynamic) for n in plan.tasks] == [
        (f"extract@{line_of(tmp_path, 'rows = prepare(')}", None), (f"inc@{step_line - 2}", None),
        (f"inc@{step_line}", "loop"), (f"load@{step_line}", "loop")]


def test_a_plan_read_in_a_child_process_arrives_whole_as_json(tmp_path):
    # The UI shows plans made in the child that imported the flow's file: subflows, edges, notes and all.
    import json

    flows = load_flows(tmp_path, """
        @flow(name="child-flow")
        def child(rows):
            return load(transform.map(rows))

        @flow
        def parent(n: int = 3):
            rows = extract()
            for _ in range(n):
                add(child(rows), 1, wait_for=[rows])
            getattr(sys, "argv")
    """)
    plan = plan_flow(flows["parent"])
    assert plan.tasks[1].subflow is not None and plan.tasks[1].dynamic == "loop"
    assert FlowPlan.from_document(json.loads(json.dumps(plan.document()))) == plan
