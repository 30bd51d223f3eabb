"""Flow files are imported in a separate process first, so that no file can stop or end ours.

A flow file is a program: at import it may loop, sleep, call `os._exit`, raise
KeyboardInterrupt, fork a process that lives on, or start threads. `list`, `check`, the UI
and `run` of another flow must go on whatever one file does. So each file is imported
first in a child process, with `[project] import_timeout` as its deadline; a file is
imported in flows-tui's own process only once its child import ended well (the UI and
`list` need the flows themselves: their parameters, plans and runs).

The child processes come from one small process started once (a fork server): it has
flows-tui imported already, and forks one child per batch of files, which imports them one
after another and reports each as a JSON line. A file that kills its child, or runs past
its deadline, is that file's error; a fresh child takes over the files after it. Each child
is a process group of its own, killed with whatever the files started once the batch is
done. A save in the UI costs one fork, not one Python start.
"""

from __future__ import annotations

import atexit
import importlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from flows_tui.errors import FlowFileError
from flows_tui.user_code.imports import forget_user_modules, put_on_sys_path

from .flow_files import FlowFile, flow_files, load_flow_file
from .flow_summaries import Tables, encode_tables, summarize, summarized_file
from .import_server import KILL_GRACE_SECONDS, Lines, preload

log = logging.getLogger("flows_tui.import_probe")

# How long the fork server may take to start and answer, on a loaded machine, before its
# files are imported without it (as before it existed), with a warning.
START_SECONDS = 30.0


@dataclass
class Probe:
    """How one file's import went in a child process."""

    path: Path
    error: FlowFileError | None = None
    helpers: dict[str, Path] = field(default_factory=dict)
    flows: list[dict[str, Any]] = field(default_factory=list)  # {"name", "function", "line"} in line order
    summary: dict[str, Any] | None = None  # what `list` and `check` read (see flow_summaries), when asked for


# The parent's side --------------------------------------------------------------------------------

