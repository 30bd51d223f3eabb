"""`p`: run with parameters — a form built from the flow's signature, checked before anything runs.

The fields come from the flows pane's listing (read in the child process that imported the flow's
file: names, types, defaults, a Literal's or an Enum's choices): opening the form imports nothing.
Submitting it imports the flow's file in the UI's process (the flow is about to run) and checks
the values against the flow itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from flows_tui.errors import FlowsTuiError, ParameterError
from flows_tui.parameters import validate_parameters
from flows_tui.project.flow_summaries import value_text
from flows_tui.safe_text import plain, visible

# How long a submit waits, the form held, for the flow's file to import (a few milliseconds for most;
# seconds for one that imports pandas); past that the form says so and finishes the submit once it has.
IMPORT_WAIT_SECONDS = 2.0


class ParamForm(ModalScreen[tuple[Any, dict] | None]):
    """One input per parameter (name, type, default); errors appear under the field at fault.

    Dismissed with (the Flow, its checked values), or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Run"),
    ]

    class Submit(Message):
        """ctrl+s, enter on the last field or the Run button: handled on the form's own message loop,
        so that waiting there for the flow's import holds the form, not the app (runs go on)."""

    def __init__(self, listed: Any, values: dict[str, Any],
                 import_flow: Callable[[], concurrent.futures.Future]) -> None:
        """`listed`: the flow as the flows pane lists it (its `form`); `import_flow()`: its file imported
        in the background, the Flow as the future's result (called on the first submit)."""
        super().__init__()
        self.listed = listed
        self.values = values  # what a run would start from: defaults, then flows.toml
        self.parameters = list(listed.form)
        self._import_flow = import_flow
        self.flow_future: concurrent.futures.Future | None = None
        self._submit_pending = False  # submitted before the file had imported: done once it has

    def compose(self) -> ComposeResult:
        # The buttons and the keys first: at 80x24 a form of a few fields put them below the fold.
        with Vertical(id="param-form"):
            with Horizontal(id="param-header"):
                yield Static(Text.assemble("Run ", (visible(self.listed.name, one_line=True), "bold"),
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
        value = value_text(self.values[name]) if name in self.values else parameter["text"]
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
        self.post_message(self.Submit())

    async def on_param_form_submit(self, message: Submit) -> None:
        flow = await self._flow()
        if flow is not None:
            self._submit(flow)

    async def _flow(self) -> Any:
        """The Flow the values are checked against, once its file has imported; None meanwhile (the
        submit is done when it has) or when it did not import (said under the form)."""
        if self.flow_future is None:
            self.flow_future = self._import_flow()
        future = self.flow_future
        if not future.done():
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), IMPORT_WAIT_SECONDS)
            except asyncio.TimeoutError:
                self._say(f"checking the values once {self._file()} has imported…")
                if not self._submit_pending:
                    self._submit_pending = True
                    loop = asyncio.get_running_loop()

                    def imported(_: Any) -> None:
                        with contextlib.suppress(RuntimeError):  # the app has ended meanwhile
                            loop.call_soon_threadsafe(self._submit_when_imported)

                    future.add_done_callback(imported)
                return None
            except Exception:  # noqa: BLE001 - its error is read below
                pass
        error = future.exception()
        if error is not None:
            from .app_runs import import_problem

            reason = import_problem(error) if isinstance(error, FlowsTuiError) else f"{type(error).__name__}: {error}"
            self._say(f"{self.listed.name} cannot run: {reason}")
            return None
        return future.result()

    def _submit_when_imported(self) -> None:
        if self._submit_pending and self.is_attached and self.app.screen is self:  # not cancelled meanwhile
            self._submit_pending = False
            self._say("")
            self.action_submit()

    def _file(self) -> str:
        return Path(self.listed.file).name if self.listed.file else "its file"

    def _say(self, text: str) -> None:
        said = self.query_one("#error-form", Static)
        said.update(plain(text))
        said.set_class(bool(text), "shown")

    def _submit(self, flow: Any) -> None:
        self.flow = flow
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
            self._say(str(error))
            return
        self.dismiss((self.flow, values))

