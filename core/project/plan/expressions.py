"""The planner's half that evaluates expressions (mixed into `_Planner`)."""

from __future__ import annotations

import ast
import inspect
import types
from dataclasses import replace

from flows_tui.futures import allow_failure, unmapped

from .model import MAX_DEPTH, MUTATORS, PlannedTask, FlowPlan
from .values import (_UNKNOWN, _LOCAL_FUNCTION, _NoSource, _Callee, _Val, _union, _merge, _static,
    _function_of, _reaches_tasks, _beside)


class _Expressions:
    """The expressions of a body: names, calls, comprehensions; task calls become planned nodes."""

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
        if isinstance(func, ast.Attribute) and func.attr in MUTATORS and isinstance(func.value, ast.Name):
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
        if code in self.stack or len(self.stack) >= MAX_DEPTH:
            plan = FlowPlan(callee.name, complete=False, notes=("calls itself: not expanded again",))
        else:
            plan = self.plan_subflow(callee.target, callee.name, prefix=f"{node_id}/")
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
        if fn.__code__ in self.stack or len(self.stack) >= MAX_DEPTH:
            self.out.note(f"{fn.__name__}() calls itself: its tasks are planned once", self._line(node))
            return None
        helper = type(self)(fn, self.out, stack=self.stack, context=tuple(self.context), exited=self.exited)
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
