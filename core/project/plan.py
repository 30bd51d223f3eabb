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

import ast
import builtins
import inspect
import sys
import textwrap
import types
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from flows_tui.flows import Flow
from flows_tui.futures import allow_failure, unmapped
from flows_tui.tasks import Task
from flows_tui.tracebacks import is_user_file

# What `PlannedTask.dynamic` says about a call the run may make zero or many times. Nested
# constructs report the strongest claim: "function" (may never be called), then "loop" (may run
# many times), then the innermost block; after a return or raise inside a block, "conditional".
DYNAMIC_KINDS = ("loop", "conditional", "try", "with", "function")
_MAX_DEPTH = 12  # nested subflows / inlined helpers: far beyond real flows, far below the recursion limit
_MUTATORS = frozenset({"append", "extend", "add", "update", "insert", "setdefault", "appendleft"})


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


def plan_flow(flow: Flow) -> FlowPlan:
    """The planned task tree of `flow`; never raises and never runs its body."""
    return _plan(flow, getattr(flow, "name", "?"), prefix="", stack=())


# Internals -----------------------------------------------------------------------------------

_UNKNOWN = object()  # a value the planner cannot see into: calling it may run a task
_LOCAL_FUNCTION = object()  # a def/lambda in the body, planned where it is defined


class _NoSource(Exception):
    pass


@dataclass(frozen=True)
class _Callee:
    kind: str  # "task" | "flow"
    name: str  # the name runs will carry (with_options(name=...) applied)
    target: Any


@dataclass(frozen=True)
class _Val:
    """What the planner knows about the value of an expression."""

    nodes: tuple[str, ...] = ()  # planned nodes whose results this value carries
    callees: tuple[_Callee, ...] = ()  # the tasks/flows it is (or, for a list of them, holds)
    obj: Any = _UNKNOWN  # the static object it denotes, else _UNKNOWN (or _LOCAL_FUNCTION)
    count: int | None = None  # its length when known, for .map
    unmapped: bool = False


def _union(values: Iterable[_Val]) -> _Val:
    nodes: dict[str, None] = {}
    callees: dict[_Callee, None] = {}
    for value in values:
        nodes.update(dict.fromkeys(value.nodes))
        callees.update(dict.fromkeys(value.callees))
    return _Val(tuple(nodes), tuple(callees))


def _merge(a: _Val, b: _Val) -> _Val:
    """Either value, as after an if/else: edges and callees of both, facts only if they agree."""
    both = _union((a, b))
    return replace(both, obj=a.obj if a.obj is b.obj else _UNKNOWN,
                   count=a.count if a.count == b.count else None, unmapped=a.unmapped and b.unmapped)


def _merge_envs(first: dict[str, _Val], *others: dict[str, _Val]) -> dict[str, _Val]:
    merged = dict(first)
    for env in others:
        for name in set(merged) | set(env):
            merged[name] = _merge(merged.get(name, _Val(obj=_UNKNOWN)), env.get(name, _Val(obj=_UNKNOWN)))
    return merged


def _static(obj: Any) -> _Val:
    # type(), never isinstance(): isinstance may read a proxy's __class__, which is user code.
    kind = type(obj)
    if issubclass(kind, Task):
        return _Val(callees=(_Callee("task", obj.name, obj),), obj=obj)
    if issubclass(kind, Flow):
        return _Val(callees=(_Callee("flow", obj.name, obj),), obj=obj)
    if kind in (list, tuple):  # a module-level list of tasks: `for step in STEPS: step(x)`
        callees = tuple(c for item in obj[:100] if issubclass(type(item), (Task, Flow))
                        for c in _static(item).callees)
        return _Val(callees=callees, obj=obj, count=len(obj))
    return _Val(obj=obj)


class _Out:
    """What one flow's plan accumulates; inlined helpers write into their caller's."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[PlannedTask] = []
        self.notes: list[str] = []
        self.complete = True
        self._ids: set[str] = set()

    def note(self, text: str, line: int | None = None) -> None:
        """Say why the plan may miss something; every note makes it incomplete."""
        text = text if line is None else f"line {line}: {text}"
        if text not in self.notes:
            self.notes.append(text)
        self.complete = False

    def new_id(self, name: str, line: int) -> str:
        base = node_id = f"{self.prefix}{name}@{line}"
        number = 1
        while node_id in self._ids:
            number += 1
            node_id = f"{base}#{number}"
        self._ids.add(node_id)
        return node_id


def _function_of(flow: Any) -> types.FunctionType | None:
    """The flow's own function, under any functools.wraps layers; None for any other callable."""
    fn = getattr(flow, "fn", None)
    if type(fn) is not types.FunctionType:  # not isinstance: a callable object's __class__ may be code
        return None
    fn = inspect.unwrap(fn)  # a function's __wrapped__ is a plain attribute: nothing runs
    return fn if type(fn) is types.FunctionType else None


