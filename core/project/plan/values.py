"""What the planner knows about a value while it walks a body: which planned nodes it carries,
which Task, Flow or helper it may be; and reading a function's source without running it."""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from flows_tui.flows import Flow
from flows_tui.tasks import Task
from flows_tui.tracebacks import is_user_file
from .model import PlannedTask


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
