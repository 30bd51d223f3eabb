"""Reading flows.toml's tables: each key's line, typed values, `${VAR}` expansion, errors that
name the file, the key path and the line. The sections themselves are read in `config` and
`cluster_config`."""

from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path
from typing import Any, Mapping

from flows_tui.errors import ConfigError, did_you_mean
from flows_tui.states import ALL_STATES


# Locating keys in the text, so errors can name a line ------------------------------------------

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")
# A bare key starts where no key character precedes it: without that, a long word in an inline
# table was tried from each of its characters (a 10,000-character value took over a second).
_INLINE_KEY = re.compile(r"""((?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]+|"[^"]*")\s*=""")
_PART = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*(?:\.|$)""")


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _PART.findall(text))


class KeyLines:
    """Maps a dotted key path to the line that defines it (tomllib keeps no positions)."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                table = _split_key(header.group(1))
                self.lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                path = table + _split_key(key.group(1))
                self.lines.setdefault(path, number)
                # keys of an inline table on the same line: `parameters = { path = "x" }`
                rest = line[key.end():]
                if rest.lstrip().startswith("{"):
                    for inner in _INLINE_KEY.findall(rest):
                        self.lines.setdefault(path + (inner.strip('"'),), number)

    def find(self, path: tuple[str, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


# `${VAR}` or `${VAR:-default}`; a leading `$$` escapes it. The default runs to the first `}`.
_VARIABLE = re.compile(r"\$?\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# Reading tables ----------------------------------------------------------------------------

class Reader:
    def __init__(self, path: Path, lines: KeyLines, environ: Mapping[str, str], *, require_env: bool = True,
                 problems: list[ConfigError] | None = None) -> None:
        self.path = path
        self.lines = lines
        self.environ = environ
        self.require_env = require_env
        # Given a list (`flows-tui check`): problems are collected there and reading goes on without
        # the bad value; otherwise the first one raises.
        self.problems = problems

    def error(self, keys: tuple[str, ...], message: str) -> ConfigError:
        return ConfigError(message, path=display_path(self.path), key=".".join(keys) or None,
                           line=self.lines.find(keys))

    def report(self, error: ConfigError) -> None:
        """Raise `error`, or when collecting, record it: the caller goes on as if the key were absent."""
        if self.problems is None:
            raise error
        self.problems.append(error)

    def section(self, build: Any, fallback: Any) -> Any:
        """`build()`; when collecting, a problem it raises is recorded and `fallback()` stands in."""
        if self.problems is None:
            return build()
        try:
            return build()
        except ConfigError as error:
            self.problems.append(error)
            return fallback()

    def table(self, data: Any, keys: tuple[str, ...], allowed: set[str]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.error(keys, f"expected a table, got {data!r}")
        for name in data:
            if name not in allowed:
                hint = did_you_mean(name, allowed, otherwise=f" (known keys: {', '.join(sorted(allowed))})")
                self.report(self.error(keys + (name,), f"unknown key {name!r}{hint}"))
        return data

    def expand(self, value: str, keys: tuple[str, ...], unset: list[str] | None = None) -> str:
        """`${VAR}` and `${VAR:-default}` from the environment; `$${...}` is written as it is.

        A variable that is not set (and has no default) is an error, unless `unset` is given:
        then its name is appended there and the caller decides.
        """
        def replace(match: re.Match) -> str:
            if match.group(0).startswith("$$"):
                return match.group(0)[1:]
            name, default = match.group(1), match.group(2)
            if name in self.environ and not (default is not None and self.environ[name] == ""):
                return self.environ[name]
            if default is not None:  # as in the shell, ${VAR:-default} also stands in for an empty VAR
                return default
            if unset is not None:
                unset.append(name)
                return match.group(0)
            if not self.require_env:
                return match.group(0)
            self.report(self.error(keys, f"environment variable {name} is not set (used as ${{{name}}}; "
                                         f"${{{name}:-default}} gives a default)"))
            return match.group(0)

        return _VARIABLE.sub(replace, value)

    def get(self, data: dict, keys: tuple[str, ...], name: str, kind: type | tuple, default: Any = None,
            *, expand: bool = True) -> Any:
        if name not in data:
            return default
        value = data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        wrong_bool = isinstance(value, bool) and bool not in kinds
        if wrong_bool or not isinstance(value, kinds):
            expected = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
            self.report(self.error(keys + (name,), f"expected {expected}, got {value!r}"))
            return default
        if isinstance(value, str) and expand:
            value = self.expand(value, keys + (name,))
        return value

    def positive(self, data: dict, keys: tuple[str, ...], name: str) -> int | None:
        value = self.get(data, keys, name, int)
        if value is not None and value < 1:
            raise self.error(keys + (name,), f"must be at least 1, got {value}")
        return value

    def states(self, data: dict, keys: tuple[str, ...]) -> tuple[str, ...]:
        value = self.get(data, keys, "on", list, ["Failed", "Crashed"])
        for state in value:
            if state not in ALL_STATES:
                hint = did_you_mean(str(state), ALL_STATES)
                raise self.error(keys + ("on",), f"unknown state {state!r}{hint}; states: {', '.join(ALL_STATES)}")
        return tuple(value)


_KIND_NAMES = {int: "an integer", str: "a string", bool: "true or false", list: "a list", dict: "a table",
               float: "a number"}

_INTERVAL = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
                       r"(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_interval(value: Any) -> _dt.timedelta:
    """"90s", "5m", "1h30m", "1d" or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _INTERVAL.match(str(value))
        if not match or not any(match.groups()):
            raise ValueError(value)
        days, hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        raise ValueError(value)
    return _dt.timedelta(seconds=seconds)


def display_path(path: Path) -> str:
    """The path as a user in the current directory would type it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative
