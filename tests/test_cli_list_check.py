"""`flows-tui list` and `flows-tui check` as a user types them, and the schedule arithmetic behind them."""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import cli
from flows_tui.project.config import FlowConfig, parse_interval
from flows_tui.project.schedules import describe_schedule, next_run

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc

ETL = """
    import datetime
    import enum
    from flows_tui import flow, task

    print("etl.py imported")  # a chatty module must not break the JSON on stdout

    class Mode(enum.Enum):
        FAST = "fast"
        SAFE = "safe"

    @task
    def extract(path):
        return path

    @flow
    def hourly_etl(path: str = "data/trips.csv", limit: int = 10_000,
                   day: datetime.date = datetime.date(2024, 2, 29), mode: Mode = Mode.SAFE):
        return extract(path)

    @flow(name="every-five")
    def every_five(n: int):
        return n

    @flow(name="adhoc")
    def adhoc(rows: int, ratio: float = 0.5):
        return rows
"""

BROKEN = "from flows_tui import flow\n\n@flow\ndef oops(:\n    pass\n"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(tmp_path / "flows" / "etl.py", ETL)
    write(tmp_path / "flows.toml", """
        [project]
        flows_dir = "flows"

        [flows.hourly_etl]
        cron = "0 * * * *"
        timezone = "Europe/Berlin"
        parameters = { limit = 500 }

        [flows.every-five]
        interval = "5m"
        parameters = { n = 3 }

        [flows.adhoc]
        parameters = { ratio = 0.25 }   # rows comes from `run -p rows=...`
    """)
    return tmp_path


