"""User text made safe to show on a terminal: one path for every name, message and line.

Task output, exception messages, parameter values, flow names and file names are
untrusted (a task reads them from files and the network). Shown raw, an ESC or a BEL
in them drives the user's terminal: OSC 0 sets the window title, OSC 52 writes the
clipboard, OSC 8 plants a link, CSI 2J clears the screen. Handed to Rich or Textual as
a string, `[/]` or `[red]` in them is parsed as markup (and `bad[/]name` raises).

`visible` writes every control character (C0 but tab and newline, DEL, C1), every
surrogate code point (a latin-1 file name from `os.listdir`, a lone half of a pair)
and the bidirectional overrides as a visible escape (`\\x1b`, `\\udce9`, `\\u202e`);
`plain` gives a Rich `Text`, which is never parsed as markup. JSON output needs
neither: `json.dumps` escapes the same characters and stays valid JSON.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

# C0 controls but \t and \n, DEL, C1 controls, surrogates, line/paragraph separators, bidi controls.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: Any, *, one_line: bool = False) -> str:
    """`text` with every character that could drive a terminal written as a visible escape.

    Tabs and newlines stay (a traceback keeps its lines) unless `one_line` (a name, a
    table cell): then they are escaped too.
    """
    if not isinstance(text, str):
        text = str(text)
    pattern = _UNSAFE_ONE_LINE if one_line else _UNSAFE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


def plain(text: Any, style: str = "", *, one_line: bool = False) -> Text:
    """A Rich `Text` of `text` made visible: never markup, never a control character."""
    from rich.text import Text  # imported when used: the command line's start needs only `visible`

    return Text(visible(text, one_line=one_line), style=style)
