"""Log capture inside runs: `get_run_logger()` and `print()` under `log_prints`.

Records logged inside a task attempt go to that attempt's batch on the worker;
records logged in the flow body go to the flow run's engine. Both end up as
`LogLines` events.
"""

from __future__ import annotations

import builtins
import io
import logging
import sys
import threading
import traceback
from typing import Any

from .context import flow_run_var, task_run_var

RUN_LOGGER_NAME = "flows_tui.runs"


class RunLoggerAdapter(logging.LoggerAdapter):
    """The logger `get_run_logger()` returns; its records carry the run they came from."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


class _RunHandler(logging.Handler):
    """Sends a record to the task attempt or flow run that is current in this thread."""

    def emit(self, record: logging.LogRecord) -> None:
        task = task_run_var.get()
        if task is not None:
            task.emit_log(record)
            return
        engine = flow_run_var.get()
        if engine is not None:
            engine.emit_log(record)


_run_handler = _RunHandler()
_setup_lock = threading.Lock()


def _run_logger() -> logging.Logger:
    logger = logging.getLogger(RUN_LOGGER_NAME)
    if _run_handler not in logger.handlers:
        with _setup_lock:
            if _run_handler not in logger.handlers:
                logger.addHandler(_run_handler)
                logger.setLevel(logging.DEBUG)
                logger.propagate = False
    return logger


def get_run_logger() -> logging.LoggerAdapter:
    """A logger whose records reach the UI and the store, tagged with the run they came from."""
    task = task_run_var.get()
    if task is not None:
        return RunLoggerAdapter(_run_logger().getChild("task"), {
            "run_id": task.run_id, "task_run_id": task.task_run_id, "task_run_name": task.name})
    engine = flow_run_var.get()
    if engine is not None:
        return RunLoggerAdapter(_run_logger().getChild("flow"), {
            "run_id": engine.run_id, "flow_name": engine.flow.name})
    raise RuntimeError("get_run_logger() was called outside of a flow or task run; "
                       "use logging.getLogger(...) there instead")


def format_record(record: logging.LogRecord) -> str:
    """The record's message, with its traceback when it was logged with exc_info."""
    message = record.getMessage()
    if record.exc_info and record.exc_info[0] is not None:
        message = message + "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
    elif record.exc_text:
        message = message + "\n" + record.exc_text
    return message


_original_print = builtins.print


def _capturing_print(*args: Any, **kwargs: Any) -> None:
    target = kwargs.get("file")
    if target is None or target is sys.stdout:
        task = task_run_var.get()
        engine = flow_run_var.get() if task is None else None
        if (task is not None and task.log_prints) or (engine is not None and engine.log_prints):
            buffer = io.StringIO()
            _original_print(*args, **{**kwargs, "file": buffer})
            text = buffer.getvalue()
            if text.endswith("\n"):
                text = text[:-1]
            record = logging.LogRecord("flows_tui.print", logging.INFO, "", 0, text, None, None)
            (task.emit_log if task is not None else engine.emit_log)(record)  # type: ignore[union-attr]
            return
    _original_print(*args, **kwargs)


def install_print_capture() -> None:
    """Route `print()` inside runs with `log_prints` to their logs; idempotent, thread-safe.

    `print` is process-wide, so the replacement checks the current run in the calling
    thread and behaves exactly like the built-in anywhere else.
    """
    if builtins.print is not _capturing_print:
        builtins.print = _capturing_print