def _plan(flow: Any, name: str, prefix: str, stack: tuple) -> FlowPlan:
    out = _Out(prefix)
    file = None
    try:
        fn = _function_of(flow)
        if fn is None:
            raise _NoSource("the flow is not a plain Python function")
        file = fn.__code__.co_filename
        _Planner(fn, out, stack=stack).run()
    except _NoSource as error:
        out.note(f"not planned: {error}")
    except Exception as error:  # a construct the planner mishandles must cost the plan, not the caller
        out.note(f"planning stopped early ({type(error).__name__}: {error})")
    return FlowPlan(name, tuple(out.nodes), out.complete, tuple(out.notes), file)


def _parse(fn: types.FunctionType) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, int]:
    """The function's def node and the offset that turns its line numbers into file lines."""
    if fn.__code__.co_name == "<lambda>":
        raise _NoSource("a lambda has no body to read")
    try:
        lines, start = inspect.getsourcelines(fn)
    except (OSError, TypeError) as error:
        raise _NoSource(f"its source is not available ({error}); defined interactively?") from None
    source = "".join(lines)
    try:
        tree, offset = ast.parse(textwrap.dedent(source)), start - 1
        definition = tree.body[0] if tree.body else None
    except SyntaxError:
        # dedent gives up on an indented def with a less indented multi-line string; inside a
        # block, Python itself ignores indentation within the string.
        try:
            tree, offset = ast.parse("if 1:\n" + source), start - 2
        except SyntaxError as error:
            raise _NoSource(f"its source does not parse ({error.msg})") from None
        definition = tree.body[0].body[0]
    name = fn.__code__.co_name  # the def's own name, whatever __name__ was set to since
    if not isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef)) or definition.name != name:
        # linecache reads the file as it is now: it was edited after the import we plan for.
        raise _NoSource(f"the file changed since it was imported (no def {name} at line {start})")
    return definition, offset


