"""Log capture inside runs: `get_run_logger()`, any stdlib logger, `print()` under `log_prints`, warnings.

Records logged inside a task attempt go to that attempt's batch on the worker;
records logged in the flow body go to the flow run's engine. Both end up as
`LogLines` events. Each run has a level (`[project] log_level`); records below it
are dropped.

Logging, `print` and `warnings.showwarning` are process-wide, so every hook here
looks for a run current in the calling thread and, when there is none, lets the
record go where it went before: Dask's own threads and the TUI are never captured.
(One difference remains: with our handler on the root logger, `logging.basicConfig()`
without `force=True`, and the implicit one in `logging.info(...)`, find a handler and
add none.)
"""

from __future__ import annotations

import builtins
import contextvars
import io
import logging
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any

from flows_tui.context import flow_run_var, task_run_var
from flows_tui.tracebacks import display_path, format_exception

if TYPE_CHECKING:
    from flows_tui.context import TaskRunContext
    from flows_tui.engine.flow_run import FlowRunEngine

# Prefect's run loggers are `prefect.flow_runs` and `prefect.task_runs`; these are flows-tui's. Their
# records go to the run's log and, as any logger's, on to Python's logging in the process where
# they were made (the driver for the flow body, the worker for a task): `caplog`, the user's handlers.
FLOW_RUN_LOGGER_NAME = "flows_tui.flow_runs"
TASK_RUN_LOGGER_NAME = "flows_tui.task_runs"
RUN_LOGGER_NAMES = (FLOW_RUN_LOGGER_NAME, TASK_RUN_LOGGER_NAME)
# A longer message is cut: every line is held in memory by the scheduler's event log, the
# client and the TUI, and a multi-megabyte repr is never read as a log line.
MAX_MESSAGE_CHARS = 100_000


def current_run() -> "TaskRunContext | FlowRunEngine | None":
    """The task attempt (on a worker) or flow run (in the driver thread) this thread works for."""
    task = task_run_var.get()
    return task if task is not None else flow_run_var.get()


class RunLoggerAdapter(logging.LoggerAdapter):
    """The logger `get_run_logger()` returns; its records carry the run they came from."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


class _RunHandler(logging.Handler):
    """Sends a record to the run current in this thread, if the run's level lets it through."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "flows_tui_relayed", False):  # already in a run's log, passed on to Python's logging
            return
        run = current_run()
        if run is None:
            self.outside_run(record)
        elif record.levelno >= run.log_level:
            try:
                run.emit_log(record)
            except Exception:
                self.handleError(record)

    def outside_run(self, record: logging.LogRecord) -> None:
        """`get_run_logger()` refuses to work outside runs; an adapter kept past its run logs nowhere."""


class _RootHandler(_RunHandler):
    """On the root logger: captures any logger's records inside runs, and is as if absent elsewhere."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(RUN_LOGGER_NAMES):  # the run loggers' own handler took it already
            return
        super().emit(record)

    def outside_run(self, record: logging.LogRecord) -> None:
        # The stdlib gives a record that finds no handler to `logging.lastResort` (stderr,
        # WARNING and up); our presence on the root logger must not take that away.
        last_resort = logging.lastResort
        if last_resort is not None and record.levelno >= last_resort.level and self._only_handler_for(record):
            last_resort.handle(record)

    def _only_handler_for(self, record: logging.LogRecord) -> bool:
        logger = logging.Logger.manager.loggerDict.get(record.name)
        node: logging.Logger | None = logger if isinstance(logger, logging.Logger) else logging.getLogger()
        while node is not None:
            if any(handler is not self for handler in node.handlers):
                return False
            node = node.parent if node.propagate else None
        return True


_run_handler = _RunHandler()
_root_handler = _RootHandler()
_setup_lock = threading.Lock()


def run_logger(name: str) -> logging.Logger:
    """The run logger `name` (one of RUN_LOGGER_NAMES), its handler to the run's log in place."""
    logger = logging.getLogger(name)
    if _run_handler not in logger.handlers:
        with _setup_lock:
            if _run_handler not in logger.handlers:
                logger.addHandler(_run_handler)
                if logger.level == logging.NOTSET:  # the run's own level decides (a user's setting stays)
                    logger.setLevel(logging.DEBUG)
                # The null handler keeps Python's last resort (stderr, WARNING and up) from printing
                # them in a process nobody configured logging in: over the UI, or a worker's terminal.
                logger.addHandler(logging.NullHandler())
    return logger


def get_run_logger(context: Any = None, **extra: Any) -> logging.LoggerAdapter:
    """A logger whose records reach the UI and the store, tagged with the run they came from.

    As Prefect's: `context` is the run context to log for (the current one by default), and
    keyword arguments are added to every record's `extra`.
    """
    from flows_tui.context import FlowRunContext, TaskRunContext

    if context is not None and not isinstance(context, (TaskRunContext, FlowRunContext)):
        raise TypeError(f"Received unexpected type {type(context).__name__!r} for context.")
    task = context if isinstance(context, TaskRunContext) else None if context is not None else task_run_var.get()
    if task is not None:
        return RunLoggerAdapter(run_logger(TASK_RUN_LOGGER_NAME), {
            "run_id": task.run_id, "task_run_id": task.task_run_id, "task_run_name": task.name, **extra})
    engine = context.engine if isinstance(context, FlowRunContext) else flow_run_var.get()
    if engine is not None:
        return RunLoggerAdapter(run_logger(FLOW_RUN_LOGGER_NAME), {
            "run_id": engine.run_id, "flow_name": engine.flow.name, **extra})
    from flows_tui.exceptions import MissingContextError

    raise MissingContextError("There is no active flow or task run context: get_run_logger() was called outside "
                              "of a flow or task run; use logging.getLogger(...) there instead")


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__} object>"


