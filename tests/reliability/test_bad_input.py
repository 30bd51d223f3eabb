"""The bad-input table: every kind of bad input a user can give, tried as the user gives it.

Each row is data: the project (flow files besides flows/good.py, lines added to flows.toml),
the `flows-tui` command line, the exit code SPEC gives it, where the message points
(`file:line`; `flows.toml@TEXT` is the line of flows.toml holding TEXT) and what it says.
Every row is run as the real command in a subprocess, and the same assertion holds for all:

- exit 2 (usage, config, parameter or flow-file error, before anything runs): ONE message and
  nothing else on stdout or stderr, no traceback, holding `where` and every fragment;
- exit 1 (the run Failed): one summary line, and the user's own traceback once, none of
  flows-tui's frames in it;
- exit 0: the command did its work (`list` shows the broken file as one row, the run Completed).
A `warning` row's warning (the run's outcome unchanged) is printed exactly once.

`check` reports every problem: `test_one_check_reports_every_row_at_once` puts the rows marked
`check` into one project and finds each of them exactly once. Then the rows the UI can face
(`ui`) are given to FlowsApp under Textual's Pilot: it shows the error with its file:line or
key path and still answers keys (`?` opens help, escape closes it).
"""

from __future__ import annotations


import concurrent.futures
import dataclasses
import re
import subprocess
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import THREAD_CLUSTER_TOML, cli, free_port, write_project
from test_tui import app_for as tui_app_for
from test_tui import select
from test_tui import wait_for as tui_wait_for

GOOD = """
    from flows_tui import flow, task


    @task
    def double(x: int) -> int:
        return 2 * x


    @flow
    def good(n: int = 2, label: str = "x"):
        return double(n)


    @flow
    def needs(rows: int):
        return rows


    @flow
    def fails():
        raise ValueError("boom from the user's flow")


    @flow
    def param(n: int = 1):
        return n


    # One flow per [flows.NAME] row of the table, so one flows.toml can hold them all.
    @flow
    def hourly():
        pass


    @flow
    def every():
        pass


    @flow
    def zoned():
        pass


    @flow
    def typo():
        pass


    @flow
    def typed():
        pass
"""
FAILS_LINE = textwrap.dedent(GOOD).lstrip("\n").splitlines().index('    raise ValueError("boom from the user\'s flow")') + 1

SYNTAX_ERROR = """
    from flows_tui import flow

    @flow
    def oops(:
        pass
"""
MISSING_MODULE = """
    import os
    import not_a_module_anywhere
"""
RAISES_AT_IMPORT = """
    from flows_tui import flow

    def settings():
        raise RuntimeError("settings.ini not found")

    SETTINGS = settings()
"""
TWINS = """
    from flows_tui import flow

    @flow(name="twin")
    def first():
        pass

    @flow(name="twin")
    def second():
        pass
"""
WEBHOOK_DOWN = """
    [notify.webhook]
    url = "http://127.0.0.1:{closed_port}/hook"
    on = ["Completed", "Failed"]
"""


@dataclass(frozen=True)
class Row:
    id: str
    args: tuple[str, ...]  # after `flows-tui`
    exit: int
    says: tuple[str, ...]  # fragments of the one message; says[0] finds its line
    where: str | None = None  # "file.py:LINE", or "flows.toml@TEXT": the line holding TEXT
    files: dict[str, str] = field(default_factory=dict)  # flows/NAME.py besides good.py
    toml: str = ""  # added to the project's flows.toml
    warning: tuple[str, ...] = ()  # a warning the run prints exactly once (its outcome unchanged)
    check: bool = False  # also in the one `check` of the whole table
    ui: bool = False  # the UI faces it too (tests at the end)


TABLE = [
    # Flow files --------------------------------------------------------------------------------------
    Row("syntax error", ("run", "syntax_error.py:oops"), 2, ("SyntaxError: invalid syntax",),
        "syntax_error.py:4", files={"syntax_error.py": SYNTAX_ERROR}, check=True, ui=True),
    Row("import of a missing module", ("run", "missing_module.py:anything"), 2,
        ("ModuleNotFoundError", "not_a_module_anywhere"), "missing_module.py:2",
        files={"missing_module.py": MISSING_MODULE}, check=True, ui=True),
    Row("exception at import time", ("run", "raises_at_import.py:anything"), 2,
        ("RuntimeError: settings.ini not found",), "raises_at_import.py:4",
        files={"raises_at_import.py": RAISES_AT_IMPORT}, check=True, ui=True),
    Row("broken file beside good ones: list", ("list", "--json"), 0,
        ("ModuleNotFoundError", "not_a_module_anywhere"), "missing_module.py:2",
        files={"missing_module.py": MISSING_MODULE}),
    Row("two flows of one name", ("run", "twin"), 2, ("'twin'", "twins.py:3"), "twins.py:7",
        files={"twins.py": TWINS}, check=True, ui=True),
    # flows.toml --------------------------------------------------------------------------------------
    Row("invalid TOML", (), 2, ("invalid TOML", "Expected ']'"), "flows.toml@[flows.hourly",
        toml='[flows.hourly\ncron = "0 * * * *"\n', ui=True),
    Row("unknown key", ("run", "good"), 2,
        ("[flows.typo.corn] unknown key 'corn'", "did you mean 'cron'?"), "flows.toml@corn",
        toml='[flows.typo]\ncorn = "0 * * * *"\n', check=True, ui=True),
    Row("unknown nested key", ("list",), 2,
        ("[notify.webhook.header] unknown key 'header'", "did you mean 'headers'?"), "flows.toml@header",
        toml='[notify.webhook]\nurl = "http://127.0.0.1:9/hook"\nheader = { X-Token = "t" }\n', check=True),
    Row("mistyped value", ("serve",), 2, ("[flows.typed.parameters] expected a table", "got 'n=3'"),
        "flows.toml@parameters = \"n=3\"", toml='[flows.typed]\nparameters = "n=3"\n', check=True, ui=True),
    Row("bad cron", ("serve",), 2, ("[flows.hourly.cron]", "invalid cron expression '0 25 * * *'"),
        "flows.toml@0 25", toml='[flows.hourly]\ncron = "0 25 * * *"\n', check=True, ui=True),
    Row("bad interval", ("run", "good"), 2, ("[flows.every.interval]", "invalid interval '5 parsecs'"),
        "flows.toml@parsecs", toml='[flows.every]\ninterval = "5 parsecs"\n', check=True, ui=True),
    Row("bad timezone", ("run", "good"), 2, ("[flows.zoned.timezone]", "unknown timezone 'Mars/Olympus'"),
        "flows.toml@Mars", toml='[flows.zoned]\ncron = "0 * * * *"\ntimezone = "Mars/Olympus"\n',
        check=True, ui=True),
    Row("table for no flow", ("check",), 2, ("[flows.godo] names no discovered flow", "did you mean [flows.good]?"),
        "flows.toml@[flows.godo]", toml='[flows.godo]\ninterval = "1h"\n', check=True),
    Row("parameter of the wrong type in flows.toml", ("run", "param"), 2,
        ("[flows.param.parameters.n]", "parameter 'n'", "expected an integer, got 'abc'"),
        "flows.toml@n = \"abc\"", toml='[flows.param]\nparameters = { n = "abc" }\n', check=True),
    Row("parameter of the wrong type in a [flows.X.parameters] table", ("run", "param"), 2,
        ("[flows.param.parameters.n]", "parameter 'n'", "expected an integer, got 'abc'"),
        "flows.toml@n = \"abc\"", toml='[flows.param]\n\n[flows.param.parameters]\nn = "abc"\n'),
    Row("scheduled flow missing a parameter", ("serve",), 2,
        ("[flows.needs.parameters]", "parameter 'rows'", "missing required parameter"),
        "flows.toml@[flows.needs]", toml='[flows.needs]\ninterval = "1h"\n', check=True),
    # The command line -------------------------------------------------------------------------------
    Row("unknown flow name", ("run", "goood"), 2, ("no flow named 'goood'", "did you mean 'good'?")),
    Row("parameter of the wrong type", ("run", "good", "-p", "n=abc"), 2,
        ("parameter 'n'", "expected an integer, got 'abc'"), ui=True),
    Row("unknown parameter", ("run", "good", "-p", "lable=x"), 2,
        ("parameter 'lable'", "unknown parameter", "did you mean 'label'?")),
    Row("missing required parameter", ("run", "needs"), 2, ("parameter 'rows'", "missing required parameter"),
        ui=True),
    Row("parameter without =", ("run", "good", "-p", "n"), 2, ("expected NAME=VALUE, got 'n'",)),
    Row("unreachable scheduler", ("run", "good", "--address", "tcp://127.0.0.1:{closed_port}"), 2,
        ("nothing listens at tcp://127.0.0.1:{closed_port} (connection refused for 10 s)", "(address from --address)"), ui=True),
    # Runs ----------------------------------------------------------------------------------------------
    Row("the flow raises", ("run", "fails"), 1,
        ("✗ Failed flow run 'fails'", "ValueError: boom from the user's flow"), f"good.py:{FAILS_LINE}"),
    Row("webhook down, run Completed", ("run", "good"), 0, ("✓ Completed flow run 'good'",),
        toml=WEBHOOK_DOWN, warning=("notification to webhook failed", "Connection refused", "[notify.webhook] url")),
    Row("webhook down, run Failed", ("run", "fails"), 1,
        ("✗ Failed flow run 'fails'", "ValueError: boom from the user's flow"), f"good.py:{FAILS_LINE}",
        toml=WEBHOOK_DOWN, warning=("notification to webhook failed", "Connection refused", "[notify.webhook] url")),
]

CLOSED_PORT = free_port()  # nothing listens there: the scheduler and the webhook that are down


def filled(text: str) -> str:
    return text.replace("{closed_port}", str(CLOSED_PORT))


def make_project(root: Path, rows: list[Row]) -> Path:
    files = {"good.py": GOOD}
    for row in rows:
        files.update(row.files)
    toml = THREAD_CLUSTER_TOML + "".join("\n" + filled(textwrap.dedent(row.toml)) for row in rows if row.toml)
    return write_project(root, {name: textwrap.dedent(source).lstrip("\n") for name, source in files.items()},
                         toml=toml)


def location(row: Row, project: Path) -> str | None:
    """`where` with flows.toml@TEXT resolved to flows.toml:LINE in this project's flows.toml."""
    if row.where is None or not row.where.startswith("flows.toml@"):
        return row.where
    text = row.where.split("@", 1)[1]
    lines = (project / "flows.toml").read_text().splitlines()
    return f"flows.toml:{next(n for n, line in enumerate(lines, 1) if text in line)}"


# Every selected row's command runs in the background as the module starts (the unreachable
# scheduler takes its 10 s connect timeout), three at a time: each row's test waits for its own.
class Outcomes:
    def __init__(self, pool: concurrent.futures.Executor, root: pytest.TempPathFactory) -> None:
        self.pool, self.root, self.futures = pool, root, {}

    def start(self, row: Row) -> None:
        if row.id not in self.futures:  # the project is made here: mktemp is not for threads
            self.futures[row.id] = self.pool.submit(self._go, row, make_project(self.root.mktemp("row"), [row]))

    def _go(self, row: Row, project: Path) -> tuple[Path, subprocess.CompletedProcess, float]:
        started = time.monotonic()
        result = cli(*(filled(arg) for arg in row.args), cwd=project, timeout=60)
        return project, result, time.monotonic() - started

    def __getitem__(self, row: Row) -> tuple[Path, subprocess.CompletedProcess, float]:
        self.start(row)
        return self.futures[row.id].result(timeout=90)


@pytest.fixture(scope="module", autouse=True)
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    selected = [item.callspec.params["row"] for item in request.session.items
                if item.module is request.module and "row" in getattr(getattr(item, "callspec", None), "params", {})]
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        runs = Outcomes(pool, tmp_path_factory)
        for row in sorted(selected, key=lambda row: "--address" not in row.args):  # the slow one first
            runs.start(row)
        yield runs


def assert_one_message(row: Row, project: Path, result: subprocess.CompletedProcess) -> None:
    out = result.stdout + result.stderr
    shown = f"$ flows-tui {' '.join(row.args)}\n--- exit {result.returncode}\n{out}"
    assert result.returncode == row.exit, shown
    says = [filled(fragment) for fragment in row.says]
    where = location(row, project)
    lines = [line for line in out.splitlines() if line.strip()]
    message = [line for line in lines if says[0] in line]
    assert len(message) == 1, f"{says[0]!r} should be on exactly one line\n{shown}"
    for fragment in says:
        assert fragment in message[0], f"{fragment!r} missing from the message\n{shown}"

    tracebacks = out.count("Traceback (most recent call last)")
    if row.exit == 1:
        # The user's own traceback, once, and only the user's frames in it.
        assert tracebacks == 1, shown
        frames = re.findall(r'File "([^"]+)", line (\d+)', out)
        # Paths inside the project are shown relative to it (the command ran there).
        assert frames and all((project / file).resolve().is_relative_to(project.resolve()) for file, _ in frames), shown
        file, line = where.split(":")
        assert any(Path(f).name == file and int(n) == int(line) for f, n in frames), shown
    else:
        assert tracebacks == 0, shown
        if where is not None:
            assert where in message[0], f"{where!r} missing from the message\n{shown}"
    if row.exit == 2:
        # Nothing but the message (and check's count of problems).
        others = [line for line in lines if line != message[0] and line.strip() != "✗ 1 problem"]
        assert others == [], shown
        assert result.stdout == "" or row.args[:1] == ("check",), shown
    if row.warning:
        warned = [line for line in lines if row.warning[0] in line]
        assert len(warned) == 1 and all(fragment in warned[0] for fragment in row.warning), shown


