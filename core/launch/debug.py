"""Debugging one task run where you sit: its inputs, its function, your debugger.

To debug task run T (e.g. `clean-3`) of a recorded run R, `reach` runs R's flow again
with R's parameters on a bus that records nothing, and stops its body at the call that
creates the task run named T. Upstream task runs come back as any re-run gets them:
held in cluster memory (a session that holds R's results, as the UI's does), from the
persistent cache (a task with a cache policy), or computed again on the cluster. Their
values are gathered here and put in T's arguments (its mapped element included); T
itself is not submitted: `run_under_debugger` runs its function in this process, and on
an exception opens the debugger post-mortem at the failing frame.

The body runs again up to T: a body with side effects of its own (files it writes, calls
it makes outside tasks) has them again. Tasks whose results are neither held nor cached
run again too.
"""

from __future__ import annotations

import importlib
import logging
import os
import pdb
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TextIO

from flows_tui.record import events as ev
from flows_tui.context import TaskRunContext, task_run_var
from flows_tui.errors import FlowsTuiError, UsageError, closest
from flows_tui.safe_text import visible
from flows_tui.states import CACHED, COMPLETED, SUCCESS_STATES
from flows_tui.engine.outcome import UNSENDABLE, Ref
from flows_tui.engine.worker import substitute
from flows_tui.launch.inputs import describe, short_repr

if TYPE_CHECKING:
    from flows_tui.engine.flow_run import FlowRunEngine
    from flows_tui.record.model import FlowRun, TaskRun

# How long gathering an upstream value may take before the user is told what is awaited.
PATIENCE_SECONDS = 10.0
# How long the stopped re-run gets to end once the inputs are here.
STOP_SECONDS = 10.0


class DebugError(FlowsTuiError):
    """The task run cannot be reached or run here; the message says why and what to do."""


class _Reached(BaseException):
    """Ends the re-run's body at the call that creates the task run to debug.

    A BaseException, so a body's `except Exception` around the call cannot swallow it.
    """


# Which task run ---------------------------------------------------------------------------


