"""Scheduled runs: the one way `serve` and the UI fire the schedules of flows.toml.

A `ScheduledRuns` holds the Scheduler, with the project's schedule lock (one process fires,
the others stand by and follow its due times), and starts each due run through the
process's RunLauncher, on a thread of its own, like any other run. What the caller adds is
only what it shows: `serve` says a line as a run starts and ends, the UI follows the run.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
from typing import TYPE_CHECKING, Any, Callable

from flows_tui.errors import FlowsTuiError
from flows_tui.project.schedules import Schedule

from .scheduler import ScheduleLock, Scheduler

if TYPE_CHECKING:
    from flows_tui.engine.flow_run import FlowRunEngine
    from flows_tui.launch.launcher import RunLauncher

NOT_STARTED = "NotStarted"


def _nothing(*args: Any) -> None:
    return None


class ScheduledRuns:
    """The schedules one process fires, and the runs they start.

    `flow_of(name)`: the flow of that name and its file, as loaded now (None when it is gone; a
    FlowsTuiError says why it cannot run now). `ready()`, on the run's thread before it starts:
    False leaves that due time (the UI said why already). `started(engine, due)`, `ended(engine,
    due)` and `not_started(schedule, due, error)` hear what became of each due time, on the run's thread.
    """

    def __init__(self, launcher: "RunLauncher", store: Any, holder: str,
                 flow_of: Callable[[str], "tuple[Any, str | None] | None"], *,
                 log: Callable[[str], None] = _nothing, clock: Any = None,
                 ready: Callable[[], bool] = lambda: True,
                 started: Callable[["FlowRunEngine", _dt.datetime], None] = _nothing,
                 ended: Callable[["FlowRunEngine", _dt.datetime], None] = _nothing,
                 not_started: Callable[[Schedule, _dt.datetime, FlowsTuiError], None] = _nothing) -> None:
        self.launcher = launcher
        self.flow_of = flow_of
        self.ready, self.started, self.ended, self.not_started = ready, started, ended, not_started
        lock = ScheduleLock(launcher.config.project.state_dir, holder)
        self.scheduler = Scheduler(store, self._start, log=log, lock=lock, **({"clock": clock} if clock else {}))
        self._pool = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="flows-tui-scheduled")

    def set_schedules(self, schedules: list[Schedule]) -> None:
        """The schedules to fire, at start and after every reload (unchanged ones keep their due time)."""
        self.scheduler.set_schedules(schedules)

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        """Fire nothing more (the runs in progress go on) and let the schedules' lock go to a standby."""
        self.scheduler.stop()
        self._pool.shutdown(wait=False)

    def _start(self, schedule: Schedule, due: _dt.datetime) -> concurrent.futures.Future:
        """On the scheduler's thread: the due run, started on a thread of its own (FlowsTuiError if it cannot be)."""
        found = self.flow_of(schedule.flow)
        if found is None:
            raise FlowsTuiError(f"flow {schedule.flow} is not in the flows directory any more")
        flow, file = found
        parameters = flow.validate(dict(schedule.parameters))
        return self._pool.submit(self._run, schedule, flow, parameters, file, due)

    def _run(self, schedule: Schedule, flow: Any, parameters: dict[str, Any], file: str | None,
             due: _dt.datetime) -> str:
        if not self.ready():
            return NOT_STARTED
        try:  # after a run that ended Crashed because the scheduler was lost, this connects again
            engine = self.launcher.launch(flow, parameters, file=file,
                                          on_engine=lambda engine: self.started(engine, due))
        except FlowsTuiError as error:  # no cluster, or the flow's [flows.X] cluster profile is wrong
            self.not_started(schedule, due, error)
            return NOT_STARTED
        self.ended(engine, due)
        return engine.flow_run.state
