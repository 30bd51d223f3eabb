"""prefect-dask's `DaskTaskRunner(performance_report_path=...)`: Dask's performance report of a run.

Dask writes it (`distributed.performance_report`: task stream, worker profile, bandwidth) from
what the scheduler saw between the run's start and its end. It needs bokeh where the client and
the scheduler run; without it the run says so in its log and goes on. A report that cannot be
written never fails the run.
"""

from __future__ import annotations

import logging
from typing import Any

from flows_tui.errors import describe


class PerformanceReport:
    """Started when a flow run starts, written when it ends (`write`); does nothing when not asked for."""

    def __init__(self, engine: Any, path: str | None, report: Any = None) -> None:
        self.engine = engine
        self.path = path
        self.report = report

    @classmethod
    def start(cls, engine: Any) -> "PerformanceReport":
        runner = getattr(engine.flow, "task_runner", None)
        path = getattr(runner, "performance_report_path", None)
        if not path:
            return cls(engine, None)
        try:
            import bokeh  # noqa: F401 - Dask's report draws with it
            from distributed import performance_report
        except ImportError:
            engine.log(logging.WARNING, f"performance_report_path={str(path)!r}: Dask's performance report needs "
                                        "bokeh (pip install bokeh); no report is written")
            return cls(engine, None)
        report = performance_report(filename=str(path))
        try:
            with engine.client.as_current():
                report.__enter__()
        except Exception as error:
            engine.log(logging.WARNING, f"performance_report_path={str(path)!r}: not written: {describe(error)}")
            return cls(engine, None)
        return cls(engine, str(path), report)

    def write(self) -> None:
        if self.report is None:
            return
        try:
            with self.engine.client.as_current():
                self.report.__exit__(None, None, None)
        except Exception as error:
            self.engine.log(logging.WARNING, f"performance_report_path={self.path!r}: not written: "
                                             f"{describe(error)}")
            return
        self.engine.log(logging.INFO, f"Dask's performance report of this run: {self.path}")
