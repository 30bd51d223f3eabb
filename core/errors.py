"""Errors a user can cause. Each names the file, line, key or parameter at fault."""

from __future__ import annotations

import difflib
from typing import Iterable


def closest(word: str, known: Iterable[str], n: int = 1) -> list[str]:
    """The known names closest to `word` (a typo's likely intent), best first; none when nothing is close."""
    return difflib.get_close_matches(word, sorted(known), n=n)


def did_you_mean(word: str, known: Iterable[str], otherwise: str = "") -> str:
    """The hint every "unknown name" message ends with: " (did you mean 'x'?)", else `otherwise`."""
    match = closest(word, known)
    return f" (did you mean {match[0]!r}?)" if match else otherwise


def describe(error: BaseException) -> str:
    """`Type: message`, or the type alone for an error without a message: how runs name an error."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class FlowsTuiError(Exception):
    """Base of every error flows-tui reports to the user as one clear message."""


class ConfigError(FlowsTuiError):
    """flows.toml is invalid: names the file, the key path and the line."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None, line: int | None = None):
        self.path = path
        self.key = key
        self.line = line
        self.reason = message
        where = path or "flows.toml"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"{where}: " if where else ""
        if key:
            prefix += f"[{key}] "
        super().__init__(prefix + message)


class ParameterError(FlowsTuiError):
    """A flow parameter value is missing, unknown or of the wrong type."""

    def __init__(self, message: str, *, parameter: str | None = None, flow: str | None = None):
        self.parameter = parameter
        self.flow = flow
        self.reason = message
        parts = []
        if flow:
            parts.append(f"flow {flow!r}")
        if parameter:
            parts.append(f"parameter {parameter!r}")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class FlowFileError(FlowsTuiError):
    """A flow file could not be loaded (syntax error, import error, exception at import)."""

    def __init__(self, message: str, *, path: str, line: int | None = None, traceback: str | None = None,
                 error_type: str | None = None):
        self.path = path
        self.line = line
        self.traceback = traceback
        self.error_type = error_type
        self.reason = message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


class ClusterError(FlowsTuiError):
    """The Dask scheduler could not be reached or started."""


class UsageError(FlowsTuiError):
    """The command line asked for something that does not exist (unknown flow, bad option)."""
