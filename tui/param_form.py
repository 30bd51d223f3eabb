"""`p`: run with parameters — a form built from the flow's signature, checked before anything runs."""

from __future__ import annotations

import enum
import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

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
        # The buttons and the keys first: at 80x24 a form of a few fields put them below the fold.
        with Vertical(id="param-form"):
            with Horizontal(id="param-header"):
                yield Static(Text.assemble("Run ", (visible(self.flow.name, one_line=True), "bold"),
                                           " with parameters\n", ("ctrl+s runs · enter: next field · esc cancels",
                                                                   "dim")), id="param-title")
                yield Button("Run", variant="primary", id="run")
                yield Button("Cancel", id="cancel")
            with VerticalScroll(id="param-fields"):
                if not self.parameters:
                    yield Label("This flow takes no parameters.")
                for parameter in self.parameters:
                    yield from self._field(parameter)
                yield Static("", id="error-form", classes="param-error")

    def _field(self, parameter: dict[str, Any]) -> ComposeResult:
        name = parameter["name"]
        required = " (required)" if parameter["required"] else ""
        yield Label(plain(f"{name}: {parameter['type']}{required} — {parameter['accepted']}"), classes="param-label")
        current = self.values.get(name, parameter["default"])
        value = as_text(current.value if isinstance(current, enum.Enum) else current)
        if parameter["choices"]:  # a Literal or an Enum: pick one, nothing to mistype
            choices = [(plain(choice, one_line=True), choice) for choice in parameter["choices"]]
            known = value in parameter["choices"]
            yield Select(choices, value=value if known else Select.BLANK, allow_blank=not known, id=f"param-{name}")
        else:
            yield Input(value=value, placeholder=parameter["accepted"], id=f"param-{name}")
        yield Static("", id=f"error-{name}", classes="param-error")

    def on_mount(self) -> None:
        fields = self.query("#param-fields Input, #param-fields Select")
        if fields:
            fields.first().focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        fields = list(self.query("#param-fields Input, #param-fields Select"))
        index = fields.index(event.input)
        if index + 1 < len(fields):
            fields[index + 1].focus()
        else:
            self.action_submit()

    def _text_of(self, name: str) -> str:
        field = self.query_one(f"#param-{name}")
        if isinstance(field, Select):
            return "" if field.value is Select.BLANK else str(field.value)
        return field.value

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.action_submit()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        texts = {p["name"]: self._text_of(p["name"]) for p in self.parameters}
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