def list_json(project: Path) -> list[dict]:
    result = cli("list", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_list_json_has_specs_shape_with_defaults_schedules_and_next_runs(project):
    before = dt.datetime.now(UTC)
    lines = list_json(project)
    after = dt.datetime.now(UTC)
    by_name = {line["name"]: line for line in lines}
    assert list(by_name) == ["hourly-etl", "every-five", "adhoc"]  # definition order
    assert all(set(line) == {"name", "file", "function", "parameters", "schedule", "next_run", "error", "cache_size"}
               for line in lines)

    hourly = by_name["hourly-etl"]
    assert hourly["file"] == "flows/etl.py" and hourly["function"] == "hourly_etl" and hourly["error"] is None
    # Signature defaults as JSON (a date as ISO text, an Enum by value), flows.toml's values over them.
    assert hourly["parameters"] == {"path": "data/trips.csv", "limit": 500, "day": "2024-02-29", "mode": "safe"}
    assert hourly["schedule"] == "cron 0 * * * * (Europe/Berlin)"
    fires = dt.datetime.fromisoformat(hourly["next_run"])
    assert fires.utcoffset() == fires.astimezone(BERLIN).utcoffset()  # Berlin's offset at that instant
    assert (fires.minute, fires.second) == (0, 0)
    assert before < fires <= after + dt.timedelta(hours=1)

    five = by_name["every-five"]
    assert five["schedule"] == "every 5m" and five["parameters"] == {"n": 3}
    fires = dt.datetime.fromisoformat(five["next_run"])
    assert fires.utcoffset() is not None and fires.microsecond == 0
    # Never fired: due as soon as it is served, as `serve` and the UI then do.
    assert before - dt.timedelta(seconds=1) <= fires <= after + dt.timedelta(seconds=1)

    adhoc = by_name["adhoc"]
    assert adhoc["parameters"] == {"rows": None, "ratio": 0.25}  # rows has no default
    assert adhoc["schedule"] is None and adhoc["next_run"] is None


def test_list_says_when_serve_would_start_a_schedule_that_missed_runs_while_nothing_served(project):
    # serve fired hourly-etl two hours ago, then stopped. Started now, it skips what it missed
    # (catchup = "skip", the default) and fires at the next hour; `list` said "now".
    from flows_tui.record.store import Store

    now = dt.datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    store = Store.open(project / ".flows-tui")
    store.record_due("hourly-etl", hour - dt.timedelta(hours=2), "cron 0 * * * * (Europe/Berlin)")
    store.record_due("every-five", now - dt.timedelta(minutes=12), "every 5m")
    by_name = {line["name"]: line for line in list_json(project)}
    hourly = dt.datetime.fromisoformat(by_name["hourly-etl"]["next_run"])
    if now - hour > dt.timedelta(seconds=59):
        assert hourly == hour + dt.timedelta(hours=1)
    else:  # in the hour's first minute its own run is on time, not missed: it starts at once
        assert hourly <= dt.datetime.now(UTC) + dt.timedelta(seconds=1)
    fires = dt.datetime.fromisoformat(by_name["every-five"]["next_run"])
    assert now < fires <= now + dt.timedelta(minutes=5, seconds=1), fires  # the next on its 5-minute rhythm

    # Catching up instead: the missed run starts at once.
    text = (project / "flows.toml").read_text().replace('timezone = "Europe/Berlin"',
                                                         'timezone = "Europe/Berlin"\ncatchup = "once"')
    (project / "flows.toml").write_text(text)
    started = dt.datetime.now(UTC)
    by_name = {line["name"]: line for line in list_json(project)}
    fires = dt.datetime.fromisoformat(by_name["hourly-etl"]["next_run"])
    assert started - dt.timedelta(seconds=1) <= fires <= dt.datetime.now(UTC) + dt.timedelta(seconds=1), fires


def test_list_shows_a_broken_file_with_file_and_line_beside_the_flows_that_load(project):
    write(project / "flows" / "bad.py", BROKEN)
    lines = list_json(project)
    (broken,) = [line for line in lines if line["error"] is not None]
    assert broken["error"].startswith("flows/bad.py:4: SyntaxError")
    assert {**broken, "error": None} == {"name": None, "file": "flows/bad.py", "function": None, "parameters": {},
                                         "schedule": None, "next_run": None, "error": None, "cache_size": 0}
    assert {line["name"] for line in lines if line["error"] is None} == {"hourly-etl", "every-five", "adhoc"}

    result = cli("list", cwd=project, env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    rows = {line.split()[2]: line for line in result.stdout.splitlines() if "✓" in line or "✗" in line}
    assert "✗ error" in rows["-"] and "bad.py:4" in rows["-"] and "SyntaxError" in rows["-"]
    assert result.stdout.startswith("flows in flows")  # file names are relative to the flows directory
    assert "✓ ok" in rows["hourly-etl"] and "cron 0 * * * * (Europe/Berlin)" in rows["hourly-etl"]
    assert "limit=500" in rows["hourly-etl"] and "rows (required)" in rows["adhoc"]
    assert "every 5m" in rows["every-five"]


def test_list_marks_a_second_flow_of_one_name_naming_both_places(project):
    write(project / "flows" / "more.py", """
        from flows_tui import flow


        @flow(name="adhoc")
        def adhoc_again():
            pass
    """)
    lines = list_json(project)
    (second,) = [line for line in lines if line["function"] == "adhoc_again"]
    (first,) = [line for line in lines if line["function"] == "adhoc"]
    assert first["error"] is None
    assert second["name"] == "adhoc" and second["file"] == "flows/more.py"
    assert second["error"].startswith("flows/more.py:4: flow 'adhoc' is already defined at flows/etl.py:")

    result = cli("list", cwd=project, env={"COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    [row] = [line for line in result.stdout.splitlines() if "more.py" in line]
    assert "✗ error" in row and "adhoc" in row and "more.py:4" in row and "already defined" in row


def test_list_with_a_bad_flows_toml_exits_2_naming_the_line(project):
    write(project / "flows.toml", '[project]\nflows_dir = "flows"\n\n[flows.adhoc]\ncorn = "0 * * * *"\n')
    result = cli("list", "--json", cwd=project)
    assert result.returncode == 2
    assert "flows.toml:5" in result.stderr and "'corn'" in result.stderr and "'cron'" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_check_passes_a_good_project(project):
    # adhoc's required `rows` is in neither its signature defaults nor flows.toml: not scheduled,
    # it is given with `run -p`, so that is no problem.
    result = cli("check", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok: 3 flows in 1 file"


def test_check_reports_every_problem_with_file_and_line(project):
    write(project / "flows" / "bad.py", BROKEN)
    write(project / "flows" / "more.py", """
        from flows_tui import flow


        @flow(name="adhoc")
        def adhoc_again():
            pass
    """)
    write(project / "flows.toml", """
        [project]
        flows_dir = "flows"

        [flows.hourly_etl]
        cron = "0 * * * *"
        parameters = { limit = "lots" }

        [flows.hourly-etl-x]
        interval = "1h"

        [flows.every_five]
        interval = "5m"

        [flows.adhoc]
        parameters = { ratio = 0.25 }
    """)
    lines = (project / "flows.toml").read_text().splitlines()

    def line_of(fragment: str) -> int:
        return next(number for number, line in enumerate(lines, 1) if fragment in line)

    result = cli("check", cwd=project)
    assert result.returncode == 2
    problems = result.stdout.splitlines()
    assert all(re.match(r"^[^:\s]+:\d+: ", problem) for problem in problems), problems
    assert len(problems) == 5 and "5 problems" in result.stderr, problems

    def problem_at(where: str) -> str:
        found = [p for p in problems if p.startswith(where + ": ")]
        assert len(found) == 1, (where, problems)
        return found[0]

    assert "SyntaxError: invalid syntax" in problem_at("flows/bad.py:4")
    duplicate = problem_at("flows/more.py:4")
    assert "'adhoc'" in duplicate and "flows/etl.py:" in duplicate
    adhoc_line = next(n for n, l in enumerate((project / "flows/etl.py").read_text().splitlines(), 1)
                      if l.startswith('@flow(name="adhoc")'))
    assert f"flows/etl.py:{adhoc_line}" in duplicate
    unknown = problem_at(f"flows.toml:{line_of('[flows.hourly-etl-x]')}")
    assert "[flows.hourly-etl-x] names no discovered flow" in unknown and "did you mean [flows.hourly-etl]" in unknown
    wrong_type = problem_at(f"flows.toml:{line_of('limit = ')}")  # the value's own line
    assert "'limit'" in wrong_type and "expected an integer" in wrong_type and "'lots'" in wrong_type
    # A scheduled run gets its parameters from flows.toml alone, so a missing one is a problem there
    # (test_check_passes_a_good_project: unscheduled `adhoc` may leave `rows` to `run -p`).
    missing = problem_at(f"flows.toml:{line_of('[flows.every_five]')}")
    assert "'n'" in missing and "missing required parameter" in missing


def test_check_reports_a_bad_flows_toml_and_still_checks_the_flow_files(project):
    write(project / "flows" / "bad.py", BROKEN)
    write(project / "flows.toml", '[project]\nflows_dir = "flows"\n\n[cluster\nn_workers = 2\n')
    result = cli("check", cwd=project)
    assert result.returncode == 2
    problems = result.stdout.splitlines()
    assert problems[0].startswith("flows.toml:4: invalid TOML")
    assert problems[1].startswith("flows/bad.py:4: SyntaxError")
    assert len(problems) == 2 and "Traceback" not in result.stderr


def test_check_warns_of_a_notifier_whose_variable_is_unset_and_still_checks_the_flow_tables(project):
    with (project / "flows.toml").open("a") as config:
        config.write('\n[notify.slack]\nwebhook_url = "${FLOWS_TUI_TEST_UNSET_HOOK}"\n\n[flows.nightly]\ncron = "0 3 * * *"\n')
    result = cli("check", cwd=project)
    assert result.returncode == 2
    problems = result.stdout.splitlines()
    assert len(problems) == 1 and "[flows.nightly] names no discovered flow" in problems[0], problems
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "[notify.slack.webhook_url] environment variable FLOWS_TUI_TEST_UNSET_HOOK is not set" in warning

    assert cli("list", "--json", cwd=project).returncode == 0  # listing needs no secret


# Schedules, computed for chosen instants: no waiting for a clock ---------------------------------

def cron(expression: str, timezone: str | None = "Europe/Berlin") -> FlowConfig:
    return FlowConfig("f", cron=expression, timezone=timezone)


def fire_times(config: FlowConfig, start: dt.datetime, count: int) -> list[dt.datetime]:
    times = []
    for _ in range(count):
        start = next_run(config, start)
        times.append(start)
    return times


def test_describe_schedule_names_the_zone_and_the_interval():
    assert describe_schedule(cron("0 * * * *")) == "cron 0 * * * * (Europe/Berlin)"
    assert describe_schedule(cron("0 9 * * 1-5", None)) == "cron 0 9 * * 1-5 (UTC)"
    assert describe_schedule(FlowConfig("f", interval=parse_interval("5m"))) == "every 5m"
    assert describe_schedule(FlowConfig("f", interval=parse_interval("90m"))) == "every 1h30m"
    assert describe_schedule(FlowConfig("f", interval=parse_interval(45))) == "every 45s"
    assert describe_schedule(FlowConfig("f", parameters={"x": 1})) is None
    assert describe_schedule(None) is None


def test_a_daily_cron_in_the_skipped_spring_hour_fires_right_after_the_change():
    # 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that day.
    times = fire_times(cron("30 2 * * *"), dt.datetime(2026, 3, 28, 12, 0, tzinfo=UTC), 3)
    assert [t.isoformat() for t in times] == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]
    assert times[0].astimezone(UTC) == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    before = dt.datetime(2026, 3, 28, 2, 30, tzinfo=BERLIN)
    assert next_run(cron("30 2 * * *"), before - dt.timedelta(minutes=1)).isoformat() == "2026-03-28T02:30:00+01:00"


def test_an_hourly_cron_fires_every_real_hour_across_the_autumn_change():
    # 2026-10-25 in Berlin: 03:00 CEST goes back to 02:00 CET, so 02:00 happens twice.
    start = dt.datetime(2026, 10, 25, 0, 30, tzinfo=BERLIN)
    times = fire_times(cron("0 * * * *"), start, 4)
    assert [t.isoformat() for t in times] == [
        "2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]
    gaps = {later.astimezone(UTC) - earlier.astimezone(UTC) for earlier, later in zip(times, times[1:])}
    assert gaps == {dt.timedelta(hours=1)}


def test_a_daily_cron_in_the_repeated_autumn_hour_fires_once():
    times = fire_times(cron("30 2 * * *"), dt.datetime(2026, 10, 24, 12, 0, tzinfo=UTC), 2)
    assert [t.isoformat() for t in times] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    # Asked from inside the repeated hour (02:10 winter time, after the 02:30 summer-time run):
    inside = dt.datetime(2026, 10, 25, 1, 10, tzinfo=UTC)
    assert next_run(cron("30 2 * * *"), inside).isoformat() == "2026-10-26T02:30:00+01:00"


def test_a_cron_without_timezone_is_utc_and_an_interval_counts_from_now_in_whole_seconds():
    now = dt.datetime(2026, 3, 29, 0, 59, 30, 600_000, tzinfo=UTC)
    assert next_run(cron("0 9 * * *", None), now).isoformat() == "2026-03-29T09:00:00+00:00"
    every = FlowConfig("f", interval=parse_interval("5m"))
    assert next_run(every, now).isoformat() == "2026-03-29T01:04:31+00:00"
    in_berlin = FlowConfig("f", interval=parse_interval("1h"), timezone="Europe/Berlin")
    assert next_run(in_berlin, now).isoformat() == "2026-03-29T03:59:31+02:00"  # an hour later, across the change
    assert next_run(FlowConfig("f"), now) is None and next_run(None, now) is None
    with pytest.raises(ValueError):
        next_run(every, dt.datetime(2026, 3, 29, 1, 0))


# Writes down which process imported it, so that a test can tell ours never did.
MARKED = """
    import datetime, os, pathlib
    from flows_tui import flow
    from _shared import SHARED

    pathlib.Path(__file__).with_name(f"ran-{os.getpid()}").touch()

    @flow
    def marked(day: datetime.date = datetime.date(2024, 3, 1), n: int = 1, shared: str = SHARED):
        return n

    again = marked.with_options(name="marked-again")

    @flow
    def counted(n: int = 1):
        return n
"""


def test_list_and_check_read_each_file_in_the_child_importing_it_and_import_none_here(project, monkeypatch):
    """Each file is imported once, in a child; what list prints and check verifies comes from there."""
    import os
    import sys

    from click.testing import CliRunner

    from flows_tui.cli import main
    from flows_tui.project.flow_files import module_name_for

    write(project / "flows" / "marked.py", MARKED)
    write(project / "flows" / "_shared.py", "SHARED = 'from a helper'\n")
    with (project / "flows.toml").open("a") as toml:
        toml.write('\n[flows.marked]\nparameters = { day = 2024-03-02 }\n\n[flows.counted]\nparameters = { n = "many" }\n')
    monkeypatch.chdir(project)

    def imported_by() -> list[str]:
        ran = sorted(path.name for path in (project / "flows").glob("ran-*"))
        for path in (project / "flows").glob("ran-*"):
            path.unlink()
        return ran

    listed = CliRunner().invoke(main, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["name"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert rows["marked"]["parameters"] == {"day": "2024-03-02", "n": 1, "shared": "from a helper"}
    assert rows["counted"]["parameters"] == {"n": "many"}
    assert rows["marked-again"]["function"] == "marked" and rows["marked-again"]["error"] is None
    assert rows["hourly-etl"]["parameters"]["mode"] == "safe" and rows["every-five"]["schedule"]
    ran = imported_by()
    assert len(ran) == 1 and ran != [f"ran-{os.getpid()}"], ran  # once, in a child

    table = CliRunner().invoke(main, ["list"])
    assert table.exit_code == 0, table.output
    assert "counted" in table.stdout and 'n="many"' in table.stdout and "✗" not in table.stdout
    ran = imported_by()
    assert len(ran) == 1 and ran != [f"ran-{os.getpid()}"], ran

    checked = CliRunner().invoke(main, ["check"])
    assert checked.exit_code == 2, checked.output
    problems = [line for line in checked.stdout.splitlines() if line.startswith("flows.toml")]
    assert problems[0] == ("flows.toml:16: [flows.marked] matches more than one flow: 'marked' (flows/marked.py:7), "
                           "'marked-again' (flows/marked.py:7)"), problems
    assert problems[1:] == ["flows.toml:20: [flows.counted.parameters.n] flow 'counted', parameter 'n': expected an "
                            "integer, got 'many'"], problems
    ran = imported_by()
    assert len(ran) == 1 and ran != [f"ran-{os.getpid()}"], ran
    assert module_name_for(project / "flows" / "marked.py") not in sys.modules
    assert module_name_for(project / "flows" / "etl.py") not in sys.modules


@pytest.mark.parametrize("columns", [80, 100, 140])
def test_list_fits_the_terminal_and_keeps_each_parameter_whole(project, monkeypatch, columns):
    # At 80 columns the parameters had 12 and folded mid-name ("events_per_h / our=3000"); the file
    # now goes under the flow's name in a terminal under 110 columns.
    from click.testing import CliRunner

    from flows_tui.cli import main

    monkeypatch.chdir(project)
    result = CliRunner(env={"COLUMNS": str(columns), "NO_COLOR": "1"}).invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line.rstrip()) <= columns for line in lines), lines
    for shown in ('path="data/trips.csv"', "limit=500", 'day="2024-02-29"', 'mode="safe"', "etl.py"):
        assert shown in result.stdout, (shown, result.stdout)
