"""Makes docs/screenshot.svg with the app's own screenshot key (f12), as a user would.

    python docs/make_screenshot.py      # from the repository root

Opens the UI headless on the bundled sample_flows (flows.toml at the root), runs
taxi_tips, opens the `clean` group once the run ended, puts the cursor on `best`
(the logs follow it) and presses f12.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def main() -> None:
    from multiprocessing import resource_tracker

    from flows_tui.record import events as ev
    from flows_tui.project.config import load_config
    from flows_tui.launch.runner import recording
    from flows_tui.tui.app import FlowsApp
    from flows_tui.tui.flow_list import FlowList
    from flows_tui.tui.task_tree import TaskTree

    resource_tracker.ensure_running()
    os.chdir(ROOT)
    config = load_config(None, cwd=ROOT)
    bus = ev.EventBus()
    with recording(bus, config) as store:
        app = FlowsApp(config, bus=bus, store=store)
        async with app.run_test(size=(120, 36)) as pilot:
            deadline = time.monotonic() + 60
            flows = app.query_one(FlowList)
            while app.cluster is None or "taxi_tips" not in flows.rows_by_key:
                assert time.monotonic() < deadline, "the app did not start"
                await pilot.pause(0.1)
            flows.move_cursor(row=flows.get_row_index("taxi_tips"))
            await pilot.press("r")
            while flows.last_states.get("taxi_tips") in (None,) or app.engines:
                assert time.monotonic() < deadline + 60, "the run did not end"
                await pilot.pause(0.1)
            tree = app.query_one(TaskTree)
            tree.focus()
            clean = next(node for node in tree.root.children if node.data == ("group", "clean"))
            clean.expand()
            await pilot.pause(0.3)
            best = next(node for node in tree.root.children if node.data == ("group", "best"))
            tree.move_cursor(best)  # the logs pane follows it: each hour's best trip
            await pilot.pause(0.3)
            before = set(ROOT.glob("*.svg"))
            await pilot.press("f12")
            await pilot.pause(0.3)
            [made] = set(ROOT.glob("*.svg")) - before
            made.replace(ROOT / "docs" / "screenshot.svg")
    print("wrote docs/screenshot.svg")


if __name__ == "__main__":
    asyncio.run(main())
