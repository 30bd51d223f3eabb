"""The UI as a new user meets it: what it says when something is off, what the keys do at once."""

from __future__ import annotations

from flows_tui.tui.status_bar import StatusBar
from test_tui import app_for, make_project, toasts, wait_for


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
