"""The user's own modules that flow files import, and forgetting them when they change.

`from helpers import clean_row`, with helpers.py beside the flows, is an ordinary import:
the module sits in `sys.modules` under its own name. A reload drops the stale ones, so the
next import runs the code just saved; it never edits a module object in place, so a run
still holding the old one keeps working.

Which modules a file imports is read from its import statements (anywhere in the file,
functions included) and looked up in `sys.modules`, i.e. where the import really went;
an import that has not run yet is looked for on disk beside the file.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
import sys
import sysconfig
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

PRIVATE_PREFIX = "flows_tui_user_"  # flow files' own private module names; `reload` manages those

_lock = threading.Lock()
_added_folders: set[str] = set()  # folders flows-tui put on sys.path (and only those)
_helpers: dict[str, str] = {}  # every user module a flow file was seen to import: name → file
_names: dict[str, tuple[bytes, tuple[str, ...]]] = {}  # file → (digest of its bytes, names it imports)


def put_on_sys_path(folder: Path, *, first: bool = False) -> None:
    """Let flow files in `folder` import their neighbours, as a script run from there could.

    `first` is for loading a whole flows directory: its folder goes first (of the user's folders,
    after the standard library: see _after_standard_library), and the folders
    flows-tui added for other flows directories leave sys.path, so that their helpers
    cannot stand in for one missing here.
    """
    entry = str(folder)
    with _lock:
        if first:
            for other in _added_folders - {entry}:
                if not other.startswith(entry + os.sep):
                    _added_folders.discard(other)
                    if other in sys.path:
                        sys.path.remove(other)
        if entry not in sys.path:
            _added_folders.add(entry)
            sys.path.insert(_after_standard_library(), entry)
        elif first and sys.path[_after_standard_library()] != entry:
            sys.path.remove(entry)
            sys.path.insert(_after_standard_library(), entry)


@functools.lru_cache(maxsize=1)
def _standard_library_folders() -> frozenset[str]:
    return frozenset(os.path.realpath(sysconfig.get_path(name)) for name in ("stdlib", "platstdlib"))


def _after_standard_library() -> int:
    """Where a folder of the user's goes on sys.path: after Python's standard library, before
    installed packages. A flow file named numbers.py or json.py must not replace a standard
    module (in Dask's worker processes, which inherit sys.path, it would stop them starting);
    a helper module still wins over an installed package of the same name."""
    stdlib = _standard_library_folders()
    last = -1
    for index, entry in enumerate(sys.path):
        real = os.path.realpath(entry) if entry else ""
        installed = "site-packages" in real or "dist-packages" in real  # a venv's platstdlib holds them
        if entry.endswith(".zip") or not installed and any(real == folder or real.startswith(folder + os.sep)
                                                           for folder in stdlib):
            last = index
    return last + 1


def is_within(file: str, folder: str) -> bool:
    """Whether `file` is the user's: under `folder`, outside hidden folders, __pycache__ and installed packages."""
    prefix = folder.rstrip(os.sep) + os.sep
    if not file.startswith(prefix):
        return False
    return not any(part.startswith(".") or part in ("__pycache__", "site-packages", "dist-packages")
                   for part in file[len(prefix):].split(os.sep)[:-1])


def local_modules(path: Path, root: Path, *, package: str = "", also: Iterable[str] = ()) -> dict[str, Path]:
    """The user's modules under `root` that `path` imports, directly or through one another: name → file.

    `package` is the file's own package, for its relative imports; `also` names modules
    that appeared in `sys.modules` while the file ran (an `importlib.import_module` call).
    """
    folder = str(root)
    found: dict[str, Path] = {}
    pending: list[tuple[Path, str]] = [(path, package)]
    seen = {path}

    def add(name: str, file: Path) -> None:
        found[name] = file
        if file not in seen:
            seen.add(file)
            pending.append((file, _package_of(name, file)))

    for name in also:
        origin = _origin(sys.modules.get(name))
        if origin is not None and is_within(origin, folder) and not _is_ours(name):
            add(name, Path(origin))
    while pending:
        file, file_package = pending.pop()
        for written in imported_names(file):
            name = _absolute(written, file_package)
            if name is None or _is_ours(name):
                continue
            module = sys.modules.get(name)
            if module is not None:
                origin = _origin(module)
                if origin is not None and is_within(origin, folder):
                    add(name, Path(origin))
            else:
                on_disk = _find_on_disk(name, (file.parent, root), folder)
                if on_disk is not None:
                    add(name, on_disk)
    with _lock:
        _helpers.update((name, str(file)) for name, file in found.items())
    return found


def forget_modules(root: Path, saved: set[Path]) -> set[str]:
    """Drop from `sys.modules` the user's modules under `root` that are, or import, a saved file.

    A package goes as a whole: a fresh `pkg` beside an old `pkg.sub` would lack the
    attribute `import pkg.sub` relies on. Returns the names dropped.
    """
    folder = str(root)
    with _lock:
        known = {name: Path(file) for name, file in _helpers.items() if is_within(file, folder)}
    stale_packages = set()
    for name, file in known.items():
        if name not in sys.modules:
            continue
        reached = local_modules(file, root, package=_package_of(name, file)).values()
        if file in saved or saved.intersection(reached):
            stale_packages.add(name.partition(".")[0])
    dropped = set()
    for name, module in list(sys.modules.items()):
        origin = _origin(module)
        if (name.partition(".")[0] in stale_packages and origin is not None and is_within(origin, folder)
                and not _is_ours(name)):
            sys.modules.pop(name, None)
            dropped.add(name)
    for file in saved:
        _forget_bytecode(file)
    return dropped


def forget_user_modules() -> None:
    """Drop every user module a flow file imported, from any flows directory: the next imports start afresh."""
    with _lock:
        helpers = dict(_helpers)
    for name, file in helpers.items():
        if _origin(sys.modules.get(name)) == file:
            sys.modules.pop(name, None)


def imported_names(path: Path) -> tuple[str, ...]:
    """Every module name the file's import statements name; relative names keep their leading dots."""
    try:
        source = path.read_bytes()
    except OSError:
        return ()
    digest = hashlib.blake2b(source, digest_size=16).digest()
    cached = _names.get(str(path))
    if cached is not None and cached[0] == digest:
        return cached[1]
    try:
        tree = ast.parse(source, str(path))
    except (SyntaxError, ValueError):
        names: tuple[str, ...] = ()
    else:
        names = tuple(dict.fromkeys(_names_in(tree)))
    _names[str(path)] = (digest, names)
    return names


def _names_in(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _with_parents(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            yield from _with_parents(base)
            for alias in node.names:
                if alias.name != "*":  # `from pkg import sub` may name a submodule
                    yield f"{base}.{alias.name}" if node.module else base + alias.name


def _with_parents(name: str) -> Iterator[str]:
    """`a.b.c` imports `a`, `a.b` and `a.b.c`."""
    dots = len(name) - len(name.lstrip("."))
    parts = name[dots:].split(".") if name[dots:] else []
    if not parts:
        yield name
    for end in range(1, len(parts) + 1):
        yield name[:dots] + ".".join(parts[:end])


def _absolute(name: str, package: str) -> str | None:
    if not name.startswith("."):
        return name
    if not package:
        return None  # a relative import outside a package fails when it runs; nothing to follow
    try:
        return importlib.util.resolve_name(name, package)
    except (ImportError, ValueError):
        return None


def _package_of(name: str, file: Path) -> str:
    return name if file.name == "__init__.py" else name.rpartition(".")[0]


def _is_ours(name: str) -> bool:
    """flows-tui's own modules (a flows directory may hold its source tree) and flow files' private names."""
    return name.startswith(PRIVATE_PREFIX) or name == "flows_tui" or name.startswith("flows_tui.")


def _origin(module: Any) -> str | None:
    try:
        origin = getattr(module, "__file__", None)
    except Exception:  # an odd object in sys.modules (a lazy module) may raise on any attribute
        return None
    return origin if isinstance(origin, str) else None


def _find_on_disk(name: str, folders: Iterable[Path], root: str) -> Path | None:
    relative = name.replace(".", os.sep)
    for folder in folders:
        for candidate in (folder / f"{relative}.py", folder / relative / "__init__.py"):
            if candidate.is_file() and is_within(str(candidate), root):
                return candidate
    return None


def _forget_bytecode(file: Path) -> None:
    """The import system trusts __pycache__ when a save keeps the size and the whole second of the mtime."""
    try:
        os.remove(importlib.util.cache_from_source(str(file)))
    except (OSError, ValueError, NotImplementedError):
        pass