def format_record(record: logging.LogRecord) -> str:
    """The record's message, with its traceback and stack when logged with exc_info / stack_info.

    Never raises: a message whose arguments do not format (or whose `__str__` fails) becomes a
    line saying so, where the stdlib would print an error to the worker's stderr.
    """
    try:
        message = record.getMessage()
    except Exception as error:
        message = (f"could not format log message {_safe_repr(record.msg)} with arguments "
                   f"{_safe_repr(record.args)}: {type(error).__name__}: {error}")
    if record.exc_info and record.exc_info[0] is not None:
        message = message + "\n" + format_exception(record.exc_info[1])
    elif record.exc_text:
        message = message + "\n" + record.exc_text
    if record.stack_info:
        message = message + "\n" + record.stack_info
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + f"… [{len(message) - MAX_MESSAGE_CHARS} more characters cut]"
    return message


# Levels ------------------------------------------------------------------------------------------

_stdlib_is_enabled_for = logging.Logger.isEnabledFor


def _is_enabled_for(self: logging.Logger, level: int) -> bool:
    """`Logger.isEnabledFor`, with the run's level in place of the root logger's inside a run.

    The root logger's level (WARNING by default) would drop INFO from any logger nobody
    configured before it reached a handler. Lowering it would also let those records reach
    other handlers from every thread; standing in for it only in run threads changes nothing
    elsewhere. A level set on the logger or a parent (Dask's own loggers, a library's choice)
    still decides, as it does outside runs.
    """
    if _stdlib_is_enabled_for(self, level):
        return True
    run = current_run()
    if run is None or level < run.log_level or self.disabled or self.manager.disable >= level:
        return False
    node: logging.Logger | None = self
    while node is not None and node is not logging.root:
        if node.level != logging.NOTSET:
            return False
        node = node.parent
    return True


def install_log_capture() -> None:
    """Capture stdlib logging and warnings inside runs; idempotent, thread-safe, cheap to repeat.

    Called at every run and task run: `logging.basicConfig(force=True)` removes root handlers,
    and `warnings.catch_warnings` (pytest wraps every test in one) restores the original
    `showwarning` when it exits.
    """
    root = logging.getLogger()
    if _root_handler in root.handlers and warnings.showwarning is _capturing_showwarning:
        return
    global _previous_showwarning
    with _setup_lock:
        if _root_handler not in root.handlers:
            root.addHandler(_root_handler)
        if logging.Logger.isEnabledFor is _stdlib_is_enabled_for:  # never over another library's replacement
            logging.Logger.isEnabledFor = _is_enabled_for  # type: ignore[method-assign]
        if warnings.showwarning is not _capturing_showwarning:
            _previous_showwarning = warnings.showwarning
            warnings.showwarning = _capturing_showwarning
        if threading.Thread.start is _stdlib_thread_start:
            threading.Thread.start = _start_in_run  # type: ignore[method-assign]


# Threads a run starts ------------------------------------------------------------------------------

_stdlib_thread_start = threading.Thread.start


def _start_in_run(self: threading.Thread) -> None:
    """A thread started inside a run works for that run: its lines (a library's logger, print,
    get_run_logger) go to the run's logs under the task run and attempt that started it, also
    after the task returned, rather than nowhere or raw to the worker's stderr (the terminal).

    Python threads do not inherit context variables: the starting thread's context goes with it.
    """
    if current_run() is not None:
        context = contextvars.copy_context()
        run = self.run
        self.run = lambda: context.run(run)  # type: ignore[method-assign]
    _stdlib_thread_start(self)


# print() -----------------------------------------------------------------------------------------

_original_print = builtins.print


def _capturing_print(*args: Any, **kwargs: Any) -> None:
    target = kwargs.get("file")
    if target is None or target is sys.stdout:
        run = current_run()
        if run is not None and run.log_prints:
            if logging.INFO >= run.log_level:
                buffer = io.StringIO()
                _original_print(*args, **{**kwargs, "file": buffer})
                text = buffer.getvalue()
                if text.endswith("\n"):
                    text = text[:-1]
                # Through the run's logger, as Prefect logs prints: on to Python's logging as well.
                name = TASK_RUN_LOGGER_NAME if task_run_var.get() is not None else FLOW_RUN_LOGGER_NAME
                run_logger(name).info(text)
            return
    _original_print(*args, **kwargs)


def install_print_capture() -> None:
    """Route `print()` inside runs with `log_prints` to their logs; idempotent, thread-safe.

    `print` is process-wide, so the replacement checks the current run in the calling
    thread and behaves exactly like the built-in anywhere else.
    """
    if builtins.print is not _capturing_print:
        builtins.print = _capturing_print


# warnings ----------------------------------------------------------------------------------------

_previous_showwarning = warnings.showwarning


def _capturing_showwarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                           file: Any = None, line: str | None = None) -> None:
    """A warning inside a run becomes a WARNING line; anywhere else it goes where it went before."""
    run = current_run() if file is None else None
    if run is None:
        _previous_showwarning(message, category, filename, lineno, file, line)
    elif logging.WARNING >= run.log_level:
        text = f"{category.__name__}: {message} ({display_path(filename)}:{lineno})"
        run.emit_log(logging.LogRecord("py.warnings", logging.WARNING, filename, lineno, text, None, None))
