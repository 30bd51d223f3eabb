"""A task run's inputs and result described in a few words: type, size, a short repr.

What `flows-tui debug --inputs` prints and what the UI's task run screen shows while the
cluster still holds the run (`held_inputs`: the values are described on a worker that has
them; only short strings leave the cluster).
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any

from flows_tui.engine.worker import substitute
from flows_tui.safe_text import visible

REPR_CHARS = 200

_short = reprlib.Repr()
_short.maxstring = REPR_CHARS
_short.maxother = REPR_CHARS
_short.maxlist = _short.maxtuple = _short.maxset = _short.maxdict = 10


def short_repr(value: Any, limit: int = REPR_CHARS) -> str:
    """A repr cut to `limit` characters, on one line, safe to show (big containers are not walked whole)."""
    try:
        text = _short.repr(value)
    except Exception as error:
        text = f"<{type(value).__name__}: repr failed: {type(error).__name__}>"
    text = visible(text, one_line=True)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def describe(value: Any) -> str:
    """The value's type and size: `list, 3 items, 120 B`."""
    from dask.sizeof import sizeof

    kind = type(value)
    parts = [kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"]
    try:
        if hasattr(value, "shape") and not isinstance(value, type):
            parts.append("shape " + "×".join(str(n) for n in value.shape))
        elif hasattr(value, "__len__") and not isinstance(value, type):
            count = len(value)
            parts.append(f"{count} item{'s' if count != 1 else ''}" if not isinstance(value, (str, bytes))
                         else f"{count} character{'s' if count != 1 else ''}" if isinstance(value, str)
                         else f"{count} bytes")
    except Exception:
        pass
    try:
        parts.append(_size(sizeof(value)))
    except Exception:
        pass
    return ", ".join(visible(part, one_line=True) for part in parts)


def _size(count: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count} B"



@dataclass
class HeldInputs:
    """Short descriptions of a task run's inputs and result, made on the cluster where the data is."""

    inputs: list[tuple[str, str, str]]  # (parameter, type and size, short repr)
    result: tuple[str, str] | None  # (type and size, short repr) when it succeeded
    note: str | None = None  # e.g. "reused from run …": its inputs were those of that run


def held_inputs(session: Any, run_id: str, task_run_id: str, timeout: float = 30.0) -> HeldInputs | None:
    """What task run `task_run_id` was given and returned, while the session holds its run; else None.

    Only short strings leave the cluster: each value is described on a worker that has it.
    """
    held = session.call_of(run_id, task_run_id) if session is not None else None
    if held is None or held.future is None or held.future.status != "finished":
        return None
    templates: dict[str, Any] = {}
    futures: list = []
    if held.call is not None:
        task, args_template, kwargs_template, futures, _ = held.call
        try:
            templates = dict(task.signature.bind(*args_template, **kwargs_template).arguments)
        except TypeError:
            templates = {"*args": args_template, "**kwargs": kwargs_template}
        if any(future.status != "finished" for future in futures):
            return None
    described = session.client.submit(_describe_held, templates, held.future, *futures, pure=False)
    inputs, result = described.result(timeout=timeout)
    note = f"reused from run {held.reused_from}: its inputs were that run's" if held.reused_from else None
    return HeldInputs(inputs, result, note)


def _describe_held(templates: dict[str, Any], outcome: Any, *upstream: Any) -> tuple[list, tuple | None]:
    """On a worker: describe each argument (upstream values put in place) and the result."""
    inputs = []
    for name, template in templates.items():
        try:
            value = substitute(template, list(upstream))
        except Exception as error:
            inputs.append((name, "?", f"could not be rebuilt: {type(error).__name__}: {error}"[:REPR_CHARS]))
            continue
        inputs.append((name, describe(value), short_repr(value)))
    result = (describe(outcome.value), short_repr(outcome.value, 1000)) if outcome.ok else None
    return inputs, result


def held_inputs_lines(report: HeldInputs) -> list[str]:
    lines = ["inputs:"] if report.inputs else []
    for name, kind, text in report.inputs:
        lines.append(f"  {visible(name, one_line=True)}: {visible(kind, one_line=True)}")
        lines.append(f"    {visible(text, one_line=True)}")
    if report.note:
        lines.append(report.note)
    if report.result is not None:
        kind, text = report.result
        lines += [f"result: {visible(kind, one_line=True)}", f"  {visible(text, one_line=True)}"]
    return lines
