"""The UI under load, driven with Textual's Pilot on a real LocalCluster, real files and the real store.

A 10,000-task run (1,000 at the reduced size) started with `r`: while it reports, keys that change what is on screen
(flows cursor and the plan/run it shows, pane focus, a mapped group expanded, zoom) each
take effect while the run is still in progress; afterwards the store holds every task
run's history and the UI says 10000/10000. A reload storm: one flow file saved 100 times
a second, broken versions mixed in, with keys pressed throughout; the last version wins,
no error is left behind, and `r` runs the last version.

Keys are posted as the terminal driver posts them and timed until their effect is visible
in the widgets (the wait behind whatever the app was doing, plus the key's handler): the
latencies are figures, not assertions.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from textual.events import Key

from flows_tui.record import events as ev
from flows_tui.project.config import load_config
from flows_tui.project.flows_directory import FlowsReloaded
from flows_tui.record.model import RunModel
from flows_tui.launch.runner import recording
from flows_tui.states import COMPLETED, FINAL_STATES, PENDING, RUNNING, now
from flows_tui.record.store import Store
from flows_tui.tui.app import FlowsApp
from flows_tui.tui.flow_list import FlowList
from flows_tui.tui.log_view import LogView
from flows_tui.tui.run_history import RunHistory
from flows_tui.tui.task_tree import CHUNK, TaskTree

from conftest import PROCESS_CLUSTER_TOML, write_project
from test_tui import tree_labels
from test_tui import wait_for as tui_wait_for

from .conftest import sized

TASKS = sized(10_000, 1_000)
# At the reduced size each task sleeps 10 ms, so the run still lasts long enough (~5 s on two
# worker processes, however loaded the machine) for whole cycles of keys while it reports.
PAUSE = sized(0, 0.01)
SAVES_PER_SECOND = 100
STORM_SECONDS = sized(5, 2)

# The embedded cluster as users get it by default: worker processes (the scheduler, the client
# and the UI share this process).
TOML = PROCESS_CLUSTER_TOML

WIDE = """
    from flows_tui import flow, task

    import time

    @task
    def tiny(x):
        time.sleep({pause})
        return x + 1

    @flow
    def wide(n: int = {tasks}):
        tiny.map(range(n)).wait()  # the body needs no values: the run's reports are the load
"""

OTHER = """
    from flows_tui import flow, task

    @task
    def hello():
        return "hello"

    @flow
    def other():
        return hello()
"""

# Version i of the stormed file: its parameter default, docstring and map count all say i.
STORM = '''from flows_tui import flow, task


@task
def tiny(x):
    return x + 1


@flow
def storm(version: int = {i}):
    """storm version {i}"""
    return sum(tiny.map(range({i})).result()) and version
'''
BROKEN_SYNTAX = STORM.replace("def storm(", "def storm(:")  # a save in the middle of typing
BROKEN_IMPORT = STORM.replace("@task\n", "raise RuntimeError('half-written version {i}')\n@task\n", 1)
BROKEN_RUN = 30  # saves in a row of each broken stretch: 0.3 s, several reloads' worth
KEYCHARS = {"tab": "\t", "shift+tab": None, "space": " "}


@pytest.fixture(autouse=True)
def resource_tracker_started():
    """As run_app does: worker processes need multiprocessing's resource tracker, started on our
    real stderr before Textual's test driver replaces sys.stderr."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


async def wait_for(pilot, condition: Callable[[], Any], timeout: float = 60.0, message: str = "the UI") -> None:
    await tui_wait_for(pilot, condition, timeout, message)


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (f"median {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms ({len(ordered)} presses)")


@dataclass
class Step:
    key: str | Callable[[dict], str | None]  # or chosen from the snapshot (None: nothing to press)
    took_effect: Callable[[dict], bool]  # given the snapshot taken just before the press
    what: str


