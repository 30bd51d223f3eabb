"""The UI as a new user meets it: what it says when something is off, what the keys do at once."""

from __future__ import annotations

from flows_tui.tui.status_bar import StatusBar
from test_tui import app_for, flow_keys, make_project, toasts, wait_for


async def test_a_notifier_without_its_secret_is_named_once_and_shown_in_the_status_bar(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOWS_TUI_TEST_SLACK", raising=False)
    project = make_project(tmp_path)
    with (project / "flows.toml").open("a") as config:
        config.write('[notify.slack]\nwebhook_url = "${FLOWS_TUI_TEST_SLACK}"\n')
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await wait_for(pilot, lambda: "FLOWS_TUI_TEST_SLACK" in toasts(app), message="the warning")
        assert "the slack notifier is off" in toasts(app)
        status = str(app.query_one(StatusBar).render())
        assert "slack off: FLOWS_TUI_TEST_SLACK unset" in status


def _palette_entries(app) -> list[str]:
    from textual.command import CommandList

    options = app.screen.query_one(CommandList)
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


async def test_the_palette_lists_the_apps_commands_before_typing_and_run_name_runs_the_flow(tmp_path):
    from textual.command import CommandPalette

    from flows_tui.tui.flow_list import FlowList

    project = make_project(tmp_path)
    app = app_for(project)
    async with app.run_test(size=(120, 40)) as pilot:
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3, message="the flows")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), message="the palette")
        await wait_for(pilot, lambda: any("Run the selected flow" in entry for entry in _palette_entries(app)),
                       message="the app's commands with an empty query")
        assert any("run numbers" in entry for entry in _palette_entries(app))
        await pilot.press(*"run sleepy")
        await wait_for(pilot, lambda: _palette_entries(app) and "run sleepy" in _palette_entries(app)[0],
                       message="run sleepy first")
        (tmp_path / "stop").touch()  # the sleepy flow then ends at once
        await pilot.press("enter")
        await wait_for(pilot, lambda: flows.last_states.get("sleepy") == "Completed", message="the palette's run")


async def test_the_flows_filter_follows_each_key_shows_in_the_title_and_esc_in_the_pane_clears_it(tmp_path):
    from flows_tui.tui.flow_list import FlowList

    app = app_for(make_project(tmp_path), connect_cluster=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3, message="the flows")
        await pilot.press("slash", "s", "l")
        await wait_for(pilot, lambda: flow_keys(app) == ["sleepy"], message="the list to follow the keys (no enter)")
        await pilot.press("e")
        assert "/sle" in str(app.query_one("#flows").border_title)
        await pilot.press("enter")  # keeps the filter, back in the list
        assert app.query_one(FlowList).has_focus and flow_keys(app) == ["sleepy"]
        await pilot.press("escape")  # in the pane: clears it
        await wait_for(pilot, lambda: len(flow_keys(app)) == 3, message="the filter cleared")
        assert "/" not in str(app.query_one("#flows").border_title).replace("flows · ", "")