def test_one_check_reports_every_row_at_once(tmp_path: Path, figures) -> None:
    rows = [row for row in TABLE if row.check]
    project = make_project(tmp_path, rows)
    result = cli("check", cwd=project, timeout=60)
    problems = result.stdout.splitlines()
    shown = f"$ flows-tui check\n--- exit {result.returncode}\n{result.stdout}{result.stderr}"
    assert result.returncode == 2 and "Traceback" not in result.stderr, shown
    assert len(problems) == len(rows) and result.stderr.strip() == f"✗ {len(rows)} problems", shown
    for row in rows:
        where = location(row, project)
        found = [p for p in problems if where in p and all(filled(s) in p for s in row.says)]
        assert len(found) == 1, f"row {row.id!r} ({where}) should be exactly one problem\n{shown}"
    figures.add("one `check`", f"{len(problems)} problems reported for {len(rows)} bad inputs, each once with its line")


# The UI faces the same rows ---------------------------------------------------------------------------

UI_ALIVE: dict[str, bool] = {}  # row id → the UI showed it and kept answering keys


def app_for(project: Path, **options):
    from flows_tui.tui.app import FlowsApp

    app = tui_app_for(project, **options)
    app.said = []  # every notification, as (title, message): toasts come and go

    def notify(message, *args, **kwargs):
        app.said.append((kwargs.get("title"), str(message)))
        return FlowsApp.notify(app, message, *args, **kwargs)

    app.notify = notify
    return app


async def wait_for(pilot, condition, message: str) -> None:
    await tui_wait_for(pilot, condition, timeout=15.0, message=message)


def error_rows(app) -> dict[str, object]:
    """The ✗ rows of the flows pane, by the "file:line" they name."""
    from flows_tui.tui.flow_list import FlowList

    rows = app.query_one(FlowList).rows_by_key.values()
    return {f"{row.file}:{row.error.line}" if row.error.line else row.file: row for row in rows if row.error}


async def assert_alive(pilot, app) -> None:
    """Still answering keys: `?` opens the help, escape closes it."""
    from flows_tui.tui.screens import HelpScreen

    await pilot.press("question_mark")
    await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "? to open the help")
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen), "escape to close the help")
    assert app.is_running


async def open_error(pilot, app, key: str) -> tuple[str, str]:
    """Enter on a ✗ row: the title and text of the screen it opens (closed again with escape)."""
    from flows_tui.tui.screens import TextScreen

    select(app, key)
    app.query_one("#flows").focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, TextScreen), "enter to open the error")
    title, body = app.screen.title_text, app.screen.body
    await pilot.press("escape")
    await wait_for(pilot, lambda: not isinstance(app.screen, TextScreen), "escape to close the error")
    return title, body


async def test_the_ui_shows_each_broken_flow_file_with_its_line(tmp_path: Path) -> None:
    rows = [row for row in TABLE if row.ui and row.files]
    app = app_for(make_project(tmp_path, rows), connect_cluster=False, watch=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(error_rows(app)) == len(rows), f"{len(rows)} ✗ rows")
        for row in rows:
            shown = error_rows(app)
            assert row.where in shown, (row.id, list(shown))
            assert row.says[0] in shown[row.where].error.reason, row.id  # the list says what, enter says where
            title, body = await open_error(pilot, app, shown[row.where].key)
            assert title.startswith(f"{row.where}: ") and all(s in title + body for s in row.says), (row.id, title)
        assert "good" in app.directory.flows  # the good flows load beside them
        await assert_alive(pilot, app)
        UI_ALIVE.update((row.id, True) for row in rows)


async def test_the_ui_shows_a_bad_flows_toml_saved_while_it_runs_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    rows = [row for row in TABLE if row.ui and row.toml]
    project = make_project(tmp_path, [])
    good_toml = (project / "flows.toml").read_text() + '\n[flows.good]\ninterval = "1h"\n'
    (project / "flows.toml").write_text(good_toml)
    app = app_for(project, connect_cluster=False, watch=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "good" in app.directory.flows, "the flows")
        for row in rows:
            (project / "flows.toml").write_text(good_toml + "\n" + filled(textwrap.dedent(row.toml)))
            where = location(row, project)
            await wait_for(pilot, lambda: any(row.says[0] in message for _, message in app.said), f"{row.id} shown")
            said = [message for _, message in app.said if row.says[0] in message]
            assert len(said) == 1 and re.match(rf"(.*/)?{re.escape(where)}: ", said[0]), (row.id, said)
            shown = error_rows(app)
            assert where in shown and row.says[0] in shown[where].error.reason, (row.id, list(shown))
            title, _ = await open_error(pilot, app, shown[where].key)
            assert title.startswith(where + ": ") and all(s in title for s in row.says), (row.id, title)
            assert app.config.flows["good"].interval is not None  # the last good flows.toml stays
        await assert_alive(pilot, app)
        (project / "flows.toml").write_text(good_toml)  # fixed: the ✗ row goes
        await wait_for(pilot, lambda: not any(key.startswith("flows.toml") for key in error_rows(app)), "the fix")
        assert any("flows.toml reloaded (fixed)" in message for _, message in app.said)
        UI_ALIVE.update((row.id, True) for row in rows)


