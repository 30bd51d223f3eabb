"""`Flow.from_source(source, entrypoint)`: a flow loaded from a folder, a git repository or a
storage object, as Prefect 3 loads one, without its server.

`source` is a local folder (a path), a git URL (cloned, shallow, into a temporary folder with
the `git` command), or an object with Prefect's storage interface (`set_base_path(path)`,
`pull_code()`, sync or async, and `destination`). `entrypoint` is `path/to/file.py:function`
inside it, or a module path `package.module.function`. The file is loaded as flows-tui loads
any flow file (its own folder importable, its helpers sent to workers by value).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from flows_tui.errors import FlowFileError

from .flow_files import load_flow_file

GIT_TIMEOUT_SECONDS = 300


def load_from_source(source: Any, entrypoint: str) -> Any:
    """The flow `entrypoint` names in `source`, remembering where it came from (`_storage`, `_entrypoint`)."""
    if not isinstance(entrypoint, str) or not entrypoint:
        raise ValueError(f"entrypoint must be 'path/to/file.py:function' or 'module.function', got {entrypoint!r}")
    folder = _folder_of(source)
    flow = _load(folder, entrypoint)
    flow._storage = source
    flow._entrypoint = entrypoint
    return flow


def _folder_of(source: Any) -> Path:
    if isinstance(source, Path) or (isinstance(source, str) and not _is_git_url(source)):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise ValueError(f"from_source: {str(source)!r} is not a folder")
        return folder
    if isinstance(source, str):
        return _clone(source)
    if callable(getattr(source, "pull_code", None)) and hasattr(source, "destination"):
        if callable(getattr(source, "set_base_path", None)):
            source.set_base_path(Path(tempfile.mkdtemp(prefix="flows-tui-source-")))
        pulled = source.pull_code()
        if inspect.isawaitable(pulled):
            asyncio.run(_awaited(pulled))
        return Path(source.destination)
    raise TypeError(f"Unsupported source type {type(source).__name__!r}: give a folder, a git URL, or a storage "
                    "object with pull_code() and destination")


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _is_git_url(text: str) -> bool:
    return text.startswith(("https://", "http://", "ssh://", "git@", "git://")) or text.endswith(".git")


def _clone(url: str) -> Path:
    git = shutil.which("git")
    if git is None:
        raise RuntimeError(f"from_source({url!r}) clones with git, which is not installed")
    folder = Path(tempfile.mkdtemp(prefix="flows-tui-source-"))
    try:
        result = subprocess.run([git, "clone", "--depth", "1", "--quiet", url, str(folder)], capture_output=True,
                                text=True, timeout=GIT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"from_source: cloning {url!r} took over {GIT_TIMEOUT_SECONDS}s") from None
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["git clone failed"])[-1]
        raise RuntimeError(f"from_source: cannot clone {url!r}: {reason}")
    return folder


def _load(folder: Path, entrypoint: str) -> Any:
    from flows_tui.flows import Flow

    if ":" in entrypoint:
        relative, name = entrypoint.rsplit(":", 1)
        path = folder / relative
        if not path.is_file():
            raise FlowFileError(f"entrypoint {entrypoint!r}: no file {relative!r} in {str(folder)!r}", path=str(path))
        loaded = load_flow_file(path)
        if loaded.error is not None:
            raise loaded.error
        found = getattr(loaded.module, name, None)
    else:
        module_name, _, name = entrypoint.rpartition(".")
        if not module_name:
            raise ValueError(f"entrypoint {entrypoint!r}: give 'path/to/file.py:function' or 'module.function'")
        saved = list(sys.path)
        sys.path.insert(0, str(folder))
        try:
            found = getattr(importlib.import_module(module_name), name, None)
        finally:
            sys.path[:] = saved  # the folder is not left importable
    if not isinstance(found, Flow):
        raise ValueError(f"entrypoint {entrypoint!r}: {name!r} is {'missing' if found is None else 'not a flow'}")
    return found
