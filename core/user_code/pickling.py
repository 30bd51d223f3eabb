"""How the user's code travels to workers: by value, never by module name.

Flow files are loaded under private module names that no worker can import, and a
remote worker has none of the user's files. cloudpickle sends their functions and
classes by value once a module is registered with it; but Dask pickles data (task
arguments, results moving between workers) with the standard pickler first, which
writes a user-defined class by name: an Enum parameter or a dataclass a task returns
would then fail to unpickle on another worker ("No module named 'flows_tui_user_…'").
So each class of a user module also gets a copyreg reducer that ships the class by
value alongside the instance.

A code object sent by value keeps its file name: cloudpickle 3.1.3 and later write
"<dynamic-code>" in its place, which would leave every traceback, warning and log record
of the user's code on a worker without its file and line. The source of each module sent
by value is kept here too, for the workers that have no copy of the file
(`flows_tui.engine.user_sources`).
"""

from __future__ import annotations

import copyreg
import linecache
import pickle
import types
from types import ModuleType
from typing import Any

import cloudpickle


class _ClassByValue:
    """Stands in for a class inside a reduce tuple; unpickles as the class itself."""

    __slots__ = ("cls",)

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __reduce__(self) -> Any:
        return cloudpickle.loads, (cloudpickle.dumps(self.cls, protocol=pickle.HIGHEST_PROTOCOL),)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The pickler checks that a reduce tuple starts with a callable; this one becomes the
        # class itself when unpickled.
        return self.cls(*args, **kwargs)


def _swap(value: Any, cls: type) -> Any:
    if value is cls:
        return _ClassByValue(cls)
    if type(value) is tuple:
        return tuple(_swap(item, cls) for item in value)
    return value


def _new(cls: type, *args: Any) -> Any:
    return cls.__new__(cls, *args)


def _new_ex(cls: type, args: tuple, kwargs: dict) -> Any:
    return cls.__new__(cls, *args, **kwargs)


def _reduce_by_value(obj: Any) -> Any:
    """The instance's own reduction, with its class sent by value instead of by name."""
    reduced = obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    if isinstance(reduced, str):  # a module-level singleton, pickled by name as the class allows
        return reduced
    cls = type(obj)
    build, args, *rest = reduced
    # The pickler insists the class of __newobj__ be a real type: rebuild through our own callables.
    if build is copyreg.__newobj__:
        build = _new
    elif build is copyreg.__newobj_ex__:
        build = _new_ex
    return (_swap(build, cls), _swap(args, cls), *rest)


def _code_at(rebuild: Any, args: tuple, filename: str) -> types.CodeType:
    return rebuild(*args).replace(co_filename=filename)


def _keeping_filename(reduce: Any) -> Any:
    def reduce_code(code: types.CodeType) -> Any:
        rebuild, args = reduce(code)
        if code.co_filename in args:  # this cloudpickle keeps it already
            return rebuild, args
        return _code_at, (rebuild, args, code.co_filename)

    reduce_code.keeps_filename = True
    return reduce_code


def _keep_code_filenames() -> None:
    """Make cloudpickle's code reducer keep `co_filename` (it is cloudpickle's table Dask pickles with)."""
    table = getattr(cloudpickle.Pickler, "_dispatch_table", None)
    if table is None or types.CodeType not in table:
        return  # a cloudpickle without that table pickles code its own way: nothing to mend
    if not getattr(table[types.CodeType], "keeps_filename", False):
        table[types.CodeType] = _keeping_filename(table[types.CodeType])


_keep_code_filenames()

# The source of each file whose module was sent by value, as it was when the module was loaded.
_sources: dict[str, str] = {}


def user_sources() -> dict[str, str]:
    """File name → source of every module sent by value so far."""
    return dict(_sources)


def send_by_value(module: ModuleType, *, source: str | None = None) -> None:
    """Register `module` so its functions, classes and their instances reach workers by value.

    `source`: the text the module was compiled from, when its file may have changed since.
    """
    filename = getattr(module, "__file__", None)
    if filename:
        if source is None:
            source = "".join(linecache.getlines(filename, vars(module)))
        if source:
            _sources[filename] = source
    try:
        cloudpickle.register_pickle_by_value(module)
    except ValueError:  # not importable as a module name: pickled by value already (__main__)
        pass
    for value in list(vars(module).values()):
        if isinstance(value, type) and value.__module__ == module.__name__:
            copyreg.pickle(value, _reduce_by_value)


def dispatch_table_by_name() -> dict:
    """copyreg's reducers without ours: for a pickler that must name the user's classes (hashing)."""
    return {kind: reducer for kind, reducer in copyreg.dispatch_table.items() if reducer is not _reduce_by_value}
