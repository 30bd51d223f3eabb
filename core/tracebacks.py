"""The user's code as the user reads it: tracebacks, warning locations and source lines.

A traceback shown anywhere (the `run` summary, the UI, `flows-tui logs`, the store) starts
at the user's code: flows-tui's and Dask's frames above or between the user's frames are
left out, as pytest and Prefect leave out their own. `FLOWS_TUI_DEBUG=1` (or `--debug`)
keeps every frame. Paths inside the project are shown relative to it.

Code travels to workers by value (`flows_tui.pickling`), and a worker on another machine,
or started in another directory, has no copy of the user's files: a worker plugin
(`flows_tui.engine.user_sources`) gives each worker the source of the files it lacks (in
`linecache`), so its tracebacks show the user's lines too.
"""

from __future__ import annotations

import functools
import os
import site
import sysconfig
import traceback
from pathlib import Path
from typing import Any

DEBUG_ENV = "FLOWS_TUI_DEBUG"

# Set on a worker by the UserSources plugin: the client's project folder and debug switch.
_root: str | None = None
_debug: bool | None = None


def debug_enabled() -> bool:
    """Whether tracebacks keep flows-tui's and Dask's frames (`FLOWS_TUI_DEBUG=1`, `--debug`)."""
    if _debug is not None:
        return _debug
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


# What is the user's code -------------------------------------------------------------------

_PACKAGE_DIR = os.path.join(os.path.dirname(os.path.realpath(__file__)), "")


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    paths = {sysconfig.get_paths().get(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(getattr(site, "getsitepackages", lambda: [])())
    paths.add(site.getusersitepackages())
    paths.add(_PACKAGE_DIR)  # flows_tui itself, even installed in development mode
    return tuple(os.path.join(os.path.realpath(path), "") for path in paths if path)


@functools.lru_cache(maxsize=4096)
def is_user_file(filename: str) -> bool:
    """Whether `filename` holds the user's code: outside the interpreter's libraries and flows-tui."""
    if not filename or filename.startswith("<frozen "):  # the standard library's frozen modules
        return False
    path = os.path.realpath(filename)
    if any(part in ("site-packages", "dist-packages") for part in Path(path).parts):
        return False
    return not path.startswith(_library_dirs())


@functools.cache
def _internal_dirs() -> tuple[str, ...]:
    """flows-tui's package and Dask's: the frames between the user's code and the worker thread."""
    dirs = [_PACKAGE_DIR]
    for name in ("dask", "distributed", "tornado", "cloudpickle"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        dirs.append(os.path.join(os.path.dirname(os.path.realpath(module.__file__)), ""))
    return tuple(dirs)


def _is_internal(filename: str) -> bool:
    # The import system's frozen frames are left out as Python itself leaves them out.
    return filename.startswith("<frozen importlib") or os.path.realpath(filename).startswith(_internal_dirs())


# How a path is shown -----------------------------------------------------------------------

def display_path(filename: str) -> str:
    """`filename` relative to the project folder when it lies inside it, else as it is."""
    if not filename or filename.startswith("<"):
        return filename
    root = _root or os.getcwd()
    try:
        relative = os.path.relpath(filename, root)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if relative.startswith("..") else relative


# Tracebacks -----------------------------------------------------------------------------------

def _trim(stack: traceback.StackSummary) -> list[traceback.FrameSummary]:
    """From the first frame of the user's code on, without flows-tui's and Dask's frames."""
    first = next((i for i, frame in enumerate(stack) if is_user_file(frame.filename)), None)
    if first is None:  # nothing of the user's: only where it was raised, not how it got there
        return []
    return [frame for frame in stack[first:] if not _is_internal(frame.filename)]


# A traceback that crossed from a worker (Dask pickles it with tblib) is rebuilt from frames
# running this stub: their file, line and name are real, the column range is the stub's.
_REBUILT = compile("raise __traceback_maker", "<string>", "exec").co_code


def _shape(shown: traceback.TracebackException, error: BaseException | None, keep_all: bool,
           seen: set[int]) -> None:
    if id(shown) in seen:
        return
    seen.add(id(shown))
    rebuilt = [frame.f_code.co_code == _REBUILT
               for frame, _ in traceback.walk_tb(getattr(error, "__traceback__", None))]
    for frame, stub in zip(shown.stack, rebuilt):
        if stub:  # no caret under a column range that belongs to the stub
            frame.colno = frame.end_colno = None
    frames = list(shown.stack) if keep_all else _trim(shown.stack)
    for frame in frames:
        frame.line  # read the source line now, under the file's real name
        frame.filename = display_path(frame.filename)
    shown.stack = traceback.StackSummary.from_list(frames)
    links = [(shown.__cause__, getattr(error, "__cause__", None)),
             (shown.__context__, getattr(error, "__context__", None))]
    links += zip(getattr(shown, "exceptions", None) or (), getattr(error, "exceptions", None) or ())
    for linked, linked_error in links:
        if linked is not None:
            _shape(linked, linked_error, keep_all, seen)


def format_exception(error: BaseException, *, debug: bool | None = None) -> str:
    """The traceback of `error` as the user should read it (see the module's docstring)."""
    keep_all = debug_enabled() if debug is None else debug
    try:
        shaped = traceback.TracebackException(type(error), error, error.__traceback__, compact=True)
        _shape(shaped, error, keep_all, set())
        return "".join(shaped.format()).rstrip()
    except Exception:  # never let the shaping hide the error itself
        return "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()


def adopt_client_settings(root: str, debug: bool) -> None:
    """On a worker: shape tracebacks as the client does (its project folder, its debug switch)."""
    global _root, _debug
    _root, _debug = root, debug
