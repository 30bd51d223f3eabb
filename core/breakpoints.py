"""`breakpoint()` in a task: never a worker waiting on a terminal nobody sees.

A task runs on a Dask worker: a thread of a worker process, of this process (a thread
cluster), or of a machine elsewhere. None of them has the user's terminal, and pdb there
would wait for input forever. Inside a task attempt `breakpoint()` therefore logs once per
task run, as a WARNING in the run's logs, where it was and how to stop there for real
(`flows-tui debug RUN TASK_RUN`, or `d` in the UI), and the task goes on. The same holds
in a flow body while the UI holds the terminal. Everywhere else, and in a task run by
`flows-tui debug`, `breakpoint()` does what it always does (PYTHONBREAKPOINT included).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from .context import flow_run_var, task_run_var

_lock = threading.Lock()
_previous: Any = None
_told: dict[tuple[str, str], None] = {}  # (run, task run) already told, oldest first
_TOLD_KEPT = 10_000
# Set while the terminal UI holds the terminal: a flow body's breakpoint() cannot have it either.
ui_holds_terminal = False


def _hook(*args: Any, **kwargs: Any) -> Any:
    task = task_run_var.get()
    if task is not None and not task.at_terminal:
        _tell(task.run_id, task.task_run_id, task.name, task.emit_log, task.log_level,
              f"flows-tui debug {task.run_id} {task.name} (in the UI: d on {task.name})")
        return None
    engine = flow_run_var.get() if task is None else None
    if engine is not None and ui_holds_terminal:
        _tell(engine.run_id, "", "the flow body", engine.emit_log, engine.log_level,
              f"`flows-tui run {engine.flow.name}` in a terminal of its own")
        return None
    previous = _previous or sys.__breakpointhook__
    return previous(*args, **kwargs)


def _tell(run_id: str, task_run_id: str, name: str, emit: Any, level: int, how: str) -> None:
    key = (run_id, task_run_id)
    with _lock:
        if key in _told:
            return
        _told[key] = None
        if len(_told) > _TOLD_KEPT:
            del _told[next(iter(_told))]
    from .tracebacks import display_path

    frame = sys._getframe(2)  # the caller of breakpoint()
    where = f"{display_path(frame.f_code.co_filename)}:{frame.f_lineno}"
    message = (f"breakpoint() at {where} in {name} was skipped: no terminal is attached here, so a debugger would "
               f"wait forever. To stop there with its inputs: {how}")
    if logging.WARNING >= level:
        emit(logging.LogRecord("flows_tui.debug", logging.WARNING, frame.f_code.co_filename, frame.f_lineno,
                               message, None, None))


def install_breakpoint_hook() -> None:
    """Route `breakpoint()` through `_hook` in this process; idempotent, keeps the hook it replaces."""
    global _previous
    if sys.breakpointhook is _hook:
        return
    with _lock:
        if sys.breakpointhook is not _hook:
            _previous = sys.breakpointhook
            sys.breakpointhook = _hook
