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


def summarize(loaded: FlowFile, tables: Tables) -> dict[str, Any]:
    """A loaded file's flows as JSON (in the child): "defined" in line order, "listed" as `loaded.flows` orders them."""
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
                          "table": table, "problem": None if problem is None else list(problem)})
    places = {id(flow): index for index, flow in enumerate(defined)}
    return {"defined": documents, "listed": [places[id(flow)] for flow in loaded.flows.values()]}


def summarized_file(path: Path, summary: dict[str, Any], helpers: dict[str, Path]) -> FlowFile:
    """The FlowFile `list` and `check` read, from a child's summary of a file that imported well."""
    defined = [FlowSummary(flow["name"], flow["function"], flow["line"], flow["file"], flow["identity"],
                           tuple(flow["parameters"]), flow["table"],
                           None if flow["problem"] is None else tuple(flow["problem"]))
               for flow in summary["defined"]]
    listed = [defined[index] for index in summary["listed"]]
    return FlowFile(path, flows={flow.name: flow for flow in listed},
                    functions={flow.function: flow.name for flow in listed}, helpers=helpers, defined=defined)
