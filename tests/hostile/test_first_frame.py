"""The UI's first frame, drawn before Textual loads: the panes where the UI will draw them, the
flows' names read from their source, and the terminal given back as it was on every way out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import termios
import time

import pytest

from conftest import write_project
from flows_tui.tui.first_frame import compose

from .conftest import EVIL, Session, leaks

FLOWS = {
    "alpha.py": "from flows_tui import flow\n\n@flow\ndef alpha():\n    return 1\n",
    # A library slow to import: its flows are listed from the source long before its import ends.
    "slow.py": ("import time\ntime.sleep(3)\nfrom flows_tui import flow\n\n"
                f"@flow(name={('evil' + EVIL)!r})\ndef slow():\n    return 2\n\n@flow\ndef beta():\n    return 3\n"),
}


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_first_frame_draws_the_panes_where_the_ui_draws_them(tmp_path, size):
    # Textual's frame replaces it cell for cell: a pane that moved or changed size would jump.
    from test_tui import app_for, make_project, wait_for

    project = make_project(tmp_path)
    width, height = size
    lines = compose(project / "flows", ["numbers"], width, height)
    assert len(lines) == height and all(len(line) == width for line in lines)
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.query_one("#flows").region.height > 0, message="the panes laid out")
        for pane in ("flows", "tasks", "runs", "logs"):
            region = app.query_one(f"#{pane}").region
            top, left = lines[region.y][region.x:], lines[region.bottom - 1][region.x:]
            assert top[0] == "╭" and top[region.width - 1] == "╮", (pane, region, lines[region.y])
            assert left[0] == "╰" and left[region.width - 1] == "╯", (pane, region, lines[region.bottom - 1])
            assert pane in top[:region.width]


def test_names_in_the_first_frame_show_control_characters_and_fit_any_width(tmp_path):
    for width, height in ((100, 30), (40, 10), (10, 3), (1, 1)):
        lines = compose(tmp_path, ["ok", "evil" + EVIL], width, height)
        assert len(lines) == height and all(len(line) == width for line in lines)
        assert not leaks("".join(lines).encode("utf-8", "surrogateescape"))
    assert "ok" in compose(tmp_path, ["ok"], 80, 24, unicode=False)[2]


def _settings(controller: int) -> list:
    return termios.tcgetattr(controller)


def test_the_ui_lists_the_flows_from_their_source_at_once_then_textual_takes_over_and_q_gives_the_terminal_back(
        tmp_path):
    project = write_project(tmp_path, FLOWS)
    ui = Session(cwd=project, columns=100, rows=30)
    echo_before = _settings(ui.controller)[3] & termios.ECHO
    try:
        ui.expect("flows-tui is starting".encode(), deadline=30)
        first = bytes(ui.output)
        assert b"alpha" in first and b"beta" in first and b"evil" in first  # slow.py still sleeping at import
        assert not leaks(first), leaks(first)  # its name's escapes shown, not sent
        assert not _settings(ui.controller)[3] & termios.ECHO  # keys typed now are not drawn on the frame
        ui.expect(b"Quit", deadline=60)  # Textual's own frame, its footer
        ui.send("q")
        end = time.monotonic() + 30
        while ui.process.poll() is None and time.monotonic() < end:
            ui._read(0.2)
        settings = _settings(ui.controller)
        shown = ui.wait(deadline=30)
    finally:
        ui.kill()
    assert shown.returncode == 0, shown.text[-2000:]
    # One alternate screen, entered once (entering twice would lose the shell's cursor) and left.
    assert shown.output.count(b"\x1b[?1049h") == 1 and shown.output.rstrip().count(b"\x1b[?1049l") >= 1
    assert settings[3] & termios.ECHO == echo_before  # the terminal's settings as they were


SIGNALLED = """
import os, signal, sys, time
from pathlib import Path
from flows_tui.tui import first_frame
frame = first_frame.draw(Path(sys.argv[1]))
assert frame is not None
print("\\nframe drawn", flush=True)
if sys.argv[2] == "interrupt":
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        frame.undo()
        print("given back", flush=True)
else:
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))
    time.sleep(30)
"""


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "interrupt"])
def test_a_signal_or_ctrl_c_before_textual_starts_gives_the_terminal_back(tmp_path, how):
    import fcntl
    import pty
    import select
    import struct

    project = write_project(tmp_path, FLOWS)
    script = tmp_path / "frame.py"
    script.write_text(SIGNALLED)
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    output = bytearray()
    try:
        echo_before = termios.tcgetattr(terminal)[3] & termios.ECHO
        env = {**os.environ, "TERM": "xterm-256color"}
        env.pop("FLOWS_TUI_FIRST_FRAME", None)
        process = subprocess.Popen([sys.executable, str(script), str(project / "flows"), how], stdin=terminal,
                                   stdout=terminal, stderr=terminal, env=env)
        end = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < end:
            if select.select([controller], [], [], 0.1)[0]:
                output.extend(os.read(controller, 65536))
        returncode = process.wait(10)
        while select.select([controller], [], [], 0.2)[0]:
            output.extend(os.read(controller, 65536))
        after = termios.tcgetattr(terminal)[3] & termios.ECHO
    finally:
        os.close(terminal)
        os.close(controller)
    output = bytes(output)
    assert b"frame drawn" in output and b"alpha" in output, output[-2000:]
    assert output.rindex(b"\x1b[?1049l") > output.index(b"\x1b[?1049h")  # the shell's screen back
    assert b"\x1b[?25h" in output[output.index(b"frame drawn"):]  # and its cursor
    assert after == echo_before  # typed keys echo again
    if how == "interrupt":
        assert returncode == 0 and b"given back" in output
    else:
        assert returncode == 128 + getattr(signal, how)
