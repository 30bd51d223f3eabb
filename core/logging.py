"""Prefect's `prefect.logging` names: `get_run_logger`, `get_logger`, `disable_run_logger`."""

from __future__ import annotations

import contextlib
import logging as _logging
from typing import Iterator

from flows_tui.record.logs import get_run_logger


def get_logger(name: str | None = None) -> _logging.Logger:
    """A logger under flows-tui's own (`flows_tui.NAME`), as Prefect's `get_logger` gives `prefect.NAME`."""
    root = _logging.getLogger("flows_tui")
    return root if name is None else root.getChild(name)


@contextlib.contextmanager
def disable_run_logger() -> Iterator[None]:
    """Run loggers say nothing inside this block (e.g. calling a task's `.fn` in a unit test)."""
    from flows_tui.record.logs import RUN_LOGGER_NAMES

    loggers = [_logging.getLogger(name) for name in RUN_LOGGER_NAMES]
    were = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, was in zip(loggers, were):
            logger.disabled = was


__all__ = ["disable_run_logger", "get_logger", "get_run_logger"]
