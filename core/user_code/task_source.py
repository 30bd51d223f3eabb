"""The source of a task, as TASK_SOURCE sees it: its code and the user's code it reaches.

Computed on the client, once per Task object, before the task is submitted; workers only
receive the resulting hash. What counts as the user's code is defined here too, for the
input hashing in `flows_tui.cache`, which must name the user's classes rather than pickle them.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import sys
import types
import weakref
from typing import Any

from flows_tui.tracebacks import is_user_file

from .imports import PRIVATE_PREFIX


def is_user_module(name: str | None) -> bool:
    """Whether module `name` holds the user's own code, whose source counts in TASK_SOURCE.

    The user's code: flow files (loaded as `flows_tui_user_*`), `__main__` (a flow file run
    as a script), and every module whose file lies outside the interpreter's library
    directories (stdlib, site-packages): helper modules in the flows directory and the
    user's own project. A module that is not imported here arrived by value from the
    client, which is only done for user code. Library code, flows_tui included, is not.
    """
    if not name:
        return False
    if name.startswith(PRIVATE_PREFIX) or name == "__main__":
        return True
    module = sys.modules.get(name)
    if module is None:
        return True
    filename = getattr(module, "__file__", None)
    return bool(filename) and is_user_file(filename)


PRIMITIVES = (type(None), bool, int, float, complex, str, bytes)
# Class attributes that say where a class is rather than what it does.
_CLASS_BOOKKEEPING = frozenset({"__module__", "__qualname__", "__dict__", "__weakref__", "__firstlineno__"})
_task_sources: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def task_source(task: Any) -> str:
    """A hash of the code `task` runs: its function and everything of the user's it reaches.

    Followed transitively: names the code uses (nested functions and comprehensions
    included) looked up in its module's globals, its closure cells and defaults, the methods
    and bases of classes, and attributes used on the user's modules (`helpers.clean`).
    Functions and classes of the user's code count by their compiled code; literal
    constants (`LIMIT = 10`) by value; library code by its `__version__`, not its code.
    Compiled code rather than file text: it is exactly what runs, so a file saved after its
    module was imported cannot leave a stale hash; comments, blank lines and moving code
    around change nothing. Memoised per Task object (a reload creates new ones).
    """
    known = _task_sources.get(task)
    if known is None:
        walk = _SourceWalk()
        walk.value(getattr(task, "fn", task))  # a Task, or the function itself
        known = _task_sources[task] = walk.digest()
    return known


def _literal(value: Any) -> Any:
    """A constant as deterministic text: frozensets (e.g. `x in {"a", "b"}`) iterate in hash order."""
    kind = type(value)
    if kind is frozenset:
        return ("frozenset", tuple(sorted(repr(_literal(item)) for item in value)))
    if kind is tuple:
        return tuple(_literal(item) for item in value)
    if kind is types.CodeType:
        return code_fingerprint(value)
    return repr(value)


def code_fingerprint(code: types.CodeType) -> tuple:
    """What a code object does, without where it is: no file name, no line numbers."""
    return (code.co_name, code.co_code, _literal(code.co_consts), code.co_names, code.co_varnames,
            code.co_freevars, code.co_cellvars, code.co_argcount, code.co_posonlyargcount,
            code.co_kwonlyargcount, code.co_flags, getattr(code, "co_exceptiontable", b""))


def _names_used(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _names_used(constant)
    return names


def _constant(value: Any) -> str | None:
    """A global's or class attribute's value as text when it is a literal constant, else None."""
    kind = type(value)
    if kind in PRIMITIVES:
        return repr(value)
    if kind in (tuple, frozenset) and len(value) <= 256:
        parts = [_constant(item) for item in value]
        if None in parts:
            return None
        return f"{kind.__name__}({', '.join(sorted(parts) if kind is frozenset else parts)})"
    return None


class _SourceWalk:
    """Follows a function through the user's code, collecting a fingerprint of all it reaches."""

    def __init__(self) -> None:
        self._parts: set[str] = set()
        self._seen: set[int] = set()
        self._alive: list[Any] = []  # holds what was seen, so no id is reused during the walk

    def digest(self) -> str:
        return hashlib.sha256("\n".join(sorted(self._parts)).encode()).hexdigest()

    def _add(self, *entry: Any) -> None:
        # Each part hashed on its own and sorted: the order things are reached in does not matter.
        self._parts.add(hashlib.sha256(repr(entry).encode()).hexdigest())

    def _first_visit(self, thing: Any) -> bool:
        if id(thing) in self._seen:
            return False
        self._seen.add(id(thing))
        self._alive.append(thing)
        return True

    def _library(self, module_name: str | None) -> None:
        top = (module_name or "").partition(".")[0]
        if not top:
            return
        version = getattr(sys.modules.get(top), "__version__", None)
        self._add("library", top, version if isinstance(version, str) else None)

    def value(self, value: Any) -> None:
        if type(value) in PRIMITIVES or not self._first_visit(value):
            return
        if getattr(type(value), "wraps_user_function", False):  # a Task or a Flow: what counts is its function
            self.value(value.fn)
        elif isinstance(value, (types.MethodType, staticmethod, classmethod)):
            self.value(value.__func__)
        elif isinstance(value, property):
            for accessor in (value.fget, value.fset, value.fdel):
                self.value(accessor)
        elif isinstance(value, functools.partial):
            for part in (value.func, *value.args, *value.keywords.values()):
                self.value(part)
        elif isinstance(value, types.FunctionType):
            if is_user_module(value.__module__):
                self._function(value)
            else:
                self._library(value.__module__)
        elif isinstance(value, type):
            if is_user_module(value.__module__):
                self._class(value)
            else:
                self._library(value.__module__)
        elif isinstance(value, types.ModuleType):
            self._library(value.__name__)
        elif isinstance(value, types.BuiltinFunctionType):
            self._library(getattr(value, "__module__", None))
        else:
            try:
                wrapped = getattr(value, "__wrapped__", None)  # functools.lru_cache and other decorators
            except Exception:  # an object whose __getattr__ fails: nothing to follow there
                wrapped = None
            if callable(wrapped):
                self.value(wrapped)
            elif is_user_module(getattr(type(value), "__module__", None)):
                self.value(type(value))  # an instance of the user's class: that class's code counts

    def _global(self, name: str, value: Any, names: set[str]) -> None:
        if isinstance(value, types.ModuleType):
            if not is_user_module(value.__name__):
                self._library(value.__name__)
            elif self._first_visit(value):
                # Only the attributes the code names: an unrelated edit in that module changes nothing.
                namespace = vars(value)
                for attribute in sorted(names & namespace.keys()):
                    self._global(attribute, namespace[attribute], names)
            return
        text = _constant(value)
        if text is not None:
            self._add("constant", name, text)
        else:
            self.value(value)

    def _function(self, fn: types.FunctionType) -> None:
        code = fn.__code__
        defaults = (*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values())
        cells = []
        for cell in fn.__closure__ or ():
            try:
                cells.append(cell.cell_contents)
            except ValueError:  # a cell not filled yet
                cells.append(None)
        self._add("function", fn.__qualname__, code_fingerprint(code),
                  tuple(_constant(v) or type(v).__qualname__ for v in defaults),
                  tuple(_constant(v) or type(v).__qualname__ for v in cells))
        # co_names holds attribute names too (`df.clean`): a global of that name is followed as
        # well, which can only cost a needless miss, never a stale hit.
        names = _names_used(code)
        namespace = fn.__globals__
        for name in sorted(names & namespace.keys()):
            self._global(name, namespace[name], names)
        for value in (*cells, *defaults):
            self.value(value)

    def _class(self, cls: type) -> None:
        body = []
        for name, attribute in sorted(vars(cls).items()):
            if name in _CLASS_BOOKKEEPING:
                continue
            if name == "__annotations__" and isinstance(attribute, dict):
                body.append((name, tuple((key, str(value)) for key, value in attribute.items())))
                continue
            if isinstance(attribute, enum.Enum):
                body.append((name, _constant(attribute.value) or type(attribute.value).__qualname__))
                continue
            text = _constant(attribute)
            body.append((name, text if text is not None else type(attribute).__qualname__))
            if text is None:
                self.value(attribute)
        self._add("class", cls.__qualname__, tuple(base.__qualname__ for base in cls.__bases__), tuple(body))
        for base in cls.__bases__:
            self.value(base)
