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
