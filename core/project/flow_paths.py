"""Which files in a flows directory are flow files, and the flows' names read from their source.

Light on purpose (no import of the engine, the flows' API or Rich): the UI's first frame, drawn
before Textual loads, lists the flows with it.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path


def _skipped_folder(name: str) -> bool:
    """Hidden folders, and `_*` ones (__pycache__, a `_lib` package of helpers): no flow files in there."""
    return name.startswith((".", "_"))


def _flow_file_name(name: str) -> bool:
    """`_helpers.py` and `.hidden.py` are never flow files (the former may still be imported)."""
    return name.endswith(".py") and not name.startswith(("_", "."))


def is_flow_file(path: Path, root: Path) -> bool:
    """Whether `path` is, by its name and place, one of the flow files under `root` (a folder or one file)."""
    if root.suffix == ".py":
        return path == root
    try:
        relative = path.relative_to(root)
    except ValueError:
        return False
    return _flow_file_name(relative.name) and not any(_skipped_folder(part) for part in relative.parts[:-1])


def flow_files(directory: Path) -> list[Path]:
    """Every .py file under `directory`, skipping `_*` files and folders, hidden ones and __pycache__."""
    if directory.is_file():
        return [directory]
    found = []
    for folder, subfolders, names in os.walk(directory):
        subfolders[:] = [name for name in subfolders if not _skipped_folder(name)]  # never walked into
        found.extend(Path(folder) / name for name in names if _flow_file_name(name))
    return sorted(found)



def flow_names_in_source(path: Path) -> list[str]:
    """The names of the flows `path` defines, read from its syntax tree without running it (the UI
    lists them while the file imports): `@flow(name="...")`, else the function's name as
    `Flow` derives it. A name given by an expression is left out; unreadable file: none."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError, RecursionError):
        return []
    names = []
    for node in tree.body:  # flows are defined at the top of a module
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if not (isinstance(target, ast.Name) and target.id == "flow"
                    or isinstance(target, ast.Attribute) and target.attr == "flow"):
                continue
            given = next((keyword.value for keyword in getattr(decorator, "keywords", ()) if keyword.arg == "name"), None)
            if given is None:
                names.append(node.name.replace("_", "-"))
            elif isinstance(given, ast.Constant) and isinstance(given.value, str):
                names.append(given.value)
    return names
