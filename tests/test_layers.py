"""The layers hold: each imports only the ones below it (even inside a function), no
import cycles, and nothing in core imports Textual (the contracts are in pyproject.toml)."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys

import flows_tui
from conftest import ROOT

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

CHECK = ("import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))")


def test_the_import_contracts_of_pyproject_hold(tmp_path):
    # The package is core/ with tui/ mapped in as flows_tui.tui; import-linter reads one folder per
    # package, so it reads them laid out as one, as they are installed.
    shutil.copytree(ROOT / "core", tmp_path / "flows_tui", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tui", tmp_path / "flows_tui" / "tui", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", CHECK, str(ROOT / "pyproject.toml")], capture_output=True,
                            text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_module_of_the_package_has_its_layer():
    """A new module must be placed in a layer, or the contracts would not see it."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [layers] = [contract["layers"] for contract in settings["contracts"] if contract["type"] == "layers"]
    placed = {name.strip() for layer in layers for name in layer.split("#")[0].replace("|", ":").split(":")}
    children = {info.name for info in pkgutil.iter_modules(flows_tui.__path__)}
    assert children - placed == set()


def _core_modules() -> list[str]:
    modules = [info.name for info in pkgutil.walk_packages(flows_tui.__path__, "flows_tui.")]
    return sorted(name for name in modules if not name.startswith("flows_tui.tui") and not name.endswith("__main__"))


def test_no_core_module_imports_textual():
    modules = _core_modules()
    assert "flows_tui.engine.worker" in modules and "flows_tui.cli" in modules
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "    assert 'textual' not in sys.modules, name\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", env=env)
    assert result.returncode == 0, result.stderr
