"""`list` and `check` without importing a flow file in our own process.

Each file is imported in a child process (see `import_probe`); that child also reads what
`list` prints and `check` verifies of its flows: names, functions, lines, parameters with
their defaults, and whether the parameters `flows.toml` gives a flow fit its signature (the
tables are sent to the child, which has the flow's function). Our process gets that as
`FlowSummary` objects, in FlowFiles with no module: a file is imported once, in its child.
"""

from __future__ import annotations

import base64
import inspect
import json
import pickle
from pathlib import Path
from typing import Any

from .flow_files import FlowFile, FlowSummary, defined_flows, definition_line

# What the child needs of flows.toml: per `[flows.KEY]`, its parameters and whether it is scheduled.
Tables = dict[str, tuple[dict[str, Any], bool]]


def tables_of(config: Any) -> Tables:
    """The `[flows.KEY]` tables of a Config (None: no flows.toml that could be read)."""
    if config is None:
        return {}
    return {key: (dict(flow_config.parameters), bool(flow_config.scheduled)) for key, flow_config in config.flows.items()}


def encode_tables(tables: Tables) -> str:
    """For the JSON request to the child: flows.toml's values may be dates and times, kept as they are."""
    return base64.b64encode(pickle.dumps(tables)).decode("ascii")


def decode_tables(text: str) -> Tables:
    return pickle.loads(base64.b64decode(text))  # noqa: S301 - our own process wrote it, for its own child


def config_keys(name: str, function: str) -> tuple[str, ...]:
    """The `[flows.KEY]` keys a flow answers to: its name, its function's name, its name with - → _."""
    return (name, function, name.replace("-", "_"))


def parameter_problem(flow: Any, values: dict[str, Any], scheduled: bool) -> tuple[str, str | None] | None:
    """Whether `[flows.X] parameters` fit `flow`'s signature: (message, parameter) of the first problem, or None."""
    from flows_tui.errors import ParameterError
    from flows_tui.parameters import validate_parameters

    if not values and not scheduled:
        return None
    try:
        if scheduled:
            # A scheduled run gets nothing but these values: all must be there, as for `run`.
            flow.validate(values)
        elif flow.should_validate_parameters:
            # `run -p` may complete the rest; check only what flows.toml gives.
            validate_parameters(flow.fn, values, flow_name=flow.name, require_all=False)
        else:
            flow.signature.bind_partial(**values)
    except (ParameterError, TypeError) as error:
        return str(error), getattr(error, "parameter", None)
    return None


def value_text(value: Any) -> str:
    """A parameter's value as the user would type it in a form: strings, dates, times and paths bare
    (a date default written as JSON, with its quotes, did not pass the form's own check), an Enum by
    its value, the rest as JSON."""
    import datetime as _dt
    import enum
    from pathlib import PurePath

    from flows_tui.parameters import json_default

    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    return json.dumps(value, default=json_default)


def _form(flow: Any) -> list[dict[str, Any]]:
    """The fields of `flow`'s parameter form, as JSON: what `p` shows without importing the file."""
    from flows_tui.parameters import describe_parameters

    return [{"name": field["name"], "type": field["type"], "required": field["required"],
             "accepted": field["accepted"], "choices": field["choices"],
             "text": "" if field["required"] else value_text(field["default"])}
            for field in describe_parameters(flow.fn)]


def _details(flow: Any) -> dict[str, Any]:
    """For the UI: the parameter form's fields and the plan, read where the file was imported."""
    from flows_tui.project.plan import plan_flow

    try:
        form, form_error = _form(flow), None
    except Exception as error:  # noqa: BLE001 - an annotation no form can show: said on `p`, the flow still listed
        form, form_error = None, f"{type(error).__name__}: {error}"
    return {"form": form, "form_error": form_error, "plan": plan_flow(flow).document()}


def summarize(loaded: FlowFile, tables: Tables, *, details: bool = False) -> dict[str, Any]:
    """A loaded file's flows as JSON (in the child): "defined" in line order, "listed" as `loaded.flows` orders them.
    `details`: each flow's parameter form and plan too (for the UI)."""
    from flows_tui.parameters import describe_parameters, json_default

    defined = defined_flows(loaded)
    documents = []
    for flow in defined:
        parameters = []
        for parameter in describe_parameters(flow.fn):
            try:
                default = json.loads(json.dumps(parameter["default"], default=json_default))
            except (TypeError, ValueError, RecursionError):  # a default json cannot write (a cycle)
                default = repr(parameter["default"])
            parameters.append({"name": parameter["name"], "default": default, "required": parameter["required"]})
        table = next((key for key in config_keys(flow.name, flow.fn.__name__) if key in tables), None)
        problem = None if table is None else parameter_problem(flow, *tables[table])
        try:
            file: str | None = inspect.getsourcefile(flow.fn) or ""
        except TypeError:
            file = None
        documents.append({"name": flow.name, "function": flow.fn.__name__, "line": definition_line(flow),
                          "file": file, "identity": f"{loaded.path}#{id(flow.fn)}", "parameters": parameters,
                          "table": table, "problem": None if problem is None else list(problem),
                          **(_details(flow) if details else {})})
    places = {id(flow): index for index, flow in enumerate(defined)}
    return {"defined": documents, "listed": [places[id(flow)] for flow in loaded.flows.values()]}


def summarized_file(path: Path, summary: dict[str, Any], helpers: dict[str, Path],
                    source: bytes | None = None) -> FlowFile:
    """The FlowFile `list`, `check` and the UI read, from a child's summary of a file that imported well
    (`source`: the bytes it imported)."""
    defined = [FlowSummary(flow["name"], flow["function"], flow["line"], flow["file"], flow["identity"],
                           tuple(flow["parameters"]), flow["table"],
                           None if flow["problem"] is None else tuple(flow["problem"]),
                           form=None if flow.get("form") is None else tuple(flow["form"]),
                           form_error=flow.get("form_error"),
                           plan=None if flow.get("plan") is None else _plan_from(flow["plan"]))
               for flow in summary["defined"]]
    listed = [defined[index] for index in summary["listed"]]
    return FlowFile(path, flows={flow.name: flow for flow in listed},
                    functions={flow.function: flow.name for flow in listed}, helpers=helpers, defined=defined,
                    source=source)


def _plan_from(document: dict[str, Any]) -> Any:
    from .plan.model import FlowPlan

    return FlowPlan.from_document(document)