def _local_names(definition: ast.AST) -> set[str]:
    """Names a function binds (so they never mean the module's global of that name)."""
    arguments = definition.args
    names = {a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)}
    names.update(a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None)
    declared: set[str] = set()
    body = definition.body if isinstance(definition.body, list) else [definition.body]
    pending: list[ast.AST] = list(body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue  # their bodies are their own scopes
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        pending.extend(ast.iter_child_nodes(node))
    return names - declared


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def _reaches_tasks(fn: types.FunctionType, seen: set | None = None) -> bool:
    """Whether a helper's code names a task or flow, itself or through helpers of its module."""
    seen = set() if seen is None else seen
    if fn.__code__ in seen:
        return False
    seen.add(fn.__code__)
    names = set(_code_names(fn.__code__))
    for name in names:
        value = fn.__globals__.get(name)
        if issubclass(type(value), (Task, Flow)):
            return True
        if type(value) is types.ModuleType and any(  # `helpers.clean(...)`: attributes are co_names too
                issubclass(type(vars(value).get(attribute)), (Task, Flow)) for attribute in names):
            return True
        if type(value) is types.FunctionType and value.__globals__ is fn.__globals__ and _reaches_tasks(value, seen):
            return True
    return False


def _beside(fn: types.FunctionType, flow_fn: types.FunctionType) -> bool:
    """Whether `fn` comes from the flow file's directory (the user's helpers), not a library."""
    try:
        here = Path(fn.__code__.co_filename).resolve()
        return is_user_file(str(here)) and here.is_relative_to(Path(flow_fn.__code__.co_filename).resolve().parent)
    except (OSError, ValueError):
        return False


class _Planner:
    """Walks one function body in evaluation order, tracking which planned nodes each name carries."""

    def __init__(self, fn: types.FunctionType, out: _Out, *, stack: tuple, context: tuple[str, ...] = (),
                 exited: bool = False) -> None:
        self.fn = fn
        self.out = out
        self.stack = stack + (fn.__code__,)
        self.context = list(context)
        self.base = len(context)
        self.exited = exited  # a return/raise may already have left the body: later calls are conditional
        self.globals = fn.__globals__
        self.builtins = fn.__globals__.get("__builtins__", builtins)
        if isinstance(self.builtins, types.ModuleType):
            self.builtins = vars(self.builtins)
        self.closure = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
        self.env: dict[str, _Val] = {}
        self.returns: list[_Val] = []
        self.locals: set[str] = set()
        self.offset = 0

    def run(self, arguments: dict[str, _Val] | None = None) -> _Val:
        definition, self.offset = _parse(self.fn)
        self.locals = _local_names(definition)
        self.env.update(arguments or {})
        self._stmts(definition.body)
        return _union(self.returns)

    # Context -------------------------------------------------------------------------------

    @contextmanager
    def _inside(self, kind: str) -> Iterator[None]:
        self.context.append(kind)
        try:
            yield
        finally:
            self.context.pop()

    def _dynamic(self) -> str | None:
        for kind in ("function", "loop"):  # the strongest claim first: may never run / may run many times
            if kind in self.context:
                return kind
        if self.context:
            return self.context[-1]
        return "conditional" if self.exited else None

    def _line(self, node: ast.AST) -> int:
        return getattr(node, "lineno", 0) + self.offset

    # Statements ----------------------------------------------------------------------------

    def _stmts(self, body: list[ast.stmt]) -> None:
        for statement in body:
            try:
                method = getattr(self, f"_stmt_{type(statement).__name__}", self._stmt_generic)
                method(statement)
            except Exception as error:
                # One statement the planner trips over loses its own calls, not the whole plan.
                self.out.note(f"not planned ({type(error).__name__}: {error})", self._line(statement))

    def _stmt_generic(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._expr(child)
            elif isinstance(child, ast.stmt):
                self._stmts([child])

    def _stmt_Expr(self, node: ast.Expr) -> None:
        self._expr(node.value)

    def _stmt_Assign(self, node: ast.Assign) -> None:
        pairwise = (isinstance(node.value, (ast.Tuple, ast.List)) and len(node.targets) == 1
                    and isinstance(node.targets[0], (ast.Tuple, ast.List))
                    and len(node.targets[0].elts) == len(node.value.elts)
                    and not any(isinstance(e, ast.Starred) for e in (*node.targets[0].elts, *node.value.elts)))
        if pairwise:  # `a, b = t1(), t2()`: each name gets its own node
            values = [self._expr(element) for element in node.value.elts]
            for target, value in zip(node.targets[0].elts, values):
                self._bind(target, value)
            return
        value = self._expr(node.value)
        for target in node.targets:
            self._bind(target, value)

    def _stmt_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, self._expr(node.value))

    def _stmt_AugAssign(self, node: ast.AugAssign) -> None:
        value = self._expr(node.value)
        if isinstance(node.target, ast.Name):
            self.env[node.target.id] = _union((self._name(node.target.id), value))
        else:
            self._bind(node.target, value)

    def _bind(self, target: ast.AST, value: _Val) -> None:
        if isinstance(target, ast.Name):
            self.env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):  # unpacking: every name may hold any part
            element = replace(value, obj=_UNKNOWN, count=None)
            for item in target.elts:
                self._bind(item, element)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, value)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            # `results[i] = t(x)`: the container now carries that node. The target's own
            # expressions run after the value, as in Python.
            self._expr(target.value)
            if isinstance(target, ast.Subscript):
                self._expr(target.slice)
            if isinstance(target.value, ast.Name):
                self._carry(target.value.id, [value])

    def _carry(self, name: str, values: list[_Val]) -> None:
        """A container mutated in place now also carries the nodes of what went in."""
        container = self._name(name)
        self.env[name] = replace(container, nodes=_union((container, *values)).nodes)

    def _stmt_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.env.pop(target.id, None)
            else:
                self._expr(target)

    def _stmt_If(self, node: ast.If) -> None:
        self._expr(node.test)
        self._branches([node.body, node.orelse], "conditional")

    def _branches(self, bodies: list[list[ast.stmt]], kind: str) -> None:
        before = dict(self.env)
        after = []
        for body in bodies:
            self.env = dict(before)
            with self._inside(kind):
                self._stmts(body)
            after.append(self.env)
        self.env = _merge_envs(*after)

    def _stmt_For(self, node: ast.For | ast.AsyncFor) -> None:
        iterable = self._expr(node.iter)
        before = dict(self.env)
        with self._inside("loop"):
            self._bind(node.target, _Val(iterable.nodes, iterable.callees, obj=_UNKNOWN))
            self._stmts(node.body)
        with self._inside("conditional"):
            self._stmts(node.orelse)
        self.env = _merge_envs(before, self.env)

    _stmt_AsyncFor = _stmt_For

    def _stmt_While(self, node: ast.While) -> None:
        before = dict(self.env)
        with self._inside("loop"):
            self._expr(node.test)
            self._stmts(node.body)
        with self._inside("conditional"):
            self._stmts(node.orelse)
        self.env = _merge_envs(before, self.env)

    def _stmt_Try(self, node: ast.Try) -> None:
        before = dict(self.env)
        with self._inside("try"):
            self._stmts(node.body)
        after_body = self.env
        handled = []
        for handler in node.handlers:
            self.env = _merge_envs(before, after_body)
            with self._inside("conditional"):
                if handler.type is not None:
                    self._expr(handler.type)
                self._stmts(handler.body)
            handled.append(self.env)
        self.env = dict(after_body)
        with self._inside("try"):
            self._stmts(node.orelse)
        self.env = _merge_envs(self.env, *handled)
        with self._inside("try"):
            self._stmts(node.finalbody)

    _stmt_TryStar = _stmt_Try

    def _stmt_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            value = self._expr(item.context_expr)
            if item.optional_vars is not None:
                self._bind(item.optional_vars, replace(value, obj=_UNKNOWN))
        with self._inside("with"):
            self._stmts(node.body)

    _stmt_AsyncWith = _stmt_With

    def _stmt_Match(self, node: ast.Match) -> None:
        subject = replace(self._expr(node.subject), obj=_UNKNOWN)
        before = dict(self.env)
        after = [before]  # no case may match
        for case in node.cases:
            self.env = dict(before)
            for child in ast.walk(case.pattern):
                captured = getattr(child, "name", None) or getattr(child, "rest", None)
                if isinstance(captured, str):
                    self.env[captured] = subject
            with self._inside("conditional"):
                if case.guard is not None:
                    self._expr(case.guard)
                self._stmts(case.body)
            after.append(self.env)
        self.env = _merge_envs(*after)

    def _stmt_Return(self, node: ast.Return) -> None:
        if node.value is not None:
            self.returns.append(self._expr(node.value))
        self._left()

    def _stmt_Raise(self, node: ast.Raise) -> None:
        self._stmt_generic(node)
        self._left()

    def _left(self) -> None:
        # A return or raise inside a block may end the body early; one at the top level is the end.
        if len(self.context) > self.base and "function" not in self.context:
            self.exited = True

    def _stmt_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.env[alias.asname] = self._module(alias.name)
            else:
                top = alias.name.split(".")[0]
                self.env[top] = self._module(top)

    def _stmt_ImportFrom(self, node: ast.ImportFrom) -> None:
        # Only what the module's import already loaded: planning never imports.
        module = sys.modules.get(node.module or "") if node.level == 0 else None
        for alias in node.names:
            value = _Val(obj=_UNKNOWN)
            if module is not None and alias.name in vars(module):
                value = _static(vars(module)[alias.name])
            elif module is not None:
                value = self._module(f"{node.module}.{alias.name}")
            self.env[alias.asname or alias.name] = value

    def _module(self, name: str) -> _Val:
        module = sys.modules.get(name)
        return _Val(obj=_UNKNOWN) if module is None else _Val(obj=module)

    def _stmt_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        """A def in the body: its calls are planned here, marked as maybe never or many times run."""
        decorated = False
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                self._expr(decorator)
                decorated = True
        for default in (*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)):
            self._expr(default)
        inner = _local_names(node)
        saved_env, saved_locals = self.env, self.locals
        self.env = {name: value for name, value in self.env.items() if name not in inner}
        self.locals = saved_locals | inner
        try:
            with self._inside("function"):
                if isinstance(node, ast.Lambda):
                    self._expr(node.body)
                else:
                    self._stmts(node.body)
        finally:
            self.env, self.locals = saved_env, saved_locals
        if not isinstance(node, ast.Lambda):
            # A decorated def (a @task made at run time, say) is something we cannot see into.
            self.env[node.name] = _Val(obj=_UNKNOWN if decorated else _LOCAL_FUNCTION)

    _stmt_AsyncFunctionDef = _stmt_FunctionDef

    def _stmt_ClassDef(self, node: ast.ClassDef) -> None:
        for expression in (*node.decorator_list, *node.bases, *(k.value for k in node.keywords)):
            self._expr(expression)
        with self._inside("function"):
            self._stmts(node.body)
        self.env[node.name] = _Val(obj=_LOCAL_FUNCTION)

    # Expressions ---------------------------------------------------------------------------

    def _expr(self, node: ast.AST | None) -> _Val:
        if node is None:
            return _Val()
        method = getattr(self, f"_expr_{type(node).__name__}", None)
        if method is not None:
            return method(node)
        return _union(self._expr(child.value if isinstance(child, ast.keyword) else child)
                      for child in ast.iter_child_nodes(node) if isinstance(child, (ast.expr, ast.keyword)))

    def _expr_Constant(self, node: ast.Constant) -> _Val:
        return _Val(obj=node.value)

    def _expr_Name(self, node: ast.Name) -> _Val:
        return self._name(node.id)

    def _name(self, name: str) -> _Val:
        if name in self.env:
            return self.env[name]
        if name in self.locals:  # a parameter, or a local not bound on this path
            return _Val(obj=_UNKNOWN)
        if name in self.closure:
            try:
                return _static(self.closure[name].cell_contents)
            except ValueError:  # an empty cell
                return _Val(obj=_UNKNOWN)
        if name in self.globals:
            return _static(self.globals[name])
        if name in self.builtins:
            return _Val(obj=self.builtins[name])
        return _Val(obj=None)  # a NameError at run time, not a task we miss

    def _expr_Attribute(self, node: ast.Attribute) -> _Val:
        return self._attribute(self._expr(node.value), node.attr)

    def _attribute(self, base: _Val, attribute: str) -> _Val:
        if base.callees:  # `inc.fn`, `inc.name`: plain values, not task runs
            return _Val(obj=_UNKNOWN)
        if type(base.obj) is types.ModuleType:
            missing = object()
            value = vars(base.obj).get(attribute, missing)  # never the module's __getattr__
            return _Val(obj=_UNKNOWN) if value is missing else _static(value)
        if base.obj is not _UNKNOWN and base.obj is not _LOCAL_FUNCTION:
            try:  # a task as a class attribute; getattr_static runs no descriptors or __getattr__
                return _static(inspect.getattr_static(base.obj, attribute))
            except AttributeError:
                pass
        return _Val(base.nodes, obj=_UNKNOWN)  # `future.result`, `df.groupby`: carries the value's nodes

    def _expr_List(self, node: ast.List | ast.Tuple | ast.Set) -> _Val:
        value = _union(self._expr(element) for element in node.elts)
        starred = any(isinstance(element, ast.Starred) for element in node.elts)
        return replace(value, count=None if starred else len(node.elts))

    _expr_Tuple = _expr_Set = _expr_List

    def _expr_Dict(self, node: ast.Dict) -> _Val:
        value = _union(self._expr(part) for part in (*node.keys, *node.values) if part is not None)
        return replace(value, count=None if None in node.keys else len(node.keys))

    def _expr_Starred(self, node: ast.Starred) -> _Val:
        return replace(self._expr(node.value), count=None, obj=_UNKNOWN)

    def _expr_Subscript(self, node: ast.Subscript) -> _Val:
        base = self._expr(node.value)
        key = self._expr(node.slice)
        if type(base.obj) in (list, tuple, dict) and isinstance(node.slice, ast.Constant):
            try:  # builtin containers indexed by a literal: no user code runs
                return _static(base.obj[node.slice.value])
            except (LookupError, TypeError):
                pass
        return _Val(_union((base, key)).nodes, base.callees, obj=_UNKNOWN)

    def _expr_IfExp(self, node: ast.IfExp) -> _Val:
        test = self._expr(node.test)
        with self._inside("conditional"):
            return _union((test, _merge(self._expr(node.body), self._expr(node.orelse))))

    def _expr_BoolOp(self, node: ast.BoolOp) -> _Val:
        values = [self._expr(node.values[0])]
        with self._inside("conditional"):  # `a or b()`: b may not be called
            values += [self._expr(value) for value in node.values[1:]]
        return _union(values)

    def _expr_NamedExpr(self, node: ast.NamedExpr) -> _Val:
        value = self._expr(node.value)
        self._bind(node.target, value)
        return value

    def _expr_Lambda(self, node: ast.Lambda) -> _Val:
        self._stmt_FunctionDef(node)
        return _Val(obj=_LOCAL_FUNCTION)

    def _expr_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> _Val:
        scoped = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        saved = {name: self.env[name] for name in scoped if name in self.env}
        values = []
        try:
            for number, generator in enumerate(node.generators):
                # The first iterable is evaluated once, outside; everything else once per element.
                if number == 0:
                    iterable = self._expr(generator.iter)
                else:
                    with self._inside("loop"):
                        iterable = self._expr(generator.iter)
                values.append(iterable)
                self._bind(generator.target, _Val(iterable.nodes, iterable.callees, obj=_UNKNOWN))
                with self._inside("loop"):
                    values += [self._expr(condition) for condition in generator.ifs]
            with self._inside("loop"):
                if isinstance(node, ast.DictComp):
                    values += [self._expr(node.key), self._expr(node.value)]
                else:
                    values.append(self._expr(node.elt))
        finally:  # comprehension variables do not leak (a walrus or `xs.append()` inside does)
            for name in scoped:
                self.env.pop(name, None)
            self.env.update(saved)
        return _union(values)

    _expr_SetComp = _expr_GeneratorExp = _expr_DictComp = _expr_ListComp

    # Calls ---------------------------------------------------------------------------------

    def _expr_Call(self, node: ast.Call) -> _Val:
        func = node.func
        if isinstance(func, ast.Attribute):
            base = self._expr(func.value)
            tasks = tuple(c for c in base.callees if c.kind == "task")
            if func.attr in ("submit", "map") and tasks:
                return self._task_call(node, tasks, func.attr)
            if func.attr == "with_options" and base.callees:
                return self._with_options(node, base.callees)
            callee = self._attribute(base, func.attr)
        else:
            callee = self._expr(func)
        if callee.callees:
            return self._task_call(node, callee.callees, "call")

        arguments = [self._expr(argument) for argument in node.args]
        arguments += [self._expr(keyword.value) for keyword in node.keywords]
        # Only the nodes flow through a call (`future.result()` carries the future's); what it
        # returns is not known to be any task, whatever tasks went in.
        result = _Val(_union((_Val(callee.nodes), *arguments)).nodes)
        target = callee.obj
        if target is unmapped:
            return replace(result, unmapped=True)
        if target is allow_failure and arguments:
            return replace(result, count=arguments[0].count)
        if target is range and node.args and not node.keywords and all(
                isinstance(a, ast.Constant) and type(a.value) is int for a in node.args):
            try:
                return replace(result, count=len(range(*(a.value for a in node.args))))
            except (TypeError, ValueError, OverflowError):
                return result
        if target in (list, tuple) and len(arguments) == 1:
            return replace(result, count=arguments[0].count)
        if type(target) is types.FunctionType:
            inlined = self._helper(node, target, arguments)
            if inlined is not None:  # what the helper returns is known exactly
                return inlined
        if isinstance(func, ast.Attribute) and func.attr in _MUTATORS and isinstance(func.value, ast.Name):
            self._carry(func.value.id, arguments)  # `futures.append(t.submit(x))`
        elif target is _UNKNOWN and not isinstance(func, ast.Attribute):
            # A parameter, a loop variable over unknown values, `getattr(...)(...)`: if that is a
            # task, the plan misses it. Methods of values (`df.groupby()`) are not flagged: too many.
            text = ast.unparse(func)
            text = text if len(text) <= 40 else text[:37] + "..."
            self.out.note(f"cannot tell what `{text}(...)` calls; a task it runs is not planned", self._line(node))
        return result

    def _with_options(self, node: ast.Call, callees: tuple[_Callee, ...]) -> _Val:
        for argument in (*node.args, *(k.value for k in node.keywords)):
            self._expr(argument)
        name = next((k.value for k in node.keywords if k.arg == "name"), None)
        if name is None:
            return _Val(callees=callees)
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            return _Val(callees=tuple(replace(c, name=name.value) for c in callees))
        self.out.note("with_options(name=...) is computed: runs will carry a name the plan does not know",
                      self._line(node))
        return _Val(callees=callees)

    def _task_call(self, node: ast.Call, callees: tuple[_Callee, ...], call: str) -> _Val:
        arguments, waits = [], []
        for argument in node.args:
            arguments.append(self._expr(argument))
        for keyword in node.keywords:
            value = self._expr(keyword.value)
            if keyword.arg == "wait_for":
                waits.append(value)
            elif keyword.arg != "return_state":
                arguments.append(value)
        upstream = _union(arguments).nodes
        waits_for = tuple(n for n in _union(waits).nodes if n not in upstream)
        count = None
        if call == "map":  # the engine maps every iterable argument; they must all have this length
            count = next((a.count for a in arguments if a.count is not None and not a.unmapped), None)
        line = self._line(node)
        dynamic = self._dynamic()
        if len(callees) > 1 and dynamic is None:  # `step(x)` where step is one of several tasks
            dynamic = "conditional"
        created = []
        for callee in callees:
            node_id = self.out.new_id(callee.name, line)
            subflow = self._subflow(callee, node_id, line) if callee.kind == "flow" else None
            self.out.nodes.append(PlannedTask(node_id, callee.name, call if subflow is None else "call", line,
                                              upstream, waits_for, dynamic, count, subflow))
            created.append(node_id)
        return _Val(tuple(created), obj=_UNKNOWN, count=count if len(callees) == 1 else None)

    def _subflow(self, callee: _Callee, node_id: str, line: int) -> FlowPlan:
        fn = _function_of(callee.target)
        code = fn.__code__ if fn is not None else None
        if code in self.stack or len(self.stack) >= _MAX_DEPTH:
            plan = FlowPlan(callee.name, complete=False, notes=("calls itself: not expanded again",))
        else:
            plan = _plan(callee.target, callee.name, prefix=f"{node_id}/", stack=self.stack)
        if not plan.complete:
            self.out.note(f"the plan of subflow {callee.name!r} may be incomplete", line)
        return plan

    def _helper(self, node: ast.Call, fn: types.FunctionType, arguments: list[_Val]) -> _Val | None:
        """A plain function the body calls: its task calls run inside this flow, so plan them here.

        The value it returns, or None when it is not planned inline.
        """
        if fn.__globals__ is not self.globals:
            # A helper module beside the flow file (`from helpers import prepare`): its lines are in
            # another file, so its tasks are flagged, not planned. Libraries are not user code.
            if _beside(fn, self.fn) and _reaches_tasks(fn):
                self.out.note(f"{fn.__qualname__}() in {fn.__module__} calls tasks; they are not planned",
                              self._line(node))
            return None
        if not _reaches_tasks(fn):
            return None
        if fn.__code__ in self.stack or len(self.stack) >= _MAX_DEPTH:
            self.out.note(f"{fn.__name__}() calls itself: its tasks are planned once", self._line(node))
            return None
        helper = _Planner(fn, self.out, stack=self.stack, context=tuple(self.context), exited=self.exited)
        try:
            returned = helper.run(self._bind_arguments(fn, node, arguments))
        except _NoSource as error:
            self.out.note(f"{fn.__name__}() calls tasks but is not planned: {error}", self._line(node))
            return None
        return _Val(returned.nodes)

    @staticmethod
    def _bind_arguments(fn: types.FunctionType, node: ast.Call, values: list[_Val]) -> dict[str, _Val]:
        """Each parameter of an inlined helper carries the nodes of the argument bound to it."""
        # `values` holds the positional arguments, then the keywords, as _expr_Call evaluated them.
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            return {}
        try:
            if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                raise TypeError("unpacked arguments")
            bound = signature.bind(*range(len(node.args)),
                                   **{k.arg: len(node.args) + i for i, k in enumerate(node.keywords)})
        except TypeError:  # cannot tell which argument is which: every parameter may carry any
            everything = _Val(_union(values).nodes)
            return {name: everything for name in signature.parameters}
        result = {}
        for name, index in bound.arguments.items():
            if isinstance(index, tuple):  # *args
                result[name] = _union(values[i] for i in index)
            elif isinstance(index, dict):  # **kwargs
                result[name] = _union(values[i] for i in index.values())
            else:
                result[name] = values[index]
        return result