class Keys:
    """Presses keys as the terminal driver posts them; times each until its effect is visible."""

    def __init__(self, app: FlowsApp, snapshot: Callable[[], dict]) -> None:
        self.app = app
        self.snapshot = snapshot
        self.latencies: list[float] = []

    async def press(self, step: Step, timeout: float = 30.0) -> bool:
        """Press the step's key and wait for its effect; False if the step had nothing to press."""
        before = self.snapshot()
        key = step.key(before) if callable(step.key) else step.key
        if key is None:
            return False
        began = time.perf_counter()
        self.app.post_message(Key(key, KEYCHARS.get(key, key)))
        while not step.took_effect(before):
            if time.perf_counter() - began > timeout:
                raise AssertionError(f"{key!r} ({step.what}) had no effect within {timeout:g}s "
                                     f"(focused: {self.app.focused}, before: {before}, now: {self.snapshot()})")
            await asyncio.sleep(0.002)
        self.latencies.append(time.perf_counter() - began)
        await asyncio.sleep(0.03)  # a person's pace between keys, not a synchronisation
        return True


def flow_row(app: FlowsApp, name: str) -> int:
    return app.query_one(FlowList).get_row_index(name)


# 1. A 10,000-task run (1,000 at the reduced size) -----------------------------------------------

