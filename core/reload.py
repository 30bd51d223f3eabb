"""Finding and loading flow files.

Each file is loaded under a private module name with `spec_from_file_location`, so a
user's `etl.py` never collides with an installed `etl`, and is registered with
cloudpickle by value, so workers run the code just loaded without importing it.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import cloudpickle

from .errors import FlowFileError, UsageError
from .flows import Flow

MODULE_PREFIX = "flows_tui_user_"


@dataclass
class FlowFile:
    path: Path
    flows: dict[str, Flow] = field(default_factory=dict)  # flow name → Flow
    functions: dict[str, str] = field(default_factory=dict)  # function name → flow name
    error: FlowFileError | None = None
    module: ModuleType | None = None


def module_name_for(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"{MODULE_PREFIX}{stem}_{digest}"


def _error_line(error: BaseException, path: Path) -> int | None:
    if isinstance(error, SyntaxError) and error.filename and Path(error.filename).resolve() == path.resolve():
        return error.lineno
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename and Path(frame.filename).resolve() == path.resolve():
            line = frame.lineno
    return line


def _register_helpers(directory: Path) -> None:
    """Modules the user imported from the flows directory travel by value too."""
    directory = directory.resolve()
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if not filename or module.__name__.startswith(MODULE_PREFIX):
            continue
        try:
            inside = Path(filename).resolve().is_relative_to(directory)
        except (OSError, ValueError):
            continue
        if inside and "site-packages" not in filename:
            try:
                cloudpickle.register_pickle_by_value(module)
            except ValueError:
                pass


def load_flow_file(path: Path) -> FlowFile:
    """Import `path` afresh; a file that fails to import returns its error instead of raising."""
    path = path.resolve()
    name = module_name_for(path)
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return FlowFile(path, error=FlowFileError("not a loadable Python file", path=str(path)))
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:  # a user's file may raise anything, SystemExit included
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
        if isinstance(error, KeyboardInterrupt):
            raise
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        message = f"{type(error).__name__}: {error.msg if isinstance(error, SyntaxError) else error}"
        return FlowFile(path, error=FlowFileError(message, path=str(path), line=_error_line(error, path),
                                                  traceback=detail, error_type=type(error).__name__))
    cloudpickle.register_pickle_by_value(module)
    _register_helpers(path.parent)
    loaded = FlowFile(path, module=module)
    for attribute, value in vars(module).items():
        if isinstance(value, Flow) and getattr(value.fn, "__module__", None) == name:
            loaded.flows[value.name] = value
            loaded.functions[value.fn.__name__] = value.name
    return loaded


def flow_files(directory: Path) -> list[Path]:
    """Every .py file under `directory`, skipping `_*`, hidden folders and __pycache__."""
    if directory.is_file():
        return [directory]
    found = []
    for path in sorted(directory.rglob("*.py")):
        parts = path.relative_to(directory).parts
        if any(p.startswith(".") or p == "__pycache__" for p in parts[:-1]) or path.name.startswith(("_", ".")):
            continue
        found.append(path)
    return found


def load_directory(directory: Path) -> list[FlowFile]:
    return [load_flow_file(path) for path in flow_files(directory)]


def _normalize(name: str) -> str:
    return name.replace("_", "-").lower()


def find_flow(spec: str, directory: Path, *, cwd: Path | None = None) -> tuple[Flow, FlowFile]:
    """Resolve `FLOW` from the command line: a flow's name, its function's name, or `file.py:function`."""
    if ":" in spec and spec.split(":", 1)[0].endswith(".py"):
        file_part, function = spec.split(":", 1)
        path = Path(file_part)
        if not path.is_absolute():
            candidates = [(cwd or Path.cwd()) / path, directory / path]
            path = next((c for c in candidates if c.exists()), candidates[0])
        if not path.exists():
            raise UsageError(f"{file_part}: no such flow file")
        loaded = load_flow_file(path)
        if loaded.error is not None:
            raise loaded.error
        flow_name = loaded.functions.get(function)
        if flow_name is None:
            hint = _suggest(function, list(loaded.functions))
            raise UsageError(f"{file_part}: no flow function named {function!r}{hint}")
        return loaded.flows[flow_name], loaded

    if not directory.exists():
        raise UsageError(f"flows directory {directory} does not exist (set [project] flows_dir in flows.toml)")
    files = load_directory(directory)
    matches: list[tuple[Flow, FlowFile]] = []
    for loaded in files:
        for name, flow in loaded.flows.items():
            function = flow.fn.__name__
            if spec in (name, function) or _normalize(spec) in (_normalize(name), _normalize(function)):
                matches.append((flow, loaded))
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        where = ", ".join(str(m[1].path) for m in matches)
        raise UsageError(f"flow name {spec!r} is defined more than once: {where}")
    broken = [f for f in files if f.error is not None]
    known = [name for f in files for name in f.flows]
    hint = _suggest(spec, known)
    message = f"no flow named {spec!r} in {directory}{hint}"
    if broken:
        message += "; these files failed to load: " + "; ".join(str(f.error) for f in broken)
    raise UsageError(message)


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if known:
        return f" (known: {', '.join(sorted(known))})"
    return ""
