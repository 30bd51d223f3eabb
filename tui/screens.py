"""Modal screens: every key (`?`), a traceback or error, and a yes/no question."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, Static

from flows_tui.safe_text import plain


class HelpScreen(ModalScreen[None]):
    """Every key of the app and of each pane, with what it does: two columns where they fit."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close"),
                Binding("j,down", "scroll(1)", "Down", show=False),
                Binding("k,up", "scroll(-1)", "Up", show=False),
                Binding("space,pagedown", "page(1)", "Page down", show=False),
                Binding("b,pageup", "page(-1)", "Page up", show=False),
                Binding("g,home", "scroll(-1000000)", "Top", show=False),
                Binding("G,end", "scroll(1000000)", "Bottom", show=False)]
    TWO_COLUMNS_FROM = 100  # terminal columns

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__()
        self.sections = sections

    @staticmethod
    def _table(sections: list[tuple[str, list[tuple[str, str]]]]) -> Table:
        table = Table(box=None, show_header=False, padding=(0, 1))
        # Keys are short but for "tab / shift+tab", which folds at its space: the descriptions keep the room.
        table.add_column(style="bold cyan", max_width=10)  # "Everywhere"
        table.add_column()
        for number, (title, keys) in enumerate(sections):
            if number:
                table.add_row("", "")
            table.add_row(Text(title, style="bold underline"), "")
            for key, description in keys:
                table.add_row(key, description)
        return table

    def compose(self) -> ComposeResult:
        if self.app.size.width >= self.TWO_COLUMNS_FROM and len(self.sections) > 1:
            # The first section (every pane's keys) on the left, the panes' own on the right.
            body: Any = Table.grid(padding=(0, 2), expand=True)
            body.add_column(ratio=6)  # the wider: its descriptions are the longer
            body.add_column(ratio=5)
            body.add_row(self._table(self.sections[:1]), self._table(self.sections[1:]))
        else:
            body = self._table(self.sections)
        # What the keys of this screen are, in its border: every line inside is the help's (all of it
        # fits at 100x30; where it does not, the scrollbar shows and the bottom border says so).
        view = VerticalScroll(id="help")
        view.border_title = "Keys"
        view.border_subtitle = "j/k scroll · esc closes · ctrl+p: every action and flow"
        with view:
            yield Static(body)

    def on_mount(self) -> None:
        view = self.query_one("#help", VerticalScroll)
        self.watch(view, "scroll_y", self._say_what_is_below, init=False)
        self.call_after_refresh(self._say_what_is_below)

    def _say_what_is_below(self, *_: Any) -> None:
        view = self.query_one("#help", VerticalScroll)
        if view.scroll_y < view.max_scroll_y:
            view.border_subtitle = "more below: j/k, space scroll · esc closes"
        elif view.max_scroll_y > 0:
            view.border_subtitle = "the end: k, b scroll up · esc closes"

    def action_scroll(self, lines: int) -> None:
        self.query_one("#help", VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_page(self, pages: int) -> None:
        view = self.query_one("#help", VerticalScroll)
        view.scroll_relative(y=pages * max(1, view.size.height - 1), animate=False)


class TextScreen(ModalScreen[None]):
    """A title and a long text (a traceback, an error): scrollable, esc closes."""

    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close"),
                Binding("e", "app.edit", "Edit", show=False)]  # a modal screen passes no key to the app

    def __init__(self, title: str, body: str, *, error: bool = True,
                 location: tuple[str, int | None] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.error = error
        self.location = location  # where `e` opens the editor; None: the body's innermost frame

    def compose(self) -> ComposeResult:
        with Vertical(id="text-screen"):
            yield Static(plain(self.title_text, "bold red" if self.error else "bold"), id="text-title")
            with VerticalScroll(id="text-body"):
                yield Static(plain(self.body))
            yield Static(Text("esc closes", style="dim"))


class FramePicker(ModalScreen["tuple[str, int] | None"]):
    """Which frame of a traceback to open in the editor: the one that raised first, enter opens."""

    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close")]

    def __init__(self, frames: list[tuple[str, int]], shown: list[str]) -> None:
        super().__init__()
        self.frames = frames  # innermost first
        self.shown = shown

    def compose(self) -> ComposeResult:
        with Vertical(id="frame-picker"):
            yield Static(Text("Open which frame in the editor? (enter opens, esc closes)", style="bold"))
            yield OptionList(*[plain(text, one_line=True) for text in self.shown], id="frames")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.frames[event.option_index])


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(plain(self.question))
            with Horizontal():
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


def key_help(bindings: Any) -> list[tuple[str, str]]:
    """(keys, description) of bindings, as the help screen lists them."""
    rows = []
    for binding in bindings:
        if binding.description:
            rows.append((binding.key_display or binding.key, binding.description))
    return rows