@pytest.mark.timeout(300)
async def test_ten_thousand_task_run_is_stored_whole_while_keys_keep_working(tmp_path: Path, figures):
    project = write_project(tmp_path, {"wide.py": WIDE.format(tasks=TASKS, pause=PAUSE), "other.py": OTHER}, toml=TOML)
    config = load_config(None, cwd=project)
    bus = ev.EventBus()
    with recording(bus, config) as store:  # as run_app does: every run the UI starts is stored
        app = FlowsApp(config, bus=bus, store=store)
        async with app.run_test(size=(120, 40)) as pilot:
            flows, runs, tree, logs = (app.query_one(FlowList), app.query_one(RunHistory), app.query_one(TaskTree),
                                       app.query_one(LogView))
            await wait_for(pilot, lambda: {"wide", "other"} <= set(flows.rows_by_key), message="the flows")
            app._ensure_cluster()  # worker processes start with a first run: here before it, not timed with it
            await wait_for(pilot, lambda: app.cluster is not None, timeout=60, message="the cluster")
            flows.focus()
            flows.move_cursor(row=flow_row(app, "wide"))
            await pilot.pause()
            started = time.monotonic()
            await Keys(app, dict).press(Step("r", lambda b: app.shown_run in app.engines, "run the flow"))
            run_id = app.shown_run
            # "other" is next to "wide": the key that moves there, and the one that comes back.
            away, back = ("j", "k") if flow_row(app, "other") > flow_row(app, "wide") else ("k", "j")

            def group() -> Any:
                return tree._groups.get("tiny")

            def snapshot() -> dict:
                node = tree.cursor_node
                return {"row": flows.cursor_row, "focused": app.focused, "line": tree.cursor_line,
                        "expanded": node.is_expanded if node is not None else None,
                        "node": node.data if node is not None else None,
                        "children": len(group().children) if group() is not None else None,
                        "shown": dict(tree._shown), "state": tree.flow_run.state if tree.flow_run else None}

            def in_progress() -> bool:
                return run_id in app.engines and flows.last_states.get("wide") in (None, RUNNING)  # ▶ Running while it runs

            cycle = [
                Step(away, lambda b: flows.cursor_row == flow_row(app, "other")
                     and str(tree.root.label).startswith("other  planned"), "another flow and its plan"),
                Step(back, lambda b: flows.cursor_row == flow_row(app, "wide") and tree.flow_run is not None
                     and tree.flow_run.run_id == run_id, "back to the flow: its run, live"),
                Step("tab", lambda b: app.focused is runs, "focus the runs pane"),
                Step("tab", lambda b: app.focused is tree, "focus the task tree"),
                # Tree rows: the run (0), the mapped task (1). The cursor keeps its line across redraws.
                Step(lambda b: "j" if b["line"] == 0 else "g", lambda b: tree.cursor_line != b["line"],
                     "tree cursor moves"),
                Step(lambda b: "j" if b["line"] == 0 else None, lambda b: tree.cursor_line == 1,
                     "tree cursor down to the mapped task"),
                Step("space", lambda b: tree.cursor_node is group() is not None and group().is_expanded
                     and len(group().children) > 0, "expand the mapped task: its first children"),
                Step("z", lambda b: app.has_class("zoomed") and not flows.display and tree.display, "zoom the tree"),
                Step("z", lambda b: not app.has_class("zoomed") and flows.display, "all panes again"),
                Step("l", lambda b: app.focused is logs.output, "focus the logs"),
                Step("shift+tab", lambda b: app.focused is tree, "back to the tree"),
                Step("shift+tab", lambda b: app.focused is runs, "back to the runs"),
                Step("shift+tab", lambda b: app.focused is flows, "back to the flows"),
            ]
            keys = Keys(app, snapshot)
            await wait_for(pilot, lambda: group() is not None, message="the mapped task's row")
            during = 0  # presses that took effect while the run was still in progress
            cycles = 0
            while in_progress():
                for step in cycle:
                    if not in_progress():
                        break  # the run ended mid-cycle: keys from here on prove nothing about it
                    if await keys.press(step):
                        during += in_progress()
                cycles += 1
            await wait_for(pilot, lambda: flows.last_states.get("wide") in FINAL_STATES, timeout=240,
                           message="the run to end")
            took = time.monotonic() - started
            ended = app.bridge.model.runs.get(run_id)
            assert flows.last_states["wide"] == COMPLETED, (
                f"the run ended {flows.last_states['wide']}: {ended.error if ended else '?'}; "
                f"tasks {ended.counts() if ended else '?'}")
            # Where the last cycle stopped: back on the run, its mapped task expanded.
            if flows.cursor_row != flow_row(app, "wide"):
                flows.focus()
                flows.move_cursor(row=flow_row(app, "wide"))
            await wait_for(pilot, lambda: tree.flow_run is not None and tree.flow_run.run_id == run_id
                           and group() is not None, message="the run's tree again")
            if not group().is_expanded:
                group().expand()
            await wait_for(pilot, lambda: len(group().children) == CHUNK + 1, message="the mapped task's first rows")
            # The tree shares the model's run object, whose state changes before the tree draws it:
            # wait for what is drawn (the root's label), not for the model.
            await wait_for(pilot, lambda: tree.flow_run is not None and tree.flow_run.state == COMPLETED
                           and str(tree.root.label).startswith("✓ Completed")
                           and f"{TASKS}/{TASKS}" in str(group().label), message="the tree to say all done")
            root, label = str(tree.root.label), str(group().label)
            assert root.startswith("✓ Completed  wide") and run_id in root
            assert label.startswith(f"✓ tiny  {TASKS}/{TASKS}  ✓ {TASKS}"), label
            children = group().children  # expanded by the last cycle: a chunk of rows, then the rest behind "more"
            assert group().is_expanded and len(children) == CHUNK + 1, len(children)
            assert str(children[-1].label) == f"… {TASKS - CHUNK} more (enter)"
            assert all(str(child.label).startswith("✓ Completed  tiny-") for child in children[:-1])
            # Presses took effect mid-run, over whole cycles (a frozen UI fails the press at its deadline).
            assert cycles >= 1 and during >= len(cycle), (cycles, during)

    stored = Store.open(config.project.state_dir).load_run(run_id)
    assert stored.state == COMPLETED
    task_runs = list(stored.task_runs.values())
    assert len(task_runs) == TASKS
    assert sorted(t.map_index for t in task_runs) == list(range(TASKS))
    wrong = [t for t in task_runs if t.state != COMPLETED or [s for s, _ in t.history] != [PENDING, RUNNING, COMPLETED]
             or len(t.attempts) != 1 or t.attempts[0].state != COMPLETED]
    assert not wrong, f"{len(wrong)} task runs without Pending→Running→Completed and one attempt, e.g. {wrong[0]}"

    figures.add(f"{TASKS:,}-task run started with r, to Completed on screen", f"{took:.1f} s")
    figures.add("presses that took effect mid-run", f"{during} ({cycles} cycles of {len(cycle)} keys)")
    figures.add(f"keypress → effect during the {TASKS:,}-task run", summary(keys.latencies))
    figures.add("stored", f"{len(task_runs):,} task runs, each Pending→Running→Completed, 1 attempt")


