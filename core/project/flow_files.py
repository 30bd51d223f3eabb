"""Finding flow files and loading them; `flows_directory` keeps them loaded while the user edits them.

Each file is loaded under a private module name with `spec_from_file_location`, so a
user's `etl.py` never collides with an installed `etl`, and is registered with
cloudpickle by value, so workers run the code just loaded without importing it.

A reload never changes a module object in place: it builds a fresh one and swaps it into
`sys.modules`. Whoever still holds an old Flow (a run in progress) keeps the functions,
globals and helper modules it started with.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import os
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable


from flows_tui.errors import FlowFileError
from flows_tui.flows import Flow
from flows_tui.user_code.pickling import send_by_value
from flows_tui.tracebacks import format_exception
from flows_tui.user_code.imports import PRIVATE_PREFIX as MODULE_PREFIX
from flows_tui.user_code.imports import local_modules, put_on_sys_path

from .flow_paths import flow_files, is_flow_file  # noqa: F401  (where the rest of the project finds them)


@dataclass
class FlowFile:
    path: Path
    flows: dict[str, Flow] = field(default_factory=dict)  # flow name → Flow
    functions: dict[str, str] = field(default_factory=dict)  # function name → flow name
    error: FlowFileError | None = None
    module: ModuleType | None = None
    # The user's own modules this file imports, directly or through one another: module name → file.
    helpers: dict[str, Path] = field(default_factory=dict)
    # Read in the child that imported the file, for `list` and `check` (the file was not imported
    # here; `flows` then holds FlowSummary objects): every flow the file defines, in line order.
    defined: list[FlowSummary] | None = None
    # The bytes those summaries were read from: what running one of its flows imports here, even
    # once a later save broke the file (its last good flows stay listed, and runnable).
    source: bytes | None = None


@dataclass(frozen=True)
class FlowSummary:
    """What `list` and `check` need of a flow, from the child process that imported its file."""

    name: str
    function: str  # the flow function's name
    line: int | None  # its definition's first line
    file: str | None  # where its code is (the flow file, resolved)
    identity: str  # the same for two flows of one function (`with_options` copies)
    parameters: tuple[dict, ...] = ()  # {"name", "default" (JSON-safe), "required"}, in signature order
    table: str | None = None  # the `[flows.KEY]` of flows.toml it matched, in the tables sent to the child
    problem: tuple[str, str | None] | None = None  # that table's parameters against its signature: (message, parameter)
    # For the UI, when asked for (`details`): the parameter form's fields, {"name", "type", "required",
    # "accepted", "choices", "text" (the default as typed)}, or None with `form_error`; and the plan.
    form: tuple[dict, ...] | None = None
    form_error: str | None = None
    plan: Any = None  # flows_tui.project.plan.FlowPlan


def module_name_for(path: Path) -> str:
    digest = hashlib.sha1(os.fsencode(path.resolve())).hexdigest()[:8]  # a latin-1 name is not UTF-8
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"{MODULE_PREFIX}{stem}_{digest}"


# Discovery: in flow_paths (light, for the UI's first frame) ---------------------------------------

# Loading one file ---------------------------------------------------------------------------------

def _error_line(error: BaseException, path: Path) -> int | None:
    if isinstance(error, SyntaxError) and error.filename and Path(error.filename).resolve() == path:
        return error.lineno
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename and Path(frame.filename).resolve() == path:
            line = frame.lineno
    return line


def _load_error(error: BaseException, path: Path) -> FlowFileError:
    own_syntax_error = (isinstance(error, SyntaxError) and error.filename
                        and Path(error.filename).resolve() == path)
    # A helper's SyntaxError keeps its "(helpers.py, line 3)": the line given is the import in this file.
    message = f"{type(error).__name__}: {error.msg if own_syntax_error else error}"
    detail = format_exception(error)
    return FlowFileError(message, path=str(path), line=_error_line(error, path), traceback=detail,
                         error_type=type(error).__name__)


class ImportExited(SystemExit):
    """A flow file called os._exit() while it was imported: the file's error, not the end of the process."""

    def __str__(self) -> str:
        return f"os._exit({self.code}) called while the file was imported"


_importing = threading.local()
_real_exit = os._exit


def _exit_unless_importing(status: int) -> None:
    """`os._exit` while flow files are imported: from a file's import thread, that file's error (it
    ended `list`, `check`, `run` of any other flow, and the UI, at once); from anywhere else, as always."""
    if getattr(_importing, "active", False):
        raise ImportExited(status)
    _real_exit(status)


def _run_module(text: bytes, path: Path, module: ModuleType) -> FlowFileError | None:
    """Execute a flow file's code into `module` on a thread of its own, within the import deadline.

    Past the deadline the file is an error and the thread is left to itself (a daemon: it never
    holds the process). On its own thread, what the file raises, KeyboardInterrupt and SystemExit
    included, is the file's error; a real Ctrl-C still reaches the command on the main thread.
    """
    outcome: dict[str, BaseException] = {}
    if os._exit is not _exit_unless_importing:
        os._exit = _exit_unless_importing  # type: ignore[assignment]

    def execute() -> None:
        _importing.active = True
        try:
            exec(compile(text, str(path), "exec", dont_inherit=True), module.__dict__)
        except BaseException as error:  # a user's file may raise anything, SystemExit included
            outcome["error"] = error

    thread = threading.Thread(target=execute, name=f"flows-tui-import-{path.name}", daemon=True)
    from .config import import_timeout

    # `[project] import_timeout`: a file that loops or waits at import is an error row, and the
    # other files, the command and the UI go on.
    timeout = import_timeout()

    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        line = None
        frame = sys._current_frames().get(thread.ident or 0)
        while frame is not None:  # where in the file it is stuck: the line the user will look at
            if frame.f_code.co_filename == str(path):
                line = frame.f_lineno
                break
            frame = frame.f_back
        return FlowFileError(f"import did not finish in {timeout:g} s ([project] import_timeout)",
                             path=str(path), line=line, error_type="TimeoutError")
    error = outcome.get("error")
    return None if error is None else _load_error(error, path)