async def test_the_parameter_form_shows_bad_values_under_their_fields(tmp_path: Path) -> None:
    from flows_tui.tui.param_form import ParamForm

    # A value typed into the form, as `-p` gives it on the command line (rows with "-p"), or none.
    cases = [(next(row for row in TABLE if row.id == "parameter of the wrong type"), "good", {"n": "abc"}, "n",
              "expected an integer"),
             (next(row for row in TABLE if row.id == "missing required parameter"), "needs", {}, "rows", "required")]
    app = app_for(make_project(tmp_path, []), connect_cluster=False, watch=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "needs" in app.directory.flows, "the flows")
        for row, flow, typed, field_name, says in cases:
            select(app, flow)
            await pilot.press("p")
            await wait_for(pilot, lambda: isinstance(app.screen, ParamForm), "p to open the form")
            form = app.screen
            for name, value in typed.items():
                form.query_one(f"#param-{name}").value = value
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, ParamForm), row.id  # not run: the form stays, the error under the field
            assert says in str(form.query_one(f"#error-{field_name}").render()), row.id
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, ParamForm), "escape to close the form")
        assert not app.engines  # nothing ran
        await assert_alive(pilot, app)
        UI_ALIVE.update((row.id, True) for row, *_ in cases)


async def test_the_ui_says_the_scheduler_is_unreachable_and_r_says_it_again(tmp_path: Path, monkeypatch) -> None:
    import flows_tui.project.cluster_config
    from flows_tui.tui.status_bar import StatusBar

    monkeypatch.setattr(flows_tui.project.cluster_config, "DEFAULT_CONNECT_TIMEOUT", 1)  # the table's row waits 10 s
    row = next(row for row in TABLE if row.id == "unreachable scheduler")
    row = dataclasses.replace(row, says=(row.says[0].replace("10 s", "1 s"),))
    address = f"tcp://127.0.0.1:{CLOSED_PORT}"
    app = app_for(make_project(tmp_path, []), address=address, watch=False)
    async with app.run_test(size=(120, 40)) as pilot:
        status = app.query_one(StatusBar)
        await wait_for(pilot, lambda: filled(row.says[0]) in str(status.cluster), "the status bar to say so")
        await wait_for(pilot, lambda: "good" in app.directory.flows, "the flows")
        select(app, "good")
        await pilot.press("r")  # not "still starting": the reason, and another try
        await wait_for(pilot, lambda: any(filled(row.says[0]) in m for _, m in app.said), "r to say why not")
        assert not app.engines
        await assert_alive(pilot, app)
        await wait_for(pilot, lambda: filled(row.says[0]) in str(status.cluster), "the second try to fail too")
        UI_ALIVE[row.id] = True


@pytest.mark.parametrize("row", TABLE, ids=[row.id for row in TABLE])
def test_bad_input(row: Row, outcomes) -> None:
    project, result, _ = outcomes[row]
    assert_one_message(row, project, result)


def test_the_table_in_figures(outcomes, figures) -> None:
    """Last in the file: the whole table in one figure (the UI tests above have run)."""
    done = [outcomes[row] for row in TABLE]
    ok = 0
    for row, (project, result, _) in zip(TABLE, done):
        try:
            assert_one_message(row, project, result)
            ok += 1
        except AssertionError:
            pass
    slowest = max(seconds for _, _, seconds in done)
    ui_rows = [row.id for row in TABLE if row.ui]
    alive = sum(UI_ALIVE.get(row_id, False) for row_id in ui_rows)
    figures.add("bad inputs tried", f"{len(TABLE)} rows: {ok} one message, right exit code "
                                    f"(slowest {slowest:.1f} s); {len(ui_rows)} in the UI: {alive} shown, UI alive")
    assert ok == len(TABLE), "every row gives one message and the right exit code (see the row's own test)"
