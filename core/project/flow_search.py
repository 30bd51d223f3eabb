"""`run FLOW`: finding the one flow file that defines FLOW, importing no other file here.

A flow's name is read from each file's syntax tree first; only the files that may define it
are imported (each checked in a child process first: see `import_probe`). Found nowhere,
every file is imported in a child only, for the flows the syntax tree could not name and for
the suggestions and broken files the message lists.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable

from flows_tui.errors import FlowFileError, UsageError, did_you_mean
from flows_tui.flows import Flow

from .flow_files import FlowFile, defined_flows, definition_line, flow_files, normalize_name
from .flow_paths import flow_names_in_source  # noqa: F401  (where the UI finds it)
from .import_probe import load_directory, load_flow_files, probe_files


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
        loaded = load_flow_files([path], path.resolve().parent)[0]  # checked in a child first
        if loaded.error is not None:
            raise loaded.error
        # By the function itself: of two flows sharing one name, `loaded.flows` keeps only the last.
        chosen = next((flow for flow in defined_flows(loaded) if flow.fn.__name__ == function), None)
        if chosen is None:
            hint = _suggest(function, list(loaded.functions))
            raise UsageError(f"{file_part}: no flow function named {function!r}{hint}")
        return chosen, loaded

    if not directory.exists():
        raise UsageError(f"flows directory {directory} does not exist (set [project] flows_dir in flows.toml)")
    # Only the files that may define it are imported: another file that loops, waits, exits or
    # fails at import does not stop this flow from running. Found nowhere: every file, for the
    # suggestions and the broken files the message names.
    paths = flow_files(directory)
    candidates = _files_that_may_define(spec, paths)
    matches = _matches(spec, load_directory(directory, only=candidates)) if candidates else []
    known: list[str] = []
    broken: list[FlowFileError] = []
    if not matches:
        # Every file imported in a child only, for a flow its source does not name plainly, the
        # suggestions and the broken files the message names; here only a file defining it.
        folder = directory.resolve() if directory.is_dir() else directory.resolve().parent
        probes = probe_files(paths, folder)
        if probes is None:  # no child process could be had: as before it existed
            files = load_directory(directory)
            matches = _matches(spec, files)
            known = [name for loaded in files for name in loaded.flows]
            broken = [loaded.error for loaded in files if loaded.error is not None]
        else:
            wanted = normalize_name(spec)
            defining = [path for path, probe in probes.items()
                        if any(wanted in (normalize_name(flow["name"]), normalize_name(flow["function"]))
                               for flow in probe.flows)]
            matches = _matches(spec, load_directory(directory, only=defining)) if defining else []
            known = [flow["name"] for probe in probes.values() for flow in probe.flows]
            broken = [probe.error for probe in probes.values() if probe.error is not None]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        from .config import display_path

        where = ", ".join(f"{display_path(m[1].path)}:{definition_line(m[0])} (function {m[0].fn.__name__})"
                          if definition_line(m[0]) else display_path(m[1].path) for m in matches)
        raise UsageError(f"flow name {spec!r} is defined more than once: {where}; rename one with "
                         "@flow(name=...), or run FILE.py:FUNCTION")
    raise _not_found(spec, directory, known, broken)


def _files_that_may_define(spec: str, paths: list[Path]) -> list[Path]:
    """The flow files whose source may define flow `spec`: by their syntax tree, a function of that
    name or a `@flow(name=...)` of it; a file whose flows are named by an expression (not a plain
    string) may define any name, and so does a file that cannot be parsed."""
    wanted = normalize_name(spec)
    found = []
    for path in paths:
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (OSError, SyntaxError, ValueError, RecursionError):
            found.append(path)
            continue
        if any(name is None or normalize_name(name) == wanted for name in _flow_names(tree)):
            found.append(path)
    return found


def _flow_names(tree: ast.AST) -> Iterable[str | None]:
    """Every name a flow defined in `tree` may be run by (None: not known before it runs)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if not (isinstance(target, ast.Name) and target.id == "flow"
                        or isinstance(target, ast.Attribute) and target.attr == "flow"):
                    continue
                yield node.name
                if isinstance(decorator, ast.Call):
                    for keyword in decorator.keywords:
                        if keyword.arg == "name":
                            value = keyword.value
                            yield value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) \
                                else None
        elif isinstance(node, ast.Call):
            function = node.func
            called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
            if called in ("flow", "with_options") and any(k.arg == "name" for k in node.keywords):
                yield None  # flow(fn, name=...) or f.with_options(name=...): known once imported


def _matches(spec: str, files: list[FlowFile]) -> list[tuple[Flow, FlowFile]]:
    matches: list[tuple[Flow, FlowFile]] = []
    for loaded in files:
        # Every definition, also one whose name a later flow in the same file reuses: never a silent pick.
        for flow in defined_flows(loaded):
            name, function = flow.name, flow.fn.__name__
            if spec in (name, function) or normalize_name(spec) in (normalize_name(name), normalize_name(function)):
                # A `with_options()` copy under the same name is one definition: the later object, as in `flows`.
                matches = [m for m in matches
                           if not (m[0].fn is flow.fn and normalize_name(m[0].name) == normalize_name(name))]
                matches.append((flow, loaded))
    return matches


def _not_found(spec: str, directory: Path, known: list[str], broken: list[FlowFileError]) -> UsageError:
    hint = _suggest(spec, known)
    message = f"no flow named {spec!r} in {directory}{hint}"
    if broken:
        message += "; these files failed to load: " + "; ".join(str(error) for error in broken)
    return UsageError(message)


def _suggest(name: str, known: list[str]) -> str:
    return did_you_mean(name, known, otherwise=f" (known: {', '.join(sorted(known))})" if known else "")