def load_flow_file(path: Path, *, root: Path | None = None, source: bytes | None = None,
                   for_workers: bool = True) -> FlowFile:
    """Import `path` afresh; a file that fails to import returns its error instead of raising.

    Modules under `root` (default: the file's folder) that the file imports are the user's
    helpers: they are recorded on the FlowFile and travel to workers by value too. `source`:
    the file's bytes when the caller has read them already. `for_workers`: register the code
    to travel to workers by value.
    """
    try:
        path = path.resolve(strict=True)
    except (OSError, RuntimeError) as error:  # a symlink loop (RuntimeError before Python 3.13), a dangling link
        path = path.absolute()
        reason = "a symlink loop" if isinstance(error, RuntimeError) or error.errno == errno.ELOOP else \
            (error.strerror or type(error).__name__).lower()
        return FlowFile(path, error=FlowFileError(f"cannot read the file: {reason}", path=str(path),
                                                  error_type=type(error).__name__))
    root = (root or path.parent).resolve()
    name = module_name_for(path)
    put_on_sys_path(path.parent)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return FlowFile(path, error=FlowFileError("not a loadable Python file", path=str(path)))
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    imported_before = set(sys.modules)
    sys.modules[name] = module
    # Compiled from the bytes just read rather than by the import system, which trusts a
    # __pycache__ entry when two saves land in the same second with the same size.
    text = path.read_bytes() if source is None else source
    error = _run_module(text, path, module)
    if error is not None:
        if previous is not None:
            sys.modules[name] = previous  # the last good version stays the current one
        else:
            sys.modules.pop(name, None)
        helpers = local_modules(path, root, also=set(sys.modules) - imported_before)
        return FlowFile(path, error=error, helpers=helpers)
    helpers = local_modules(path, root, also=set(sys.modules) - imported_before)
    if for_workers:  # not when only checking that the file imports (in a child process)
        send_by_value(module, source=importlib.util.decode_source(text))
        for helper in helpers:
            if helper in sys.modules:
                send_by_value(sys.modules[helper])
    loaded = FlowFile(path, module=module, helpers=helpers)
    for value in vars(module).values():
        if isinstance(value, Flow) and getattr(value.fn, "__module__", None) == name:
            loaded.flows[value.name] = value
            loaded.functions[value.fn.__name__] = value.name
    return loaded


# Flow names ---------------------------------------------------------------------------------------

def normalize_name(name: str) -> str:
    """How `run FLOW` compares names: `my_flow` and `My-Flow` are the same flow."""
    return name.replace("_", "-").lower()


def definition_line(flow: Flow | FlowSummary) -> int | None:
    """The line of the flow's first decorator, from its code: right even after the file changed."""
    if isinstance(flow, FlowSummary):
        return flow.line
    code = getattr(flow.fn, "__code__", None)
    return getattr(code, "co_firstlineno", None)


def function_name(flow: Flow | FlowSummary) -> str:
    return flow.function if isinstance(flow, FlowSummary) else flow.fn.__name__


def _same_function(one: Flow | FlowSummary, other: Flow | FlowSummary) -> bool:
    if isinstance(one, FlowSummary) or isinstance(other, FlowSummary):
        return isinstance(one, FlowSummary) and isinstance(other, FlowSummary) and one.identity == other.identity
    return one.fn is other.fn


def defined_flows(loaded: FlowFile) -> list[Flow] | list[FlowSummary]:
    """Every flow a file defines, in line order, including one whose name a later one in the file reuses."""
    if loaded.defined is not None:
        return list(loaded.defined)
    if loaded.module is None:
        return list(loaded.flows.values())
    found: dict[int, Flow] = {}
    for value in vars(loaded.module).values():
        if isinstance(value, Flow) and getattr(value.fn, "__module__", None) == loaded.module.__name__:
            found.setdefault(id(value), value)
    return sorted(found.values(), key=lambda flow: definition_line(flow) or 0)


@dataclass(frozen=True)
class DuplicateFlow:
    """A flow whose name (as `run FLOW` compares names) an earlier flow, another function, already has."""

    name: str
    path: Path
    line: int | None
    function: str
    first_path: Path
    first_line: int | None
    first_function: str

    def message(self, show: Callable[[Path], str] = str) -> str:
        """The problem without its own location; `show` writes a path as the reader would type it."""
        where = show(self.first_path) + (f":{self.first_line}" if self.first_line else "")
        return (f"flow {self.name!r} is already defined at {where} (function {self.first_function}); "
                f"`flows-tui run {self.name}` cannot tell them apart: rename one with @flow(name=...)")

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message()}"


def duplicate_flows(files: Iterable[FlowFile]) -> list[DuplicateFlow]:
    """Every flow named like an earlier one (file order, then line order), naming both places."""
    duplicates = []
    first: dict[str, tuple[Flow, Path]] = {}
    for loaded in files:
        for flow in defined_flows(loaded):
            key = normalize_name(flow.name)
            if key not in first:
                first[key] = (flow, loaded.path)
                continue
            original, original_path = first[key]
            if _same_function(original, flow):  # `with_options()` copies of one flow: one definition
                continue
            duplicates.append(DuplicateFlow(flow.name, loaded.path, definition_line(flow), function_name(flow),
                                            original_path, definition_line(original), function_name(original)))
    return duplicates
