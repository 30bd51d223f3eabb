"""`p`: run with parameters — a form built from the flow's signature, checked before anything runs."""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from flows_tui.errors import ParameterError
from flows_tui.parameters import describe_parameters, json_default, validate_parameters
from flows_tui.safe_text import plain, visible


def as_text(value: Any) -> str:
    """A value as the user would type it: strings bare, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=json_default)


class ParamForm(ModalScreen[dict | None]):
    """One input per parameter (name, type, default); errors appear under the field at fault."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Run"),
    ]

    def __init__(self, flow: Any, values: dict[str, Any]) -> None:
        super().__init__()
        self.flow = flow
        self.values = values  # what a run would start from: defaults, then flows.toml
        self.parameters = describe_parameters(flow.fn)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="param-form"):
            yield Static(Text.assemble("Run ", (visible(self.flow.name, one_line=True), "bold"), " with parameters"),
                         id="param-title")
            if not self.parameters:
                yield Label("This flow takes no parameters.")
            for parameter in self.parameters:
                required = " (required)" if parameter["required"] else ""
                yield Label(plain(f"{parameter['name']}: {parameter['type']}{required}"), classes="param-label")
                yield Input(value=as_text(self.values.get(parameter["name"], parameter["default"])),
                            placeholder=parameter["type"], id=f"param-{parameter['name']}")
                yield Static("", id=f"error-{parameter['name']}", classes="param-error")
            yield Static("", id="error-form", classes="param-error")
            with Horizontal(id="param-buttons"):
                yield Button("Run", variant="primary", id="run")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        inputs = self.query(Input)
        if inputs:
            inputs.first().focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        index = inputs.index(event.input)
        if index + 1 < len(inputs):
            inputs[index + 1].focus()
        else:
            self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.action_submit()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        texts = {p["name"]: self.query_one(f"#param-{p['name']}", Input).value for p in self.parameters}
        given = {name: text for name, text in texts.items() if text != ""}
        problems = 0
        for parameter in self.parameters:  # each field on its own, so every error sits under its field
            name = parameter["name"]
            message = ""
            if name in given:
                try:
                    validate_parameters(self.flow.fn, {name: given[name]}, flow_name=self.flow.name,
                                        from_text={name}, require_all=False)
                except ParameterError as error:
                    message = error.reason
            elif parameter["required"]:
                message = f"required ({parameter['type']})"
            error = self.query_one(f"#error-{name}", Static)
            error.update(plain(message))
            error.set_class(bool(message), "shown")
            problems += bool(message)
        if problems:
            return
        try:
            values = self.flow.validate(given, from_text=set(given))
        except ParameterError as error:
            self.query_one("#error-form", Static).update(plain(error))
            self.query_one("#error-form", Static).add_class("shown")
            return
        self.dismiss(values)

