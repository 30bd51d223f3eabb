"""Checks made when a task or flow is defined, with Prefect 3's rules and messages.

A mistake in a decorator's options is reported at import time, naming the option,
rather than when the first run reaches it.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable

# Call options every task and flow call takes: a parameter cannot have these names.
RESERVED_ARGUMENTS = ("return_state", "wait_for")


def unwrap_method(fn: Any) -> tuple[Callable[..., Any], str | None]:
    """The function of a classmethod/staticmethod, and which it was (None: a plain function)."""
    if isinstance(fn, classmethod):
        return fn.__func__, "classmethod"
    if isinstance(fn, staticmethod):
        return fn.__func__, "staticmethod"
    return fn, None


def check_reserved_arguments(fn: Callable[..., Any]) -> None:
    from .exceptions import ReservedArgumentError

    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    for name in RESERVED_ARGUMENTS:
        if name in parameters:
            raise ReservedArgumentError(f"{name!r} is a reserved argument name and cannot be used.")


# Parameter names pydantic v1's ValidatedFunction refuses, so Prefect 3 refuses them in a flow
# that validates its parameters; refused here too, so the flow keeps running under Prefect.
VALIDATOR_NAMES = ("v__args", "v__kwargs", "v__positional_only", "v__duplicate_kwargs")


def check_validator_names(fn: Callable[..., Any]) -> None:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    taken = [name for name in parameters if name in VALIDATOR_NAMES]
    if taken:
        raise ValueError("Flow function is not compatible with `validate_parameters`. Disable validation or change "
                         f"the argument names ({', '.join(taken)}: Prefect's validator reserves these).")


def check_hooks(decorator: str, **hooks: Iterable[Any] | None) -> dict[str, list[Callable[..., Any]]]:
    """Each hook option as a list of callables; TypeError with Prefect's message otherwise."""
    checked: dict[str, list[Callable[..., Any]]] = {}
    for name, given in hooks.items():
        if given is None:
            checked[name] = []
            continue
        example = f"\n\n@{decorator}({name}=[hook1, hook2])\ndef my_{decorator}():\n\tpass"
        try:
            listed = list(given)
        except TypeError:
            raise TypeError(f"Expected iterable for '{name}'; got {type(given).__name__} instead. Please provide a "
                            f"list of hooks to '{name}':{example}") from None
        for hook in listed:
            if not callable(hook):
                raise TypeError(f"Expected callables in '{name}'; got {type(hook).__name__} instead. Please "
                                f"provide a list of hooks to '{name}':{example}")
        checked[name] = listed
    return checked


def check_run_name(option: str, value: Any) -> None:
    if value is not None and not isinstance(value, str) and not callable(value):
        raise TypeError(f"Expected string or callable for '{option}'; got {type(value).__name__} instead.")


# Prefect 3 refuses these in a flow's name (its server puts names in URLs). So does flows-tui, so
# that a flow written here runs under Prefect by changing only the import line.
BANNED_NAME_CHARACTERS = ["/", "%", "&", ">", "<"]


def check_flow_name(name: Any) -> None:
    """A flow's name must be text without `/ % & > <`, as in Prefect 3 (InvalidNameError)."""
    if name is not None and not isinstance(name, str):
        hint = "Perhaps you meant to call it? e.g. '@flow(name=get_flow_run_name())'" if callable(name) else ""
        raise TypeError(f"Expected string for flow parameter 'name'; got {type(name).__name__} instead. {hint}")
    if name is not None and any(character in name for character in BANNED_NAME_CHARACTERS):
        from .exceptions import InvalidNameError

        raise InvalidNameError(f"Name {name!r} contains an invalid character. "
                               f"Must not contain any of: {BANNED_NAME_CHARACTERS}.")


def seconds_or_none(value: Any) -> float | None:
    """Prefect reads a timeout of 0 (or None) as no timeout."""
    return float(value) if value else None


def options_signature(init: Callable[..., Any], first: str, leave_out: Iterable[str] = ()) -> inspect.Signature:
    """The signature of a decorator (`first`: its function's positional-only parameter) or of
    `with_options` (`first` = "self"): the options `init` takes, by keyword, so help(), editors and
    inspect show each option rather than `**options`."""
    skipped = {"self", "fn", *leave_out}
    options = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
               for name, parameter in inspect.signature(init).parameters.items() if name not in skipped]
    head = (inspect.Parameter(first, inspect.Parameter.POSITIONAL_OR_KEYWORD) if first == "self" else
            inspect.Parameter(first, inspect.Parameter.POSITIONAL_ONLY, default=None))
    return inspect.Signature([head, *options])
