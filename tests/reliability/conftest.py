"""The reliability suite: load held, faults survived, bad inputs tried, nothing lost.

Every test here carries the `reliability` marker (`python -m pytest -m reliability` runs
only these). Tests report what they measured through the `figures` fixture; the figures
are printed at the end of the session under "reliability figures", and written as JSON to
the path given by `--reliability-figures PATH` (the README's table comes from there).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_FIGURES: dict[str, dict[str, object]] = {}
HERE = Path(__file__).resolve().parent

# The default run (CI, the README's test command) uses reduced sizes to stay inside the
# suite's time budget; FLOWS_TUI_RELIABILITY=full runs the sizes the README quotes.
FULL = os.environ.get("FLOWS_TUI_RELIABILITY", "").lower() == "full"


def sized(full, reduced):
    """`full` under FLOWS_TUI_RELIABILITY=full, else `reduced`."""
    return full if FULL else reduced


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.reliability)


class Figures:
    """What one test measured: `figures.add("stored", "100000 of 100000 lines")`."""

    def __init__(self, test: str) -> None:
        self.test = test

    def add(self, name: str, value: object) -> None:
        _FIGURES.setdefault(self.test, {})[name] = value


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return Figures(request.node.name)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures (" + ("full size" if FULL else "reduced size; FLOWS_TUI_RELIABILITY=full for the README's sizes") + ")")
    for test, values in _FIGURES.items():
        terminalreporter.write_line(test)
        for name, value in values.items():
            terminalreporter.write_line(f"    {name}: {value}")
    path = config.getoption("--reliability-figures")
    if path:
        Path(path).write_text(json.dumps(_FIGURES, indent=2, default=str) + "\n")