# 2. A reload storm ------------------------------------------------------------------------------

def storm_version(i: int, saves: int) -> str:
    """Version i of the stormed file; two stretches of broken saves mid-storm (never the last)."""
    if saves * 4 // 10 <= i < saves * 4 // 10 + BROKEN_RUN:
        return BROKEN_SYNTAX.format(i=i)
    if saves * 7 // 10 <= i < saves * 7 // 10 + BROKEN_RUN:
        return BROKEN_IMPORT.format(i=i)
    return STORM.format(i=i)


class Storm(threading.Thread):
    """Saves the file `rate` times a second for `seconds`, each save at its own due time."""

    def __init__(self, path: Path, rate: int, seconds: float) -> None:
        super().__init__(name="reload-storm", daemon=True)
        self.path = path
        self.rate = rate
        self.saves = int(rate * seconds)
        self.made = 0
        self.last_save = 0.0  # monotonic time the last save started
        self.stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        for i in range(1, self.saves + 1):
            due = started + i / self.rate
            if self.stop.wait(max(0.0, due - time.monotonic())):
                return
            self.last_save = time.monotonic()  # the save starts
            self.path.write_text(storm_version(i, self.saves))  # in place (truncate, write), as many editors save
            self.made = i


def version_of(listed: Any) -> int | None:
    """The default of the stormed flow's `version` parameter, as the UI lists it (read in the child
    that imported its file)."""
    if listed is None:
        return None
    return next(parameter["default"] for parameter in listed.parameters if parameter["name"] == "version")


