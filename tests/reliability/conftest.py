"""The reliability suite: load held, faults survived, bad inputs tried, nothing lost.

Every test here carries the `reliability` marker (`python -m pytest -m reliability` runs
only these). Tests report what they measured through the `figures` fixture; the figures
are printed at the end of the session under "reliability figures", and written as JSON to
the path given by `--reliability-figures PATH` (the README's table comes from there).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIGURE = "reliability figure"  # the user_properties key tests/conftest.py collects
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
    """What one test measured: `figures.add("stored", "100000 of 100000 lines")`.

    Figures travel with the test's report (its user_properties), so they reach the terminal
    summary (tests/conftest.py) from pytest-xdist's worker processes too.
    """

    def __init__(self, node: pytest.Item) -> None:
        self.node = node

    def add(self, name: str, value: object) -> None:
        self.node.user_properties.append((FIGURE, [name, value if isinstance(value, (int, float)) else str(value)]))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return Figures(request.node)
