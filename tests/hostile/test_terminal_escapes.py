"""Escape sequences and markup in user text never reach the terminal as such: the commands
show them as visible escapes, on a real pty, and their JSON stays valid."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import PROCESS_CLUSTER_TOML, cli, write_project

from .conftest import (BROKEN_FLOW, BROKEN_NAME, EVIL, HOSTILE_FLOW, LATIN1_NAME, OSC_TITLE, Session, in_terminal,
                       leaks)

# How `visible` shows the title-setting sequence: the characters a user can read, no ESC, no BEL.
SHOWN_TITLE = "\\x1b]0;PWNED-TITLE\\x07"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project with the hostile flow, two broken files with hostile names, and one recorded run of it."""
    root = write_project(tmp_path_factory.mktemp("hostile"), {"hostile.py": HOSTILE_FLOW})
    (root / "flows" / BROKEN_NAME).write_text(BROKEN_FLOW)
    (root / "flows" / LATIN1_NAME).write_text(BROKEN_FLOW)
    return root


@pytest.fixture(scope="module")
def ran(project: Path):
    """`flows-tui run hostile` on a terminal, with a hostile parameter value: live progress, then the summary."""
    return in_terminal("run", "hostile", "-p", f"text=param{OSC_TITLE}[/]", cwd=project)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _assert_shown_safely(terminal, *, expect: tuple[str, ...] = (SHOWN_TITLE,)) -> None:
    assert leaks(terminal.output) == {}, terminal.text[-3000:]
    for text in expect:
        assert text in terminal.text, terminal.text[-3000:]


def test_run_shows_names_logs_errors_and_parameters_escaped(ran):
    assert ran.returncode == 1, ran.text[-3000:]
    _assert_shown_safely(ran, expect=(
        SHOWN_TITLE,                             # log lines, prints, the error
        "flow[bold]name\\x1b]0;PWNED-TITLE",        # the flow's name, markup and all
        "bad[/]task\\x1b]0;PWNED-TITLE",         # the task's name
        "[red]x[/red]",                          # markup in a message, as written
        "lone\\udce9",                           # a lone surrogate
        "param\\x1b]0;PWNED-TITLE\\x07[/]",      # the parameter value, in the error
        "library title",                         # a library's logger
    ))


def test_logs_show_every_line_escaped(project, ran):
    run_id = json.loads(cli("runs", "--json", cwd=project).stdout.splitlines()[0])["run_id"]
    shown = in_terminal("logs", run_id[:6], cwd=project, deadline=30)
    assert shown.returncode == 0, shown.text
    _assert_shown_safely(shown, expect=("body " + "title" + SHOWN_TITLE, "print title" + SHOWN_TITLE,
                                        "library title" + SHOWN_TITLE, "bad[/]task"))


def test_runs_and_list_show_a_stored_markup_name_as_written(project, ran):
    runs = in_terminal("runs", cwd=project, deadline=30)
    assert runs.returncode == 0, runs.text
    _assert_shown_safely(runs, expect=("flow[bold]name",))
    listed = in_terminal("list", cwd=project, deadline=30)
    assert listed.returncode == 0, listed.text
    _assert_shown_safely(listed, expect=("flow[bold]name\\x1b]0;PWNED-TITLE\\x07", "broken\\x1b]0;FILE-TITLE\\x07[red].py",
                                         "caf\\udce9.py"))


def test_check_names_hostile_files_and_errors_escaped(project):
    checked = in_terminal("check", cwd=project, deadline=30)
    assert checked.returncode == 2, checked.text
    _assert_shown_safely(checked, expect=("broken\\x1b]0;FILE-TITLE\\x07[red].py:1", "caf\\udce9.py:1",
                                          "RuntimeError: title" + SHOWN_TITLE))


def test_an_error_message_quoting_a_hostile_flow_name_is_escaped(project):
    shown = in_terminal("run", f"nothing{OSC_TITLE}[/]", cwd=project, deadline=30)
    assert shown.returncode == 2, shown.text
    _assert_shown_safely(shown, expect=("nothing\\x1b]0;PWNED-TITLE\\x07[/]",))


def test_json_stays_valid_with_the_characters_escaped(project, ran):
    run_id = json.loads(cli("runs", "--json", cwd=project).stdout.splitlines()[0])["run_id"]
    for args in (("runs", "--json"), ("logs", run_id, "--json"), ("list", "--json")):
        shown = in_terminal(*args, cwd=project, deadline=30)
        assert leaks(shown.output) == {}, shown.text
        result = cli(*args, cwd=project)
        documents = [json.loads(line) for line in result.stdout.splitlines()]
        assert documents, (args, result.stderr)
        assert "\\u001b]0;PWNED-TITLE\\u0007" in result.stdout  # escaped in the JSON text, not raw
        assert any(OSC_TITLE in text for d in documents for text in _strings(d))  # and whole when read
    result = cli("run", "hostile", "--json", cwd=project)
    document = json.loads(result.stdout)
    assert document["flow"] == "flow[bold]name" + OSC_TITLE
    assert "error " + EVIL.replace("\udce9", "\\udce9")[:40] in document["tasks"][0]["error"]


