"""Ported from PrefectHQ/prefect tests/test_logging.py at commit ce79dd3d6cfa2b7337265498210dbc4d25bcdc98.

Only the imports changed (tests/prefect/port.py). Ported: 6 test functions; left out: 125.
"""
# Left out, by reason:
#     18  uses Prefect's internals (prefect.logging.handlers.APILogHandler)
#     13  uses Prefect's internals (prefect.logging.loggers.flow_run_logger)
#      7  uses Prefect's internals (the prefect module)
#      7  uses Prefect's internals (prefect.client.orchestration.PrefectClient)
#      7  uses Prefect's internals (prefect.logging.handlers.PrefectConsoleHandler)
#      6  uses Prefect's internals (prefect.settings.PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW)
#      6  uses Prefect's internals (prefect.settings.PREFECT_API_URL)
#      6  uses Prefect's internals (prefect.logging.handlers.APILogWorker)
#      6  uses Prefect's internals (prefect.logging.filters.ObfuscateApiKeyFilter)
#      6  uses Prefect's internals (prefect.logging.loggers.patch_print)
#      5  uses Prefect's internals (prefect.logging.loggers.task_run_logger)
#      5  uses Prefect's internals (prefect.settings.PREFECT_API_KEY)
#      4  uses Prefect's internals (prefect.logging.configuration.DEFAULT_LOGGING_SETTINGS_PATH)
#      4  uses Prefect's internals (prefect.server.schemas.actions.LogCreate)
#      3  uses Prefect's internals (prefect.logging.configuration.setup_logging)
#      2  uses Prefect's internals (prefect.settings.PREFECT_LOGGING_SETTINGS_PATH)
#      2  uses Prefect's internals (prefect.logging.configuration.ensure_logging_setup)
#      2  uses Prefect's internals (prefect.logging.loggers.get_worker_logger)
#      2  uses Prefect's internals (prefect.logging.handlers._SafeStreamHandler)
#      2  uses Prefect's internals (prefect.logging.formatters.JsonFormatter)
#      1  uses Prefect's internals (prefect.logging.handlers.set_api_log_sink)
#      1  uses Prefect's internals (prefect.logging.handlers.emit_api_log)
#      1  uses Prefect's internals (prefect.settings.PREFECT_LOGGING_TO_API_ENABLED)
#      1  uses Prefect's internals (prefect.settings.PREFECT_LOGGING_TO_API_MAX_LOG_SIZE)
#      1  awaits Prefect's async engine (async flows and tasks)
#      1  uses Prefect's internals (prefect.logging.formatters.PrefectFormatter)
#      1  uses Prefect's internals (prefect.settings.PREFECT_LOGGING_COLORS)
#      1  uses Prefect's internals (prefect.settings.PREFECT_LOGGING_MARKUP)
#      1  needs websockets, not installed here
#      1  uses Prefect's internals (prefect.logging.loggers.disable_logger)
#      1  uses Prefect's internals (prefect.logging.loggers.PrefectLogAdapter)
#      1  uses Prefect's internals (prefect.logging.LogEavesdropper)

from __future__ import annotations
import dataclasses
import json
import logging
import sys
import time
import uuid
from collections import ChainMap
from contextlib import nullcontext
from datetime import datetime
from functools import partial
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator
from unittest import mock
from unittest.mock import ANY, AsyncMock, MagicMock, patch
import pytest
from rich.color import Color, ColorType
from rich.console import Console
from rich.highlighter import NullHighlighter, ReprHighlighter
from rich.style import Style
from flows_tui import flow, task
from flows_tui.context import FlowRunContext, TaskRunContext
from flows_tui.exceptions import MissingContextError
from flows_tui.logging import disable_run_logger, get_logger, get_run_logger


if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun, TaskRun
    from prefect.server.events.pipeline import EventsPipeline


def _normalize_timestamp(timestamp: str) -> str:
    if timestamp.endswith("Z"):
        if "." in timestamp:
            base, frac = timestamp[:-1].split(".")
            # Normalize fractional seconds to 6 digits
            frac = (frac + "000000")[:6]
            timestamp = f"{base}.{frac}+00:00"
        else:
            timestamp = timestamp[:-1] + "+00:00"
    return timestamp


@pytest.mark.parametrize("name", ["default", None, ""])
def test_get_logger_returns_prefect_logger_by_default(name: str | None):
    if name == "default":
        logger = get_logger()
    else:
        logger = get_logger(name)

    assert logger.name == "prefect"


@pytest.fixture()
def external_logger_setup(request: pytest.FixtureRequest):
    # This fixture will create a logger with the specified name, level, and propagate value
    name, level = request.param
    logger = logging.getLogger(name)
    old_level, old_propagate = logger.level, logger.propagate
    assert logger.level == logging.NOTSET, "Logger should start with NOTSET level"
    assert logger.handlers == [], "Logger should start with no handlers"
    logger.setLevel(level)
    yield name, level, old_propagate
    # Reset the logger to its original state
    logger.setLevel(old_level)
    logger.propagate = old_propagate
    logger.handlers = []


WORKER_ID = uuid.uuid4()


def test_run_logger_fails_outside_context():
    with pytest.raises(MissingContextError, match="no active flow or task run context"):
        get_run_logger()


async def test_run_logger_with_explicit_context_of_invalid_type():
    with pytest.raises(TypeError, match="Received unexpected type 'str' for context."):
        get_run_logger("my man!")


def test_log_in_flow(caplog: pytest.LogCaptureFixture):
    msg = "Hello world!"

    @flow
    def test_flow():
        logger = get_run_logger()
        logger.warning(msg)

    test_flow()

    for record in caplog.records:
        if record.msg == msg:
            assert record.levelno == logging.WARNING
            break
    else:
        raise AssertionError(f"{msg} was not found in records: {caplog.records}")


def test_log_in_task(caplog: pytest.LogCaptureFixture):
    msg = "Hello world!"

    @task
    def test_task():
        logger = get_run_logger()
        logger.warning(msg)

    @flow
    def test_flow():
        test_task()

    test_flow()
    for record in caplog.records:
        if record.msg == msg:
            assert record.levelno == logging.WARNING
            break
    else:
        raise AssertionError(f"{msg} was not found in records")


def test_without_disable_logger(caplog: pytest.LogCaptureFixture):
    """
    Sanity test to double check whether caplog actually works
    so can be more confident in the asserts in test_disable_logger.
    """
    logger = logging.getLogger("griffe.agents.nodes")

    def function_with_logging(logger: logging.Logger):
        assert not logger.disabled
        logger.critical("it's enabled!")
        return 42

    function_with_logging(logger)
    assert not logger.disabled
    assert ("griffe.agents.nodes", 50, "it's enabled!") in caplog.record_tuples
