"""What installation promises: the package names, the core/UI boundary, the console script."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def _python(code: str, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd or "/", env=env)


def test_importing_flows_tui_does_not_import_textual():
    result = _python("import flows_tui, flows_tui.cli, flows_tui.engine.flow_run, sys; print('textual' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_core_is_installed_as_flows_tui_and_not_as_a_top_level_core_package():
    result = _python("import core")
    assert result.returncode != 0 and "No module named 'core'" in result.stderr


def test_the_console_script_answers_help():
    result = subprocess.run([sys.executable, "-m", "flows_tui.cli", "--help"], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0 and "run" in result.stdout


def test_every_package_of_the_source_tree_is_in_what_a_wheel_installs():
    """A package missing from pyproject's list works in a development install and is absent
    from a wheel: `pip install flows-tui` would fail at import."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in (("core", "flows_tui"), ("tui", "flows_tui.tui")):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((name, *parts)))
    assert found - listed == set(), "packages missing from [tool.setuptools] packages in pyproject.toml"


def test_the_uis_first_frame_imports_no_engine():
    """The UI's app module, which the UI's first frame needs, imports neither Dask nor the engine, the store,
    the flows directory's import server or file watching: those come after the first frame."""
    later = ["dask", "distributed", "numpy", "pydantic", "watchfiles", "sqlite3", "flows_tui.engine.flow_run",
             "flows_tui.launch.launcher", "flows_tui.record.store", "flows_tui.project.flows_directory"]
    result = _python(f"import flows_tui.cli, flows_tui.tui.app, sys; print(sorted(set({later!r}) & set(sys.modules)))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_what_the_drawn_before_textual_first_frame_needs_imports_neither_textual_nor_rich_nor_the_flows_api():
    """The frame drawn before Textual loads (tui/first_frame.py) comes after only what it needs: the
    command line, flows.toml, the flow files found and their names read from source."""
    result = _python("import flows_tui.cli, flows_tui.project.config, flows_tui.tui.first_frame, "
                     "flows_tui.project.flow_paths, sys; "
                     "print(sorted({'textual', 'rich', 'flows_tui.flows', 'flows_tui.project.import_probe'} "
                     "& set(sys.modules)))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_cli_starts_without_importing_dask():
    """`flows-tui --help`, list, check, runs and logs answer without paying for Dask's import."""
    result = _python("import flows_tui, flows_tui.cli, sys; "
                     "print(sorted({'distributed', 'dask', 'numpy'} & set(sys.modules)))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_command_is_found_by_name_before_its_module_is_imported():
    """The commands' modules are imported when a command is asked for: a command missing from the map
    would be taken for a PATH (`flows-tui prune` opening the UI on a folder named prune)."""
    result = _python("import sys, click, flows_tui.cli as cli; "
                     "before = sorted(m for m in sys.modules if m.startswith('flows_tui.cli.')); "
                     "ctx = click.Context(cli.main); [cli.main.get_command(ctx, n) for n in cli.main.list_commands(ctx)]; "
                     "print(before); print(sorted(cli.main.commands) == sorted(cli.COMMAND_MODULES))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "True"]


def test_the_public_names_are_there_and_the_package_alone_imports_none_of_the_engine():
    """`import flows_tui` is cheap (the UI and `flows-tui runs` pay only for what they use); every name of
    `__all__` still comes from `from flows_tui import ...`, as the README's flows write it."""
    result = _python("import sys, flows_tui; light = sorted(m for m in sys.modules if m.startswith('flows_tui.')); "
                     "from flows_tui import *; import flows_tui as f; "
                     "print(light); print(all(callable(getattr(f, n)) for n in f.__all__)); "
                     "print(f.tasks.task is f.task, f.flow.__module__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["['flows_tui.plugged']", "True", "True flows_tui.flows"]