class ForkServer:
    """The process that forks the children importing flow files; started on first use, ended at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._broken = False
        self._batches = 0
        self._reader: Lines | None = None

    def start(self) -> None:
        """Start the server now, without waiting for it (its Python starts while the caller works on)."""
        with self._lock:
            self._started()

    def _started(self) -> subprocess.Popen | None:
        if self._broken:
            return None
        if self._process is None or self._process.poll() is not None:
            code = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
                    "from flows_tui.project.import_server import serve; serve()")
            try:
                # A session of its own: Ctrl-C in the terminal is for the command, not for it. It
                # ends when its stdin closes, so when our process ends in any way.
                self._process = subprocess.Popen(
                    [sys.executable, "-c", code, json.dumps(sys.path)], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, bufsize=0)
            except OSError as error:
                log.warning("flow files are imported without a separate process: %s", error)
                self._broken = True
                return None
        return self._process

    def probe(self, sources: dict[Path, bytes], folder: Path, timeout: float,
              preload: list[str] = (), tables: dict | None = None, details: bool = False) -> Iterator[Probe]:
        """Import each file of `sources` (path → its bytes) in a child; yields each file's Probe as it ends.

        Files the server could not answer for (it failed to start or died) are not yielded:
        the caller imports those as before. `preload`: installed modules the files import,
        imported by the server first, so that its children (this batch's and later ones) have them.
        `tables`: flows.toml's `[flows.KEY]` tables; each good file's Probe then has its `summary`
        (`details`: with each flow's parameter form and plan, for the UI).
        """
        if not sources:
            return
        with self._lock:  # one batch at a time: the answers come back in order
            process = self._started()
            if process is None or not hasattr(os, "fork"):
                return
            self._batches += 1
            batch = self._batches
            request = {"batch": batch, "folder": str(folder), "timeout": timeout, "preload": list(preload),
                       "tables": None if tables is None else encode_tables(tables), "details": details,
                       "files": [[str(path), source.decode("latin-1")] for path, source in sources.items()]}
            try:
                process.stdin.write((json.dumps(request) + "\n").encode())
            except (OSError, ValueError) as error:
                self._fail(process, f"it could not be written to: {error}")
                return
            # Each file has its deadline in the server; this bounds the server itself.
            limit = START_SECONDS + len(sources) * (2 * timeout + KILL_GRACE_SECONDS + 1.0)
            end = time.monotonic() + limit
            if self._reader is None or self._reader.fd != process.stdout.fileno():
                self._reader = Lines(process.stdout.fileno())
            reader = self._reader
            finished = False
            unanswered = len(sources)
            try:
                while unanswered:
                    message = reader.next(end - time.monotonic())
                    if message is None:
                        self._fail(process, "it did not answer" if time.monotonic() >= end else "it ended")
                        finished = True
                        return
                    if message.get("batch") != batch:
                        continue  # the end of an earlier batch, whose last answer was all it waited for
                    if message.get("done"):
                        break
                    unanswered -= 1
                    yield _probe_from(message)
                finished = True
            finally:
                if not finished:  # the caller stopped early: the rest of this batch's answers are unread
                    _stop(process)
                    self._process, self._reader = None, None

    def _fail(self, process: subprocess.Popen, why: str) -> None:
        """This batch's files are imported as before; the next batch starts a fresh server."""
        log.warning("flow files are imported without a separate process this time: the import server %s", why)
        _stop(process)
        self._process, self._reader = None, None

    def close(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    try:
        process.stdin.close()
        process.wait(2)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()


def _probe_from(message: dict[str, Any]) -> Probe:
    path = Path(message["path"])
    error = message.get("error")
    return Probe(path, helpers={name: Path(file) for name, file in message.get("helpers", {}).items()},
                 flows=message.get("flows", []), summary=message.get("summary"),
                 error=None if error is None else FlowFileError(
                     error["reason"], path=str(path), line=error.get("line"), traceback=error.get("traceback"),
                     error_type=error.get("type")))


_server = ForkServer()
atexit.register(_server.close)


def fork_server() -> ForkServer:
    return _server


def load_flow_files(paths: list[Path], folder: Path, *,
                    sources: dict[Path, bytes | None] | None = None) -> list[FlowFile]:
    """`load_flow_file` for each of `paths`, each imported here only after its child import ended well.

    A file whose child import failed, exited, was killed or ran past its deadline is a FlowFile
    with that error (and the helpers it imports, so that saving one retries it), never imported
    here. Each file good in its child is imported here as soon as its answer arrives, while the
    child goes on with the next. `sources`: the bytes of files already read (an editor's save).
    """
    from .config import import_timeout

    readable = _readable(paths, sources)
    # The installed libraries the files import (pandas, dask.dataframe...) are imported here and in
    # the server at once, rather than one after the other; the user's own files only after their check.
    modules = installed_imports(readable, folder)
    if modules:
        threading.Thread(target=preload, args=(modules,), name="flows-tui-preload", daemon=True).start()
    loaded: dict[Path, FlowFile] = {}
    for probe in _server.probe(readable, folder, import_timeout(), preload=modules):
        if probe.error is None:
            loaded[probe.path] = load_flow_file(probe.path, root=folder, source=readable[probe.path])
        else:
            loaded[probe.path] = _failed(probe)
    return [loaded[path] if path in loaded else load_flow_file(path, root=folder, source=readable.get(path))
            for path in paths]



def _readable(paths: list[Path], sources: dict[Path, bytes | None] | None) -> dict[Path, bytes]:
    """Each of `paths` that can be read, with its bytes (`sources`: those already read, an editor's save).
    A file that cannot be read is left out: load_flow_file says what is wrong with it."""
    readable: dict[Path, bytes] = {}
    for path in paths:
        source = (sources or {}).get(path)
        if source is None:
            try:
                source = path.read_bytes()
            except OSError:
                continue
        readable[path] = source
    return readable

def installed_imports(sources: dict[Path, bytes], folder: Path) -> list[str]:
    """The modules the files import at their top level that are installed, not the user's own
    (none found under `folder`, the flows directory, nor flows-tui itself), not imported here yet."""
    import ast
    import importlib.util

    from flows_tui.user_code.imports import is_within

    names: dict[str, None] = {}
    for path, source in sources.items():
        try:
            tree = ast.parse(source, filename=str(path))
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names.update((alias.name, None) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names[node.module] = None
    found = []
    for name in names:
        top = name.split(".")[0]
        if name in sys.modules or top == "flows_tui":
            continue
        try:
            spec = importlib.util.find_spec(top)  # a top-level name: found without running anything
        except (ImportError, ValueError):
            continue
        origin = spec and (spec.origin or next(iter(spec.submodule_search_locations or ()), None))
        if origin and origin not in ("built-in", "frozen") and is_within(origin, str(folder)):
            continue  # the user's: imported only as part of a file, after its check
        if spec is not None:
            found.append(name)
    return found


def probe_files(paths: list[Path], folder: Path) -> dict[Path, Probe] | None:
    """How each file imports in a child, without importing any here (None: no child could be had)."""
    from .config import import_timeout

    readable = {}
    for path in paths:
        try:
            readable[path] = path.read_bytes()
        except OSError:
            pass
    probes = {probe.path: probe for probe in _server.probe(readable, folder, import_timeout())}
    return probes if len(probes) == len(readable) else None


def _failed(probe: Probe) -> FlowFile:
    path = _resolved(probe.path)
    error = probe.error
    assert error is not None
    return FlowFile(path, error=FlowFileError(error.reason, path=str(path), line=error.line,
                                              traceback=error.traceback, error_type=error.error_type),
                    helpers=probe.helpers)


def load_directory(directory: Path, *, only: list[Path] | None = None) -> list[FlowFile]:
    """Every flow file under `directory` (a folder or one file), imported afresh with the helpers it imports
    (`only`: these of them)."""
    root = directory.resolve()
    folder = root if root.is_dir() else root.parent
    # Modules of an earlier load (of this or another flows directory) may be older than
    # their files: every helper is imported anew.
    forget_user_modules()
    importlib.invalidate_caches()
    put_on_sys_path(folder, first=True)
    return load_flow_files(flow_files(root) if only is None else only, folder)


def summarize_directory(directory: Path, tables: Tables, *, details: bool = False) -> list[FlowFile]:
    """Every flow file under `directory` as `list` and `check` read it, none imported here.

    Each file is imported in a child, which reads its flows (see `flow_summaries`) and checks
    `tables`' parameters against them. Only when no child can be had (no fork server) are the
    files imported here, as `load_directory` does, and read the same way. `details`: each flow's
    parameter form and plan too (see `flow_summaries.summarize`).
    """
    root = directory.resolve()
    folder = root if root.is_dir() else root.parent
    put_on_sys_path(folder, first=True)
    return summarize_files(flow_files(root), folder, tables, details=details)


def summarize_files(paths: list[Path], folder: Path, tables: Tables, *,
                    sources: dict[Path, bytes | None] | None = None, details: bool = False) -> list[FlowFile]:
    """`paths` as `summarize_directory` reads them (`sources`: the bytes of files already read)."""
    from .config import import_timeout

    readable = _readable(paths, sources)
    summarized: dict[Path, FlowFile] = {}
    modules = installed_imports(readable, folder)  # for the server's children, not imported here
    for probe in _server.probe(readable, folder, import_timeout(), preload=modules, tables=tables, details=details):
        if probe.error is not None:
            summarized[probe.path] = _failed(probe)
        elif probe.summary is not None:
            summarized[probe.path] = summarized_file(_resolved(probe.path), probe.summary, probe.helpers,
                                                     readable.get(probe.path))
    missing = [path for path in paths if path not in summarized]
    if missing:  # unreadable files (their error, read here), or no fork server: imported here as before
        forget_user_modules()
        importlib.invalidate_caches()
        for path, loaded in zip(missing, load_flow_files(missing, folder, sources=sources)):
            summarized[path] = loaded if loaded.module is None else summarized_file(
                loaded.path, summarize(loaded, tables, details=details), loaded.helpers, readable.get(path))
    return [summarized[path] for path in paths]


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()