class Reloads:
    """A subscriber of the app's flows directory: every reload of the stormed file."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.events = 0
        self.broken = 0  # reloads that found a broken version
        self.empty = 0  # reloads that read the file between its truncation and its write: no flows
        self.versions: list[tuple[float, int | None]] = []  # (when, version of storm loaded)
        self.directory: Any = None

    def __call__(self, event: FlowsReloaded) -> None:
        if self.path not in event.files_changed:
            return
        self.events += 1
        self.broken += any(Path(error.path) == self.path for error in event.failed)
        self.empty += "storm" in event.flows_removed
        self.versions.append((time.monotonic(), version_of(self.directory.flows.get("storm"))))


@pytest.mark.timeout(180)
async def test_reload_storm_keeps_the_ui_responsive_and_the_last_version_wins(tmp_path: Path, figures):
    path = tmp_path / "flows" / "storm.py"
    # first.py and other.py sort before storm.py: their rows stay put whatever the storm does.
    project = write_project(tmp_path, {"storm.py": STORM.format(i=0), "first.py": OTHER.replace("other", "first"),
                                       "other.py": OTHER}, toml=TOML)
    config = load_config(None, cwd=project)
    bus = ev.EventBus()
    with recording(bus, config) as store:
        app = FlowsApp(config, bus=bus, store=store)
        reloads = Reloads(path)
        reloads.directory = app.directory
        app.directory.subscribe(reloads)
        async with app.run_test(size=(120, 40)) as pilot:
            flows, runs, tree = app.query_one(FlowList), app.query_one(RunHistory), app.query_one(TaskTree)
            await wait_for(pilot, lambda: {"first", "other", "storm"} <= set(flows.rows_by_key)
                           and app.directory._watcher is not None, message="the flows and the watch")
            app._ensure_cluster()  # worker processes start with a first run: here before the storm
            await wait_for(pilot, lambda: app.cluster is not None, timeout=60, message="the cluster")
            await wait_for(pilot, lambda: app.directory._watcher._ready.is_set(), message="the watch")
            flows.focus()
            flows.move_cursor(row=flow_row(app, "first"))
            await pilot.pause()
            assert [flow_row(app, name) for name in ("first", "other", "storm")] == [0, 1, 2]

            def snapshot() -> dict:
                return {"row": flows.cursor_row, "focused": app.focused, "rows": list(flows.rows_by_key),
                        "plan": str(tree.root.label), "loaded": reloads.versions[-3:], "vanished": flows._vanished}

            def shows(name: str) -> Callable[[dict], bool]:
                return lambda b: (flows.current() is not None and flows.current().key == name
                                  and str(tree.root.label).startswith(f"{name}  planned"))

            # Each reload rebuilds the flows pane (and the plan on screen) under the keys.
            cycle = [
                Step("j", shows("other"), "down the flows pane: the plan of the flow there"),
                Step("k", shows("first"), "up the flows pane: the plan of the flow there"),
                Step("tab", lambda b: app.focused is runs, "focus the runs pane"),
                Step("z", lambda b: app.has_class("zoomed") and runs.display and not flows.display, "zoom the runs"),
                Step("z", lambda b: not app.has_class("zoomed") and flows.display, "all panes again"),
                Step("shift+tab", lambda b: app.focused is flows, "back to the flows"),
            ]
            keys = Keys(app, snapshot)
            storm = Storm(path, SAVES_PER_SECOND, STORM_SECONDS)
            last = storm.saves

            def listed_version() -> int | None:
                row = flows.rows_by_key.get("storm")
                return version_of(row.flow) if row is not None else None

            def shows_last() -> bool:  # the flows pane holds the last version, and no error row
                return (listed_version() == last and not app.directory.errors
                        and not any(key.startswith("error:") for key in flows.rows_by_key))

            async def watch_for_last() -> float:
                while not shows_last():
                    await asyncio.sleep(0.002)
                return time.monotonic()

            shown_at = asyncio.ensure_future(watch_for_last())
            storm.start()
            try:
                during = 0
                while storm.is_alive():
                    for step in cycle:
                        if await keys.press(step):
                            during += storm.is_alive()
            finally:
                storm.stop.set()
            assert storm.made == last
            storm_latencies = list(keys.latencies)
            try:
                shown = await asyncio.wait_for(shown_at, 30)
            except asyncio.TimeoutError:
                raise AssertionError(f"the last version ({last}) is not shown: loaded {reloads.versions[-3:]}, listed "
                                     f"{listed_version()}, errors {[e.reason for e in app.directory.errors]}, "
                                     f"rows {list(flows.rows_by_key)}") from None
            loaded = next(when for when, version in reloads.versions if version == last)
            assert reloads.versions[-1][1] == last  # nothing older came after it
            assert reloads.broken >= 1  # the broken stretches were seen (and are gone, above)
            await keys.press(Step("G", lambda b: flows.current().key == "storm", "select the stormed flow"))
            await wait_for(pilot, lambda: str(tree.root.label).startswith("storm  planned")
                           and any(f"map ×{last}" in label for label in tree_labels(app)),
                           message=f"the plan of the last version (map ×{last})")

            await pilot.press("r")
            await wait_for(pilot, lambda: flows.last_states.get("storm") in FINAL_STATES, message="the run to end")
            run_id = app.shown_run
            ended = app.bridge.model.runs.get(run_id)
            assert flows.last_states["storm"] == COMPLETED, (
                f"the run of the last version ended {flows.last_states['storm']}: "
                f"{ended.error if ended else '?'}; tasks {ended.counts() if ended else '?'}")
            await wait_for(pilot, lambda: tree.flow_run is not None and tree.flow_run.state == COMPLETED
                           and tree._groups.get("tiny") is not None
                           and f"{last}/{last}" in str(tree._groups["tiny"].label), message="the run's tree")

    stored = Store.open(config.project.state_dir).load_run(run_id)
    assert stored.parameters == {"version": last}
    assert len(stored.task_runs) == last and stored.state == COMPLETED

    figures.add("saves", f"{storm.made} in {STORM_SECONDS} s ({SAVES_PER_SECOND}/s, {2 * BROKEN_RUN} of them broken)")
    figures.add("reloads of the stormed file", f"{reloads.events} ({reloads.broken} found a broken version, "
                                               f"{reloads.empty} found it half-written: empty)")
    figures.add("presses that took effect during the storm", during)
    figures.add("keypress → effect during the storm", summary(storm_latencies))
    figures.add("last save → reloaded", f"{(loaded - storm.last_save) * 1000:.0f} ms")
    figures.add("last save → shown in the flows pane", f"{(shown - storm.last_save) * 1000:.0f} ms")


# 3. A flow that vanishes for a moment -----------------------------------------------------------

async def test_a_flow_that_vanishes_for_a_moment_gets_the_cursor_back_unless_the_user_moved_it(tmp_path: Path):
    """What the storm does at random, step by step: an in-place save read between its truncation
    and its write lists the file without flows; the next reload brings them back."""
    path = tmp_path / "flows" / "storm.py"
    project = write_project(tmp_path, {"storm.py": STORM.format(i=7), "first.py": OTHER.replace("other", "first"),
                                       "other.py": OTHER}, toml=TOML)
    app = FlowsApp(load_config(None, cwd=project), connect_cluster=False)
    async with app.run_test(size=(120, 40)) as pilot:
        flows, tree = app.query_one(FlowList), app.query_one(TaskTree)
        await wait_for(pilot, lambda: {"first", "other", "storm"} <= set(flows.rows_by_key)
                       and app.directory._watcher is not None and app.directory._watcher._ready.is_set())
        flows.focus()
        await pilot.press("G")
        assert flows.current().key == "storm"
        for user_moves in (False, True):
            path.write_text("")
            await wait_for(pilot, lambda: "storm" not in flows.rows_by_key, message="the emptied file's reload")
            if user_moves:
                await pilot.press("j")
                assert flows.current().key == "other"
            path.write_text(STORM.format(i=8 + user_moves))
            await wait_for(pilot, lambda: "storm" in flows.rows_by_key, message="the written file's reload")
            await pilot.pause()
            expected = "other" if user_moves else "storm"
            assert flows.current().key == expected
            assert str(tree.root.label).startswith(f"{expected}  planned")
            if not user_moves:
                assert any("map ×8" in label for label in tree_labels(app))


# 4. A mapped task expanded while it is still being mapped ----------------------------------------

async def test_a_mapped_task_expanded_while_still_mapping_offers_the_rest_behind_more(tmp_path: Path):
    """What test 1 does at random when its first cycle comes early: the tree is fed events as a
    run reports them (the engine's own event types, folded by the RunModel as the UI's bridge does)."""
    project = write_project(tmp_path, {"other.py": OTHER}, toml=TOML)
    app = FlowsApp(load_config(None, cwd=project), connect_cluster=False, watch=False)
    async with app.run_test(size=(120, 40)) as pilot:
        tree = app.query_one(TaskTree)
        await wait_for(pilot, lambda: str(tree.root.label).startswith("other  planned"), message="the first plan")
        await pilot.pause()  # the flows pane's highlight messages are handled: nothing redraws the tree now
        model = RunModel()
        moment = now()
        model.apply(ev.FlowRunStarted("run-1", "wide", {}, moment))

        def create(start: int, stop: int) -> None:
            for index in range(start, stop):
                model.apply(ev.TaskRunCreated("run-1", f"tiny-{index}", "tiny", f"tiny-{index}", moment, index))
            tree.show_run(model.runs["run-1"], moment)

        create(0, 150)
        tree._groups["tiny"].expand()
        await wait_for(pilot, lambda: len(tree._groups["tiny"].children) == 150, message="the first 150 rows")
        create(150, 1000)
        children = tree._groups["tiny"].children
        assert len(children) == 151 and str(children[-1].label) == "… 850 more (enter)"
        tree.expand_group(children[-1])  # enter on "more"
        create(1000, 1001)
        children = tree._groups["tiny"].children
        assert len(children) == 150 + CHUNK + 1 and str(children[-1].label) == f"… {1001 - 150 - CHUNK} more (enter)"
