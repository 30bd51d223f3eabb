"""The logs pane's kept lines: shown, searched with `/`, filtered by level with `v`, and held so the
garbage collector's full passes do not scan them (a watching UI must not stall while a run logs)."""

from __future__ import annotations

import datetime as dt
import gc

from flows_tui.record import events as ev
from flows_tui.tui.log_view import Line, LogView
from test_tui import app_for, flow_keys, make_project, wait_for

START = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.timezone.utc)


def lines(count: int, first_id: int = 1) -> list[Line]:
    made = [Line("r1", f"load-{n % 7}", "load", ev.LogLine(START + dt.timedelta(milliseconds=n), 20, f"row batch {n}",
                                                          f"t{n % 7}", 1, "flows_tui", first_id + n))
            for n in range(count)]
    made.append(Line("r1", "check-0", "check", ev.LogLine(START + dt.timedelta(seconds=60), 30, "disk nearly full",
                                                         "c0", 1, "flows_tui", first_id + count)))
    made.append(Line("r1", "check-0", "check", ev.LogLine(START + dt.timedelta(seconds=61), 40, "check failed",
                                                         "c0", 1, "flows_tui", first_id + count + 1)))
    return made


async def test_the_logs_pane_shows_searches_and_filters_its_lines_by_level(tmp_path):
    app = app_for(make_project(tmp_path), connect_cluster=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.loaded.is_set() and len(flow_keys(app)) == 3, message="the flows")
        await pilot.pause()
        logs = app.query_one(LogView)
        logs.show_run("r1", lines(100)[:50], title="load · r1")
        logs.add(lines(100)[50:])
        await pilot.pause()
        shown = logs.shown_lines()
        assert len(shown) == 102 and "load-0: row batch 0" in shown[0] and "check-0: check failed" in shown[-1]
        assert [line.line.message for line in logs.kept("r1")][-2:] == ["disk nearly full", "check failed"]

        logs.output.focus()
        await pilot.press("slash", *"batch 9", "enter")
        await wait_for(pilot, lambda: len(logs.shown_lines()) == 11, message="the search")  # 9, 90..99
        assert all("row batch 9" in text for text in logs.shown_lines())
        await pilot.press("slash", "escape")
        await wait_for(pilot, lambda: len(logs.shown_lines()) == 102, message="the search cleared")

        await pilot.press("v", "v")  # DEBUG → INFO → WARNING
        await wait_for(pilot, lambda: len(logs.shown_lines()) == 2, message="the level filter")
        assert "WARN check-0: disk nearly full" in logs.shown_lines()[0]
        assert "ERRO check-0: check failed" in logs.shown_lines()[1]
        # A line that came in while filtered shows only if it passes the filter.
        logs.add([Line("r1", "load-1", "load", ev.LogLine(START + dt.timedelta(seconds=62), 20, "late info")),
                  Line("r1", "load-1", "load", ev.LogLine(START + dt.timedelta(seconds=63), 30, "late warning"))])
        await pilot.pause()
        assert [text.split(": ", 1)[1] for text in logs.shown_lines()][-1:] == ["late warning"]
        assert len(logs.shown_lines()) == 3

        # Many lines kept: what a full collection scans barely grows (as objects it grew by two a line).
        await pilot.pause()
        gc.collect()
        before = len(gc.get_objects())
        logs.add(lines(5_000, first_id=1_000))
        gc.collect()
        assert len(logs.rows) == 5_000 + 104 + 2
        assert len(gc.get_objects()) - before < 500


async def test_full_collections_wait_for_the_ui_to_be_idle_and_still_come(tmp_path, monkeypatch):
    import flows_tui.tui.app as app_module

    monkeypatch.setattr(app_module, "FULL_COLLECTION_EVERY", 0.0)  # as soon as the UI is idle
    full: list[int] = []

    def counted(phase: str, info: dict) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(0)

    before = gc.get_threshold()
    app = app_for(make_project(tmp_path), connect_cluster=False)
    gc.callbacks.append(counted)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: app.loaded.is_set(), message="the flows")
            assert gc.get_threshold()[2] >= 1_000_000  # Python's own never come while the UI runs
            full.clear()
            await wait_for(pilot, lambda: full, message="a full collection once idle")
        assert gc.get_threshold() == before
    finally:
        gc.callbacks.remove(counted)