def test_a_lone_surrogate_on_worker_processes_neither_hangs_nor_is_lost(tmp_path):
    """It used to take the worker's connection down (msgpack cannot encode it) and the run waited forever."""
    project = write_project(tmp_path, {"hostile.py": HOSTILE_FLOW}, toml=PROCESS_CLUSTER_TOML)
    result = cli("run", "hostile", cwd=project, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr.split("Failed bad[/]task")[0]  # no serialization traceback
    run_id = json.loads(cli("runs", "--json", cwd=project).stdout.splitlines()[0])["run_id"]
    messages = [json.loads(line)["message"] for line in cli("logs", run_id, "--json", cwd=project).stdout.splitlines()]
    assert any(m.startswith("log title") and "lone\\udce9" in m for m in messages), messages
    assert any(m.startswith("print title") for m in messages), messages


def test_the_ui_on_a_terminal_shows_hostile_text_escaped(tmp_path):
    """The real `flows-tui` UI on a pty: the list, a run's tree, logs and toasts, then q."""
    project = write_project(tmp_path, {"hostile.py": HOSTILE_FLOW})
    (project / "flows" / BROKEN_NAME).write_text(BROKEN_FLOW)
    ui = Session(cwd=project, columns=160, rows=45)
    try:
        ui.expect(b"cluster: LocalCluster", deadline=60)
        ui.expect(b"flow[bold]name")
        ui.send("j")  # from the broken file (first by name) to the hostile flow
        ui.send("r")
        ui.expect("✗ Failed".encode(), deadline=60)
        ui.expect(b"ValueError: error title\\x1b]0;PWNED-TITLE")  # the error, in the tree and the logs
        ui.send("q")
        shown = ui.wait(deadline=30)
    finally:
        ui.kill()
    assert shown.returncode == 0, shown.text[-2000:]
    # Textual sets the mouse pointer's shape itself (OSC 22, ended by BEL): that one is ours.
    ours = re.sub(rb"\x1b\]22;[a-z-]*\x07", b"", shown.output)
    assert leaks(ours) == {}, [ours[max(0, i - 60):i + 60] for i in (ours.find(b"\x1b]"), ours.find(b"\x07")) if i >= 0]
    assert SHOWN_TITLE.encode() in shown.output


async def test_the_ui_widgets_take_markup_and_escapes_in_names_as_text(tmp_path):
    """The parameters form, the palette and the log header quote the flow's and task's names: never markup."""
    from test_tui import app_for, flow_keys, select, wait_for

    from flows_tui.tui.flow_list import FlowList
    from flows_tui.tui.param_form import ParamForm

    project = write_project(tmp_path, {"hostile.py": HOSTILE_FLOW})
    app = app_for(project)
    name = "flow[bold]name" + OSC_TITLE
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.cluster is not None and name in flow_keys(app), message="the cluster")
        select(app, name)
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, ParamForm), message="the form")
        title = str(app.screen.query_one("#param-title").render())
        assert "flow[bold]name\\x1b]0;PWNED-TITLE\\x07" in title and "\x1b" not in title
        await pilot.press("escape")
        await pilot.press("r")
        await wait_for(pilot, lambda: app.query_one(FlowList).last_states.get(name) == "Failed", message="the run")
        await pilot.press("ctrl+p")
        await pilot.press(*"run flow")
        await pilot.pause(0.5)
        await pilot.press("escape")
        assert app.is_running


def test_runs_shows_a_stored_flow_named_with_a_closing_tag(tmp_path):
    """A store written before flow names were checked may hold `flow[/]name`: `runs` shows it, as written."""
    import datetime

    from flows_tui.record import events as ev
    from flows_tui.record.store import Store

    project = write_project(tmp_path, {})
    store = Store.open(project / ".flows-tui")
    now = datetime.datetime.now(datetime.timezone.utc)
    store.record([ev.FlowRunStarted("a1b2c3d4e5f6", "flow[/]name" + OSC_TITLE, {}, now),
                  ev.FlowStateChanged("a1b2c3d4e5f6", "Completed", now)])
    store.close()
    shown = in_terminal("runs", cwd=project, deadline=30)
    assert shown.returncode == 0, shown.text
    _assert_shown_safely(shown, expect=("flow[/]name",))
