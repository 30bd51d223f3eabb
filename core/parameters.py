"""Flow parameters: read from the signature, validated and converted against the type hints.

Values typed by a user (command line, a form) are text and are parsed per type:
numbers, booleans, ISO dates, JSON for lists and dicts, Enum members by value or
name, Literal choices. Values from flows.toml or Python are validated as they are.
"""

from __future__ import annotations

import datetime as _dt
import enum
import inspect
import json
import typing
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePath
from typing import Any, Callable, Container, Iterable, Mapping

import pydantic

from .errors import ParameterError, closest

REQUIRED = inspect.Parameter.empty
_TRUE = {"true", "yes", "1", "on", "y"}
_FALSE = {"false", "no", "0", "off", "n"}


@dataclass(frozen=True)
class ParameterInfo:
    name: str
    annotation: Any
    default: Any
    kind: inspect._ParameterKind

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def signature_parameters(fn: Callable[..., Any]) -> list[ParameterInfo]:
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # an annotation that cannot be resolved still lets the flow run
        hints = {}
    return [ParameterInfo(p.name, hints.get(p.name, p.annotation), p.default, p.kind)
            for p in inspect.signature(fn).parameters.values()]


def type_name(annotation: Any) -> str:
    """A readable name for a type hint: int, list[str], Literal['a', 'b'], Colour."""
    if annotation is REQUIRED:
        return "any"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in typing.get_args(annotation)) + "]"
    if origin is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join("None" if a is type(None) else type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = typing.get_args(annotation)
        base = getattr(origin, "__name__", str(origin))
        return f"{base}[{', '.join(type_name(a) for a in args)}]" if args else base
    return getattr(annotation, "__name__", str(annotation))


@lru_cache(maxsize=256)
def _adapter(annotation: Any) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(annotation)


def _accepted(annotation: Any) -> str:
    """What a value must look like, in a user's words."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _accepted(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in annotation)
    if annotation is bool:
        return "a boolean (true/false)"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if annotation is _dt.datetime:
        return "a date and time (YYYY-MM-DDTHH:MM:SS)"
    if annotation is _dt.date:
        return "a date (YYYY-MM-DD)"
    if origin in (list, tuple, set, frozenset, dict) or annotation in (list, tuple, set, dict):
        return f"JSON for {type_name(annotation)}"
    return f"a value of type {type_name(annotation)}"


def _allows_none(annotation: Any) -> bool:
    return annotation is type(None) or type(None) in typing.get_args(annotation)


def _from_text(annotation: Any, text: str) -> Any:
    """Turn text into what pydantic can validate strictly against `annotation`."""
    stripped = text.strip()
    if stripped.lower() in ("none", "null") and _allows_none(annotation):
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _from_text(typing.get_args(annotation)[0], text)
    if annotation is str:
        return text
    if annotation is bool:
        lowered = stripped.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        for member in annotation:
            if stripped in (str(member.value), member.name):
                return member
        raise ValueError
    if origin is typing.Literal:
        for choice in typing.get_args(annotation):
            if stripped == str(choice):
                return choice
        raise ValueError
    needs_json = origin in (list, tuple, set, frozenset, dict) or annotation in (list, tuple, set, frozenset, dict) \
        or (isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)) \
        or typing.is_typeddict(annotation)
    if needs_json:
        return json.loads(stripped)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for option in typing.get_args(annotation):
            if option is type(None):
                continue
            try:
                return _convert(option, _from_text(option, text))
            except (ValueError, pydantic.ValidationError, json.JSONDecodeError):
                continue
        raise ValueError
    return stripped


def _convert(annotation: Any, value: Any) -> Any:
    return _adapter(annotation).validate_python(value)


def _check(info: ParameterInfo, value: Any, text: bool) -> Any:
    annotation = info.annotation
    if annotation is REQUIRED or annotation is Any:
        return value
    try:
        return _convert(annotation, _from_text(annotation, value) if text and isinstance(value, str) else value)
    except pydantic.errors.PydanticSchemaGenerationError:
        # A plain class as the hint: any instance of it is accepted as it is (Prefect allows arbitrary types).
        if isinstance(annotation, type) and not isinstance(value, annotation):
            raise ValueError(f"expected {_accepted(annotation)}, got {value!r}") from None
        return value
    except (ValueError, TypeError, pydantic.ValidationError, json.JSONDecodeError):
        raise ValueError(f"expected {_accepted(annotation)}, got {value!r}") from None


def validate_parameters(fn: Callable[..., Any], values: Mapping[str, Any], *, flow_name: str,
                        from_text: bool | Container[str] = False, require_all: bool = True) -> dict[str, Any]:
    """The complete keyword arguments for `fn`, defaults filled in, each converted to its type hint.

    `require_all=False` checks only the values given, for a partial set that is completed
    later (flows.toml values of an unscheduled flow, which `run -p` completes).
    """
    parameters = signature_parameters(fn)
    by_name = {p.name: p for p in parameters}
    accepts_extra = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    named = [p.name for p in parameters if p.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                           inspect.Parameter.VAR_KEYWORD)]
    problems: list[tuple[str, str]] = []
    # `*args` and `**kwargs` of a flow called from Python arrive under their own names, whole.
    spread = {p.name: values[p.name] for p in parameters if p.name in values
              and p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}
    for name in values:
        if name in spread:
            continue
        if name not in by_name and not accepts_extra:
            close = closest(name, named)
            hint = f"did you mean {close[0]!r}? " if close else ""
            accepted = ", ".join(named) if named else "none"
            problems.append((name, f"unknown parameter ({hint}accepted: {accepted})"))
    result: dict[str, Any] = {}
    for name in named:
        info = by_name[name]
        if name not in values:
            if info.required and require_all:
                problems.append((name, f"missing required parameter of type {type_name(info.annotation)}"))
            elif not info.required:
                result[name] = info.default
            continue
        text = from_text is True or (not isinstance(from_text, bool) and name in from_text)
        try:
            result[name] = _check(info, values[name], text)
        except ValueError as error:
            problems.append((name, str(error)))
    result.update(spread)
    if accepts_extra:
        result.update({k: v for k, v in values.items() if k not in by_name})
    if problems:
        message = "; ".join(f"{name!r}: {reason}" if len(problems) > 1 else reason for name, reason in problems)
        raise ParameterError(message, parameter=problems[0][0] if len(problems) == 1 else None, flow=flow_name)
    return result


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """`-p name=value` items into a dict of raw text; the last of a repeated name wins."""
    parsed: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"expected NAME=VALUE, got {item!r}")
        parsed[name.strip()] = value
    return parsed


def describe_parameters(fn: Callable[..., Any]) -> list[dict[str, Any]]:
    """What a parameter form shows: name, readable type, default, whether it is required, what a
    value must look like ("a date (YYYY-MM-DD)"), and the choices of a Literal or an Enum (as typed)."""
    return [{"name": p.name, "type": type_name(p.annotation), "default": None if p.required else p.default,
             "required": p.required, "accepted": _accepted(p.annotation), "choices": _choices(p.annotation)}
            for p in signature_parameters(fn)
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def _choices(annotation: Any) -> list[str] | None:
    """The values a Literal or an Enum allows, as the command line takes them; None for other types."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _choices(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return [value if isinstance(value, str) else json.dumps(value) for value in typing.get_args(annotation)]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [member.value if isinstance(member.value, str) else json.dumps(member.value, default=str)
                for member in annotation]
    return None


def json_default(value: Any) -> Any:
    """For json.dumps: dates as ISO text, Enums by value, paths as text, sets as lists."""
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    return repr(value)