def find_task_run(run: "FlowRun", spec: str) -> "TaskRun":
    """The task run of `run` named `spec` (`clean-3`), or whose id starts with `spec`.

    A name used by several task runs (a retried flow attempt, a `task_run_name` that
    repeats) means the latest of them.
    """
    by_name = [t for t in run.task_runs.values() if t.name == spec]
    if by_name:
        return by_name[-1]
    by_id = [t for t in run.task_runs.values() if t.id.startswith(spec)]
    if len(by_id) == 1:
        return by_id[0]
    if len(by_id) > 1:
        raise UsageError(f"task run id {spec!r} is ambiguous in run {run.run_id}: "
                         + ", ".join(f"{t.name} ({t.id})" for t in by_id[:5]))
    names = list(dict.fromkeys(t.name for t in run.task_runs.values()))
    close = closest(spec, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else \
        (f"; its task runs: {', '.join(names[:8])}" + (" …" if len(names) > 8 else "") if names else
         "; it has no task runs")
    raise UsageError(f"run {run.run_id} ({visible(run.flow, one_line=True)}) has no task run "
                     f"{visible(spec, one_line=True)!r}{hint}")


@dataclass(frozen=True)
class Target:
    """A task run as a re-run can recognise it: its task, its name, which of that name it is."""

    task: str
    name: str
    occurrence: int  # how many task runs of the same task and name the run created before it
    map_index: int | None = None

    @classmethod
    def of(cls, run: "FlowRun", task_run: "TaskRun") -> "Target":
        before = 0
        for other in run.task_runs.values():
            if other.id == task_run.id:
                break
            if other.task == task_run.task and other.name == task_run.name:
                before += 1
        return cls(task_run.task, task_run.name, before, task_run.map_index)


# Reaching it in a re-run ----------------------------------------------------------------------


@dataclass
class Input:
    """One argument of the task run: its value and where the value came from."""

    name: str
    value: Any
    source: str  # "given by the flow body", or the upstream task runs and how each came back


@dataclass
class Reached:
    """The task run to debug, with its arguments in place, ready to run here."""

    task: Any  # the Task, as the flow file defines it now
    name: str
    map_index: int | None
    run_id: str  # the recorded run it belongs to
    args: tuple
    kwargs: dict
    inputs: list[Input] = field(default_factory=list)
    came_back: dict[str, list[str]] = field(default_factory=dict)  # how → the re-run's task runs that came so


class _StopAt:
    """The engine's `intercept`: sees every task call before it is submitted; stops at the target."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.seen: Counter = Counter()
        self.call: tuple | None = None  # (task, name, map_index, args template, kwargs template, deps)
        self.reached = threading.Event()

    def __call__(self, task: Any, calls: list[tuple]) -> None:
        target = self.target
        if task.name != target.task:
            return
        for name, map_index, args_template, kwargs_template, deps in calls:
            if name != target.name:
                continue
            occurrence = self.seen[name]
            self.seen[name] += 1
            if occurrence == target.occurrence:
                self.call = (task, name, map_index, args_template, kwargs_template, deps)
                self.reached.set()
                raise _Reached(name)


class _KeepNothing:
    """A session that gives what it holds and keeps nothing of the debugging re-run.

    The re-run stops half way: its results must not replace those of the run being debugged.
    """

    def __init__(self, session: Any) -> None:
        self.client = session.client
        self._session = session

    def find(self, flow: str, lineage: str) -> Any:
        return self._session.find(flow, lineage)

    def keep(self, flow: str, run_id: str, results: dict, calls: dict | None = None) -> None:
        pass


def reach(flow: Any, parameters: dict[str, Any], run_id: str, target: Target, *, client: Any,
          cache_dir: Any = None, session: Any = None, log_level: int = logging.INFO,
          say: Callable[[str], None] = lambda text: None) -> Reached:
    """Run `flow` again up to the call creating `target`; its arguments with every upstream value in place.

    `session`: results held in cluster memory to reuse (the UI's); without one, upstream task
    runs come from the cache or run again. Raises DebugError when the re-run does not get there.
    """
    from flows_tui.engine.flow_run import run_flow

    stop = _StopAt(target)
    engines: list["FlowRunEngine"] = []

    def started(engine: "FlowRunEngine") -> None:
        engine.intercept = stop
        engines.append(engine)

    kept = _KeepNothing(session) if session is not None else None
    ended = threading.Event()
    failure: list[BaseException] = []

    def rerun() -> None:
        try:
            run_flow(flow, parameters, client=client, bus=ev.EventBus(), on_engine=started, log_level=log_level,
                     cache_dir=cache_dir, session=kept, reuse=kept is not None)
        except BaseException as error:  # told below, in the caller's thread
            failure.append(error)
        finally:
            ended.set()

    thread = threading.Thread(target=rerun, name="flows-tui-debug-rerun", daemon=True)
    thread.start()
    try:
        while not stop.reached.wait(0.1):
            if ended.is_set():
                raise DebugError(_not_reached(target, engines, failure))
        return _gather(stop, engines[0], run_id, say)
    finally:
        if engines:
            engines[0].cancel("stopped: the task run to debug was reached")
        thread.join(STOP_SECONDS)


def _not_reached(target: Target, engines: list, failure: list) -> str:
    told = f"running the flow again did not reach task run {target.name!r}"
    if failure:
        return f"{told}: {type(failure[0]).__name__}: {failure[0]}"
    if not engines or engines[0].final is None:
        return told
    final = engines[0].final
    if final.name in SUCCESS_STATES:
        return f"{told}: the flow ended Completed without creating it (its body took another path this time)"
    return f"{told}: the flow ended {final.name} before it ({final.message})"


def _gather(stop: _StopAt, engine: "FlowRunEngine", run_id: str, say: Callable[[str], None]) -> Reached:
    """Wait for the target's upstream values and put them in its arguments."""
    task, name, map_index, args_template, kwargs_template, deps = stop.call
    upstream_names = [engine.flow_run.task_runs[task_run_id].name for task_run_id in deps.task_run_ids]
    outcomes = _wait_for(engine, deps.futures, upstream_names, say)
    allowed = deps.allowed
    for index, outcome in enumerate(outcomes):
        if outcome.state == UNSENDABLE:
            raise DebugError(f"{name} cannot get its input from {upstream_names[index]}: {outcome.exception}")
        if not outcome.ok and index not in allowed:
            raise DebugError(f"{name} would not run: its upstream {upstream_names[index]} ended {outcome.state} "
                             f"this time ({outcome.message}); debug that one first: "
                             f"flows-tui debug {run_id} {upstream_names[index]}")
    args = substitute(args_template, outcomes) if outcomes else args_template
    kwargs = substitute(kwargs_template, outcomes) if outcomes else kwargs_template
    sources = _sources(engine, deps.task_run_ids)
    reached = Reached(task, name, map_index, run_id, args, kwargs)
    for task_run in engine.flow_run.task_runs.values():
        how = _source(task_run)
        if how is not None:
            reached.came_back.setdefault(how, []).append(task_run.name)
    try:
        values = task.signature.bind(*args, **kwargs).arguments
        templates = task.signature.bind(*args_template, **kwargs_template).arguments
    except TypeError:  # the call itself fails the same way, under the debugger
        return reached
    for parameter, value in values.items():
        refs = sorted({ref.dep for ref in _refs(templates.get(parameter))})
        source = "; ".join(f"{upstream_names[i]}: {sources[i]}" for i in refs) if refs else "given by the flow body"
        reached.inputs.append(Input(parameter, value, source))
    return reached


def _wait_for(engine: "FlowRunEngine", futures: list, names: list[str], say: Callable[[str], None]) -> list:
    """The upstream envelopes, as they arrive; the user hears what is awaited when it takes a while."""
    if not futures:
        return []
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        pending = [name for name, future in zip(names, futures) if not future.done()]
        if not pending:
            break
        if engine.final is not None or engine._abort is not None:
            raise DebugError("the re-run ended before the upstream values arrived"
                             + (f": {engine.final.message}" if engine.final is not None else ""))
        if time.monotonic() > deadline:
            say(f"waiting for upstream {', '.join(pending[:5])}{' …' if len(pending) > 5 else ''} (Ctrl-C stops)")
            deadline = time.monotonic() + 6 * PATIENCE_SECONDS
        time.sleep(0.05)
    try:
        return engine.client.gather(futures, errors="raise")
    except Exception as error:
        raise DebugError(f"the upstream values could not be fetched from the cluster: {type(error).__name__}: "
                         f"{error}") from None


def _sources(engine: "FlowRunEngine", task_run_ids: list[str]) -> list[str]:
    """How each upstream task run came back in the re-run (its worker's report may lag its value a moment)."""
    deadline = time.monotonic() + 5.0
    task_runs = engine.flow_run.task_runs
    while time.monotonic() < deadline and not all(task_runs[i].is_final for i in task_run_ids):
        time.sleep(0.05)
    return [_source(task_runs[task_run_id]) or task_runs[task_run_id].state for task_run_id in task_run_ids]


def _source(task_run: "TaskRun") -> str | None:
    message = task_run.message or ""
    if task_run.state == CACHED and message.startswith("reused from run"):
        return f"held in cluster memory ({message})"
    if task_run.state == CACHED:
        return "from the cache"
    if task_run.state == COMPLETED:
        return "computed again"
    return None


def _refs(template: Any) -> list[Ref]:
    if type(template) is Ref:
        return [template]
    if isinstance(template, (list, tuple, set, frozenset)):
        return [ref for item in template for ref in _refs(item)]
    if isinstance(template, dict):
        return [ref for item in template.values() for ref in _refs(item)]
    return []


def input_lines(reached: Reached) -> list[str]:
    """What `--inputs` prints: one block per argument."""
    lines = [f"inputs of {visible(reached.name, one_line=True)}" + (f" (map index {reached.map_index})" if reached.map_index is not None
                                             else "") + ":"]
    if not reached.inputs:
        lines.append("  (no arguments)")
    for item in reached.inputs:
        lines.append(f"  {item.name}: {describe(item.value)}; {visible(item.source, one_line=True)}")
        lines.append(f"    {short_repr(item.value)}")
    for how, names in reached.came_back.items():
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        lines.append(f"the re-run's task runs {how}: {visible(shown, one_line=True)}")
    return lines


# Running it here --------------------------------------------------------------------------------


def post_mortem(error: BaseException) -> str | None:
    """Open the debugger at the frame that raised `error`; the one `breakpoint()` would use.

    `PYTHONBREAKPOINT=ipdb.set_trace` (or pudb's, …) gets that package's `post_mortem`;
    `PYTHONBREAKPOINT=0` opens none. Returns what was not opened and why, or None.
    """
    hook = "" if sys.flags.ignore_environment else os.environ.get("PYTHONBREAKPOINT", "")
    if hook == "0":
        return "PYTHONBREAKPOINT=0: no debugger opened"
    tb = error.__traceback__
    if hook and hook not in ("pdb.set_trace", "builtins.breakpoint"):
        module_name = hook.rpartition(".")[0]
        try:
            debugger = getattr(importlib.import_module(module_name), "post_mortem") if module_name else None
        except Exception:
            debugger = None
        if debugger is not None:
            debugger(tb)
            return None
    pdb.post_mortem(tb)
    return None


def run_under_debugger(reached: Reached, *, out: TextIO | None = None, log_level: int = logging.INFO,
                       debugger: Callable[[BaseException], str | None] = post_mortem) -> bool:
    """Call the task's function here with the reached arguments; on an exception, the debugger.

    One attempt: no retries, no timeout (a debugger session takes its time). Its logs go to
    `out` (stderr). Returns whether the call returned.
    """
    from flows_tui.record.logs import format_record, install_log_capture
    from flows_tui.tracebacks import format_exception

    out = out or sys.stderr
    task = reached.task

    def emit(record: logging.LogRecord) -> None:
        out.write(f"{logging.getLevelName(record.levelno)} {visible(format_record(record))}\n")
        out.flush()

    install_log_capture()
    context = TaskRunContext(reached.run_id, "debug", task.name, reached.name, reached.map_index, 1, False, emit,
                             log_level, at_terminal=True)
    token = task_run_var.set(context)
    try:
        value = task.fn(*reached.args, **reached.kwargs)
    except Exception as error:
        failure = error
    else:
        failure = None
    finally:
        task_run_var.reset(token)
    if failure is not None:
        error = failure
        out.write(visible(format_exception(error)) + "\n")
        out.write(f"{visible(reached.name, one_line=True)} raised {visible(type(error).__name__)}; opening the debugger at the failing frame "
                  "(q quits)\n")
        out.flush()
        skipped = debugger(error)
        if skipped:
            out.write(skipped + "\n")
        return False
    out.write(f"{visible(reached.name, one_line=True)} completed; it returned {describe(value)}:\n  {short_repr(value, 1000)}\n")
    out.flush()
    return True


# From the command line --------------------------------------------------------------------------


def flow_of(run: "FlowRun", flows_dir: Any) -> Any:
    """The flow a recorded run ran, as its file defines it now (by name in the flows directory, else its file)."""
    from pathlib import Path

    from flows_tui.project.flow_files import defined_flows, load_flow_file
    from flows_tui.project.flow_search import find_flow

    try:
        return find_flow(run.flow, flows_dir)[0]
    except FlowsTuiError as error:
        if not run.file or not Path(run.file).exists():
            raise UsageError(f"run {run.run_id} ran flow {visible(run.flow, one_line=True)!r}, which is not in the "
                             f"flows directory any more ({error})") from None
        loaded = load_flow_file(Path(run.file))
        if loaded.error is not None:
            raise loaded.error from None
        found = [flow for flow in defined_flows(loaded) if flow.name == run.flow]
        if not found:
            raise UsageError(f"run {run.run_id} ran flow {visible(run.flow, one_line=True)!r}, which "
                             f"{visible(run.file, one_line=True)} does not define any more") from None
        return found[-1]


def reach_held(session: Any, run_id: str, task_run: "TaskRun", flow: Any) -> Reached | None:
    """The task run with the exact arguments it was submitted with, from the session; None if not held.

    No re-run: its argument templates and its upstream results are those of the run itself
    (the flow's last run in this session, its results still on the cluster). The function
    that runs is the task's as the flow file defines it now, so a fix saved since is tried.
    """
    held = session.call_of(run_id, task_run.id) if session is not None else None
    if held is None or held.call is None:
        return None
    task, args_template, kwargs_template, futures, allowed = held.call
    if any(future.status != "finished" for future in futures):
        return None
    try:
        outcomes = session.client.gather(list(futures)) if futures else []
    except Exception:  # released or lost meanwhile: the re-run gets them
        return None
    if any(outcome.state == UNSENDABLE for outcome in outcomes):  # a value that cannot come here
        return None
    for index, outcome in enumerate(outcomes):
        if not outcome.ok and index not in allowed:
            upstream = outcome.name or "an upstream task run"
            raise DebugError(f"{task_run.name} did not run: its upstream {upstream} ended {outcome.state}; "
                             f"debug that one (d on it, or flows-tui debug {run_id} {upstream})")
    current = next((value for value in getattr(flow.fn, "__globals__", {}).values()
                    if type(value) is type(task) and getattr(value, "name", None) == task.name), task)
    args = substitute(args_template, outcomes) if outcomes else args_template
    kwargs = substitute(kwargs_template, outcomes) if outcomes else kwargs_template
    reached = Reached(current, task_run.name, task_run.map_index, run_id, args, kwargs)
    try:
        values = current.signature.bind(*args, **kwargs).arguments
        templates = current.signature.bind(*args_template, **kwargs_template).arguments
    except TypeError:
        return reached
    for parameter, value in values.items():
        refs = _refs(templates.get(parameter))
        source = f"held in cluster memory from run {run_id}" if refs else "given by the flow body"
        reached.inputs.append(Input(parameter, value, source))
    return reached
