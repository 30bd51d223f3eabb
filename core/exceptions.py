"""Exceptions with Prefect 3's names (`prefect.exceptions`), so `except` clauses port unchanged."""

from __future__ import annotations

from .states import CancelledRun, CrashedRun, FailedRun, TaskRunTimedOut, UpstreamFailed


class PrefectException(Exception):
    """The base of the errors flows-tui raises under Prefect's names."""


class ReservedArgumentError(PrefectException, TypeError):
    """A task or flow takes a parameter whose name is one of the call options (`wait_for`, `return_state`)."""


class InvalidNameError(PrefectException, ValueError):
    """A flow name with `/ % & > <` (Prefect's rule: such a flow would not run under Prefect)."""


class ParameterTypeError(PrefectException):
    """A flow parameter's value does not fit its type hint."""


class ParameterBindError(PrefectException, TypeError):
    """The arguments do not fit the signature of the flow or task."""


class MappingLengthMismatch(PrefectException, ValueError):
    """`.map()` received iterables of different lengths."""


class MappingMissingIterable(PrefectException, ValueError):
    """`.map()` received no iterable to map over."""


class MissingContextError(PrefectException, RuntimeError):
    """A run's context was asked for outside of a run (e.g. `get_run_logger()` outside a flow)."""


class MissingResult(PrefectException):
    """A state has no result to give."""


class UnfinishedRun(PrefectException):
    """The result of a run that has not ended was asked for."""


__all__ = ["CancelledRun", "CrashedRun", "FailedRun", "InvalidNameError", "MappingLengthMismatch",
           "MappingMissingIterable", "MissingContextError", "MissingResult", "ParameterBindError",
           "ParameterTypeError", "PrefectException", "ReservedArgumentError", "TaskRunTimedOut", "UnfinishedRun",
           "UpstreamFailed"]
