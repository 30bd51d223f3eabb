"""The planner: walks one function body in evaluation order, statement by statement."""

from __future__ import annotations

import ast
import builtins
import sys
import types
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Iterator

from .model import FlowPlan
from .values import (_UNKNOWN, _LOCAL_FUNCTION, _NoSource, _Val, _union, _merge_envs, _static, _Out,
    _function_of, _parse, _local_names)
from .expressions import _Expressions


class _Planner(_Expressions):
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

    def plan_subflow(self, flow: Any, name: str, prefix: str) -> FlowPlan:
        return _plan(flow, name, prefix=prefix, stack=self.stack)


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
