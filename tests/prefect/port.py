"""Port Prefect's own tests of user-facing behaviour: only the imports change.

    python tests/prefect/port.py PREFECT_GIT_DIR

reads the files below from a git checkout of PrefectHQ/prefect (at its HEAD) and writes
tests/prefect/test_*.py. The import lines of the code a test writes to a file (a flow file in
a string) change the same way. A test is left out when it needs Prefect's server or internals:
a fixture of Prefect's harness (the API client, the database, the events pipeline), a
name imported from a module of Prefect's internals (client, server, settings, results,
transactions, ...), the `prefect` module itself (`prefect.context...`), a third-party
package this project does not install, or when it is an `async def` test (Prefect's async
engine and `await`ed results). The header of each written file counts what was left out,
by reason. Which ported tests fail today, and why, is in xfails.py, not in the files.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

SOURCES = {
    "tests/test_tasks.py": "test_tasks.py",
    "tests/test_flows.py": "test_flows.py",
    "tests/test_futures.py": "test_futures.py",
    "tests/test_cache_policies.py": "test_cache_policies.py",
    "tests/test_logging.py": "test_logging.py",
    "src/integrations/prefect-dask/tests/test_task_runners.py": "test_dask_task_runners.py",
    "src/integrations/prefect-dask/tests/test_utils.py": "test_dask_utils.py",
}

# User-facing names, by the module of Prefect they come from (None: any of its names),
# and the flows-tui module the port imports them from.
USER_FACING: dict[str, tuple[str, set[str] | None]] = {
    "prefect": ("flows_tui", {"flow", "task", "tags", "unmapped", "allow_failure", "get_run_logger", "State",
                              "Flow", "Task", "get_client"} - {"get_client"}),
    "prefect.flows": ("flows_tui.flows", {"Flow", "flow"}),
    "prefect.tasks": ("flows_tui.tasks", {"Task", "task", "task_input_hash", "exponential_backoff"}),
    "prefect.states": ("flows_tui.states", {"State", "StateType", "Completed", "Failed", "Cancelled", "Crashed",
                                            "Pending", "Running", "Scheduled", "raise_state_exception"}),
    "prefect.client.schemas.objects": ("flows_tui.states", {"StateType"}),
    "prefect.server.schemas.states": ("flows_tui.states", {"StateType"}),
    "prefect.futures": ("flows_tui.futures", {"PrefectFuture", "PrefectFutureList", "as_completed", "wait"}),
    "prefect.cache_policies": ("flows_tui.cache_policies", None),
    "prefect.exceptions": ("flows_tui.exceptions", {
        "MappingLengthMismatch", "MappingMissingIterable", "ParameterBindError", "ReservedArgumentError",
        "InvalidNameError", "ParameterTypeError", "CancelledRun", "UnfinishedRun", "MissingContextError",
        "MissingResult", "FailedRun", "CrashedRun"}),
    "prefect.logging": ("flows_tui.logging", {"get_run_logger"}),
    "prefect.logging.loggers": ("flows_tui.logging", {"get_run_logger", "get_logger", "disable_run_logger"}),
    "prefect.utilities.annotations": ("flows_tui.utilities.annotations", {"allow_failure", "unmapped", "quote",
                                                                          "opaque"}),
    "prefect.utilities.collections": ("flows_tui.utilities.annotations", {"quote"}),
    "prefect.runtime": ("flows_tui.runtime", {"flow_run", "task_run"}),
    "prefect.context": ("flows_tui.context", {"get_run_context", "TaskRunContext", "FlowRunContext"}),
    "prefect.task_runners": ("flows_tui.task_runners", {"ThreadPoolTaskRunner"}),
    "prefect_dask": ("flows_tui", {"DaskTaskRunner", "get_dask_client"}),
    "prefect_dask.task_runners": ("flows_tui.futures", {"PrefectDaskFuture"}),
    "prefect.testing.utilities": ("prefect_testing", {"exceptions_equal"}),
}

# Pytest's own fixtures a ported test may use.
BUILTIN_FIXTURES = {"tmp_path", "tmpdir", "monkeypatch", "caplog", "capsys", "capfd", "request", "recwarn"}


def imported_from(node: ast.ImportFrom | ast.Import) -> list[tuple[str, str, str]]:
    """(module, name, local name) for each name an import statement binds."""
    if isinstance(node, ast.Import):
        return [(a.name, "", a.asname or a.name.split(".")[0]) for a in node.names]
    return [(node.module or "", a.name, a.asname or a.name) for a in node.names]


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def names_in(node: ast.AST) -> set[str]:
    found = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.add(child.id)
        elif isinstance(child, ast.Constant) and isinstance(child.value, str) and child.value.startswith("prefect."):
            found.add("prefect")  # monkeypatch.setattr("prefect.x.y", ...)
    return found


def parametrized(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    names = set()
    for deco in node.decorator_list:
        if isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "parametrize" and deco.args:
            first = deco.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names |= {n.strip() for n in first.value.split(",")}
            elif isinstance(first, (ast.List, ast.Tuple)):
                names |= {e.value for e in first.elts if isinstance(e, ast.Constant)}
    return names


def used_fixtures(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """The fixtures a `@pytest.mark.usefixtures(...)` decorator asks for."""
    names = []
    for deco in node.decorator_list:
        if isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "usefixtures":
            names += [a.value for a in deco.args if isinstance(a, ast.Constant)]
    return names


def is_fixture(node: ast.AST) -> bool:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


def fixture_args(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    return [a.arg for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]


def start_line(node: ast.AST) -> int:
    decos = getattr(node, "decorator_list", [])
    return min([node.lineno] + [d.lineno for d in decos])


class Port:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lines = source.splitlines()
        self.tree = ast.parse(source)
        self.reasons: Counter[str] = Counter()
        self.ported = 0
        self.forbidden: dict[str, str] = {}  # local name -> why
        self.imports: list[str] = []

    def segment(self, node: ast.AST) -> str:
        return "\n".join(self.lines[start_line(node) - 1:node.end_lineno])

    def map_imports(self) -> None:
        grouped: dict[str, list[str]] = {}
        for node in self.tree.body:
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            external = [(m, n, local) for m, n, local in imported_from(node)
                        if not (m == "prefect" or m.startswith("prefect.") or m.startswith("prefect_"))]
            if external and isinstance(node, ast.Import) and node.names[0].name == "regex":
                self.imports.append("import re")  # the stdlib's re does what these tests ask of regex
                continue
            if external:
                if all(installed(m) or m == "__future__" for m, _, _ in external):
                    self.imports.append(self.segment(node))
                else:
                    for m, _, local in external:
                        self.forbidden[local] = f"needs {m.split('.')[0]}, not installed here"
            for module, name, local in imported_from(node):
                if not (module == "prefect" or module.startswith("prefect.") or module.startswith("prefect_")):
                    continue
                if isinstance(node, ast.Import):
                    self.forbidden[local] = "uses Prefect's internals (the prefect module)"
                    continue
                target = USER_FACING.get(module)
                if target is None or (target[1] is not None and name not in target[1]):
                    self.forbidden[local] = f"uses Prefect's internals ({module}.{name})"
                    continue
                alias = f" as {local}" if local != name else ""
                grouped.setdefault(target[0], []).append(f"{name}{alias}")
        for module, names in grouped.items():
            self.imports.append(f"from {module} import {', '.join(sorted(set(names)))}")

    def why_not(self, node: ast.AST, fixtures: dict[str, ast.AST], extra_ok: set[str] = frozenset()) -> str | None:
        """The reason `node` (a test, fixture or helper) cannot be ported, or None."""
        for name in sorted(names_in(node)):
            if name in self.forbidden:
                return self.forbidden[name]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for name in used_fixtures(node):
                if name not in BUILTIN_FIXTURES and name not in fixtures:
                    return f"needs Prefect's test harness (fixture {name})"
            for arg in fixture_args(node):
                if arg in BUILTIN_FIXTURES or arg in parametrized(node) or arg in extra_ok:
                    continue
                if arg in fixtures:
                    reason = self.fixture_reason(arg, fixtures)
                    if reason:
                        return reason
                    continue
                return f"needs Prefect's test harness (fixture {arg})"
        if isinstance(node, ast.AsyncFunctionDef) and not is_fixture(node) and any(
                isinstance(n, (ast.Await, ast.AsyncFunctionDef, ast.AsyncWith, ast.AsyncFor))
                for n in ast.walk(node) if n is not node):
            return "awaits Prefect's async engine (async flows and tasks)"
        return None

    def fixture_reason(self, name: str, fixtures: dict[str, ast.AST], seen: frozenset = frozenset()) -> str | None:
        if name in seen:
            return None
        node = fixtures[name]
        if isinstance(node, ast.AsyncFunctionDef):
            return "needs an async fixture"
        for name_used in sorted(names_in(node)):
            if name_used in self.forbidden:
                return self.forbidden[name_used]
        for arg in fixture_args(node):
            if arg in BUILTIN_FIXTURES:
                continue
            if arg in fixtures:
                reason = self.fixture_reason(arg, fixtures, seen | {name})
                if reason:
                    return reason
                continue
            return f"needs Prefect's test harness (fixture {arg})"
        return None

    def code_strings(self, text: str) -> str:
        """`text` with `from prefect import NAMES` in the code a test writes to a file (a string
        constant) changed as the test's own imports are, when every name is user-facing."""
        module, names = USER_FACING["prefect"]
        for node in ast.walk(self.tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            for match in re.finditer(r"from prefect import ([A-Za-z_][\w]*(?:, [A-Za-z_][\w]*)*)", node.value):
                if names is None or set(match.group(1).split(", ")) <= names:
                    text = text.replace(match.group(0), f"from {module} import {match.group(1)}")
        return text

    def run(self) -> str:
        self.map_imports()
        module_fixtures = {n.name: n for n in self.tree.body if is_fixture(n)}
        out: list[str] = []
        # Module-level helpers first: one that cannot be ported makes its name forbidden.
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    and not node.name.startswith("Test") and not node.name.startswith("test_") \
                    and not is_fixture(node):
                reason = self.why_not(node, {}, extra_ok=set(fixture_args(node))
                                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else set())
                if reason:
                    self.forbidden[node.name] = reason
        for node in self.tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # the module docstring
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                text = self.port_class(node, module_fixtures)
                if text:
                    out.append(text)
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                reason = self.why_not(node, module_fixtures)
                if reason:
                    self.reasons[reason] += 1
                else:
                    self.ported += 1
                    out.append(self.segment(node))
                continue
            if is_fixture(node):
                if self.fixture_reason(node.name, module_fixtures) is None:
                    out.append(self.segment(node))
                continue
            if getattr(node, "name", None) in self.forbidden:
                continue
            if isinstance(node, ast.Assign) and any(n in self.forbidden for n in names_in(node)):
                for target in node.targets:
                    for name in names_in(target):
                        self.forbidden[name] = self.forbidden.get(name) or "uses Prefect's internals"
                continue
            out.append(self.segment(node))
        return self.code_strings("\n\n\n".join(out))

    def port_class(self, node: ast.ClassDef, module_fixtures: dict[str, ast.AST]) -> str | None:
        fixtures = dict(module_fixtures)
        fixtures.update({n.name: n for n in node.body if is_fixture(n)})
        if any(name in self.forbidden for deco in node.decorator_list for name in names_in(deco)):
            count = sum(1 for n in node.body if getattr(n, "name", "").startswith("test_"))
            self.reasons[self.forbidden[next(n for d in node.decorator_list for n in names_in(d)
                                             if n in self.forbidden)]] += count
            return None
        kept: list[str] = []
        tests = 0
        for child in node.body:
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and child.name.startswith("test_"):
                reason = self.why_not(child, fixtures)
                if reason:
                    self.reasons[reason] += 1
                else:
                    tests += 1
                    kept.append(self.segment(child))
            elif isinstance(child, ast.ClassDef) and child.name.startswith("Test"):
                inner = self.port_class(child, fixtures)
                if inner:
                    tests += 1
                    kept.append(inner)
            elif is_fixture(child):
                if self.fixture_reason(child.name, fixtures) is None:
                    kept.append(self.segment(child))
            elif isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant):
                kept.append(self.segment(child))
            elif any(n in self.forbidden for n in names_in(child)):
                continue
            else:
                kept.append(self.segment(child))
        if not tests:
            return None
        self.ported += sum(1 for child in node.body if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                           and child.name.startswith("test_") and self.why_not(child, fixtures) is None)
        header = "\n".join(self.lines[start_line(node) - 1:node.lineno])
        return header + "\n" + "\n\n".join(kept)


def main() -> None:
    repo = Path(sys.argv[1])
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    here = Path(__file__).resolve().parent
    for source_path, target in SOURCES.items():
        source = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{source_path}"], capture_output=True,
                                text=True, check=True).stdout
        port = Port(source)
        body = port.run()
        left_out = sum(port.reasons.values())
        counts = "\n".join(f"#   {n:4d}  {reason}" for reason, n in port.reasons.most_common())
        header = (f'"""Ported from PrefectHQ/prefect {source_path} at commit {commit}.\n\n'
                  f"Only the imports changed (tests/prefect/port.py). Ported: {port.ported} test functions; "
                  f"left out: {left_out}.\n"
                  f'"""\n'
                  f"# Left out, by reason:\n{counts}\n")
        (here / target).write_text(header + "\n" + "\n".join(port.imports) + "\n\n\n" + body + "\n")
        print(f"{target}: ported {port.ported}, left out {left_out}")


if __name__ == "__main__":
    main()
