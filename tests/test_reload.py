"""Hot reload with real files and a real watcher: what a user sees when they save, break, fix,
rename or delete a flow file or a helper module beside it."""

from __future__ import annotations

import importlib.util
import os
import queue
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable

import cloudpickle
import pytest

from flows_tui.project.flows_directory import FlowsDirectory, FlowsReloaded
from flows_tui.project.flow_files import module_name_for

DEADLINE = 10.0  # seconds; a reload normally lands in tens of milliseconds

FLOW = """
    from flows_tui import flow, task

    @task
    def answer():
        return {value!r}

    @flow(name="{name}")
    def {function}():
        return answer()
"""


def flow_source(name: str = "answer", value: object = 1, function: str = "answer_flow") -> str:
    return FLOW.format(name=name, value=value, function=function)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


class Reloads:
    """Every event the directory publishes, and a way to wait for one with a deadline."""

    def __init__(self) -> None:
        self.events: list[FlowsReloaded] = []
        self._changed = threading.Condition()

    def __call__(self, event: FlowsReloaded) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def mark(self) -> int:
        with self._changed:
            return len(self.events)

    def since(self, mark: int) -> list[FlowsReloaded]:
        with self._changed:
            return self.events[mark:]

    def wait(self, condition: Callable[[FlowsReloaded], object], since: int, what: str) -> FlowsReloaded:
        """The first event after `since` for which `condition` holds (checked when each event arrives)."""
        matched: list[FlowsReloaded] = []

        def found() -> bool:
            matched.extend(e for e in self.events[since + len(matched):] if condition(e))
            return bool(matched)

        with self._changed:
            if not self._changed.wait_for(found, timeout=DEADLINE):
                raise AssertionError(f"no reload where {what} within {DEADLINE}s; saw {self.events[since:]}")
        return matched[0]


class Workspace:
    """A flows directory in tmp_path, loaded and watched as the UI would."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.directory = FlowsDirectory(folder)
        self.reloads = Reloads()
        self.directory.subscribe(self.reloads)
        self.mark = 0

    def start(self) -> "Workspace":
        self.directory.load()
        self.directory.watch()
        return self

    def about_to_change(self) -> None:
        """`wait` looks at the events from here on."""
        self.mark = self.reloads.mark()

    def save(self, name: str, text: str) -> Path:
        self.about_to_change()
        return write(self.folder / name, text)

    def wait(self, condition: Callable[[FlowsReloaded], object], what: str) -> FlowsReloaded:
        return self.reloads.wait(condition, self.mark, what)

    def value(self, flow: str) -> object:
        """What the flow's body returns today, calling its function directly (no cluster)."""
        found = self.directory.flows.get(flow)
        return None if found is None else found.fn()


@pytest.fixture
def workspace(tmp_path):
    space = Workspace(tmp_path / "flows")
    space.folder.mkdir()
    yield space
    space.directory.stop()


# Saving, adding, breaking, fixing -------------------------------------------------------------------

def test_a_new_file_adds_its_flows(workspace):
    workspace.save("first.py", flow_source("first"))
    workspace.start()
    assert list(workspace.directory.flows) == ["first"]

    path = workspace.save("second.py", flow_source("second", value=2))
    event = workspace.wait(lambda e: path in e.files_added, "second.py was added")
    assert event.flows_added == ("second",) and event.errors == ()
    assert workspace.value("second") == 2 and sorted(workspace.directory.flows) == ["first", "second"]


def test_an_edited_file_runs_its_new_code(workspace):
    path = workspace.save("answer.py", flow_source(value=1))
    workspace.start()
    assert workspace.value("answer") == 1

    workspace.save("answer.py", flow_source(value=2))
    event = workspace.wait(lambda e: path in e.files_changed and workspace.value("answer") == 2,
                           "answer.py returns 2")
    assert event.flows_changed == ("answer",) and event.flows_added == event.flows_removed == ()


@pytest.mark.parametrize("broken, error_type, line", [
    ("from flows_tui import flow\n\n@flow\ndef oops(:\n    pass\n", "SyntaxError", 4),
    ("import os\nfrom _no_such_helper import clean_row\n", "ModuleNotFoundError", 2),
    ("x = 1\n\n\nraise RuntimeError('no database here')\n", "RuntimeError", 4),
], ids=["syntax error", "import error", "exception at import"])
def test_a_broken_save_keeps_the_last_good_flows_and_exposes_the_error(workspace, broken, error_type, line):
    path = workspace.save("answer.py", flow_source(value=1))
    workspace.start()
    good = workspace.directory.flows["answer"]

    workspace.save("answer.py", broken)
    event = workspace.wait(lambda e: e.failed, "answer.py failed to load")
    (error,) = event.failed
    assert (error.error_type, error.path, error.line) == (error_type, str(path), line)
    assert error.reason.startswith(f"{error_type}: ")
    # The user's file and line, none of flows-tui's own frames (the loader's, the import system's).
    assert f'File "{path}", line {line}' in error.traceback and "reload.py" not in error.traceback
    assert "<frozen" not in error.traceback
    assert event.flows_removed == () and event.flows_changed == ()
    assert workspace.directory.flows["answer"] is good and workspace.value("answer") == 1
    (loaded,) = workspace.directory.files
    assert loaded.error is error and list(loaded.flows) == ["answer"]


def test_fixing_a_broken_file_clears_its_error(workspace):
    path = workspace.save("answer.py", flow_source(value=1))
    workspace.start()
    workspace.save("answer.py", "def oops(:\n")
    workspace.wait(lambda e: e.failed, "answer.py failed to load")

    workspace.save("answer.py", flow_source(value=3))
    event = workspace.wait(lambda e: e.fixed, "answer.py loads again")
    assert event.fixed == (path,) and event.errors == () and event.flows_changed == ("answer",)
    assert workspace.directory.errors == [] and workspace.value("answer") == 3


def test_an_atomic_save_through_a_temporary_file_is_reloaded(workspace):
    path = workspace.save("answer.py", flow_source(value=1))
    workspace.start()

    workspace.about_to_change()
    temporary = workspace.folder / ".answer.py.swp-1234"  # as editors do: write beside, rename over
    temporary.write_text(textwrap.dedent(flow_source(value=2)))
    os.replace(temporary, path)
    event = workspace.wait(lambda e: workspace.value("answer") == 2, "answer.py returns 2")
    assert path in event.files_changed and event.errors == ()
    assert all(temporary not in (*e.files_added, *e.files_changed) for e in workspace.reloads.events)


def test_a_deleted_file_takes_its_flows_with_it(workspace):
    path = workspace.save("answer.py", flow_source())
    workspace.save("other.py", flow_source("other"))
    workspace.start()

    workspace.about_to_change()
    path.unlink()
    event = workspace.wait(lambda e: path in e.files_removed, "answer.py was removed")
    assert event.flows_removed == ("answer",)
    assert list(workspace.directory.flows) == ["other"]
    assert module_name_for(path) not in sys.modules


def test_a_save_in_place_read_half_written_does_not_take_the_flows_away(workspace):
    # Editors that save in place truncate the file, then write it; a reload in between reads nothing.
    path = workspace.save("answer.py", flow_source(value=1))
    workspace.start()

    workspace.about_to_change()
    path.write_text("")  # truncated; the editor writes the new text 50 ms later
    writer = threading.Timer(0.05, write, (path, flow_source(value=2)))
    writer.start()
    workspace.directory.reload([path])  # read in between, as the watcher may
    writer.join()
    workspace.wait(lambda e: workspace.value("answer") == 2, "the new version")
    assert all("answer" not in e.flows_removed for e in workspace.reloads.since(workspace.mark))


def test_a_file_emptied_on_purpose_takes_its_flows_with_it(workspace):
    path = workspace.save("answer.py", flow_source())
    workspace.start()

    workspace.about_to_change()
    path.write_text("")
    event = workspace.wait(lambda e: "answer" in e.flows_removed, "the flow was removed")
    assert path not in event.files_removed and list(workspace.directory.flows) == []


def test_a_renamed_file_keeps_its_flows_under_its_new_name(workspace):
    path = workspace.save("answer.py", flow_source(value=5))
    workspace.start()

    workspace.about_to_change()
    renamed = path.rename(workspace.folder / "renamed.py")
    event = workspace.wait(lambda e: renamed in e.files_added and path in e.files_removed, "the rename was seen")
    assert event.flows_changed == ("answer",) and event.flows_removed == ()
    assert [loaded.path for loaded in workspace.directory.files] == [renamed] and workspace.value("answer") == 5
    assert module_name_for(path) not in sys.modules


def test_a_folder_deleted_or_renamed_as_a_whole_takes_its_files_along(workspace):
    nested = workspace.save("team/nested.py", flow_source("nested"))
    workspace.start()

    workspace.about_to_change()
    (workspace.folder / "team").rename(workspace.folder / "squad")
    moved = workspace.folder / "squad" / "nested.py"
    workspace.wait(lambda e: moved in e.files_added and nested in e.files_removed, "the folder rename was seen")
    assert workspace.value("nested") == 1

    workspace.about_to_change()
    shutil.rmtree(workspace.folder / "squad")
    event = workspace.wait(lambda e: moved in e.files_removed, "the folder's deletion was seen")
    assert event.flows_removed == ("nested",) and workspace.directory.flows == {}


def test_files_that_are_not_flow_files_or_sit_in_hidden_folders_are_ignored(workspace):
    workspace.save("answer.py", flow_source(value=1))
    workspace.start()

    workspace.save("notes.txt", "not python")
    workspace.save(".cache/stash.py", flow_source("hidden"))
    workspace.save("__pycache__/answer.py", flow_source("bytecode-folder"))
    path = workspace.save("answer.py", flow_source(value=2))
    workspace.mark = 0  # every event since the start
    workspace.wait(lambda e: workspace.value("answer") == 2, "answer.py returns 2")
    reloaded = {p for e in workspace.reloads.events for p in (*e.files_added, *e.files_changed)}
    assert reloaded == {path} and list(workspace.directory.flows) == ["answer"]


def test_a_single_flow_file_is_watched_without_its_neighbours(tmp_path):
    path = write(tmp_path / "answer.py", flow_source(value=1))
    directory = FlowsDirectory(path)
    reloads = Reloads()
    directory.subscribe(reloads)
    directory.load()
    directory.watch()
    try:
        mark = reloads.mark()
        write(tmp_path / "neighbour.py", flow_source("neighbour"))
        write(path, flow_source(value=2))
        reloads.wait(lambda e: directory.flows["answer"].fn() == 2, mark, "answer.py returns 2")
        assert list(directory.flows) == ["answer"]
        assert all(e.files_added == () for e in reloads.since(mark))
    finally:
        directory.stop()


# Helper modules ---------------------------------------------------------------------------------------

CLEAN = """
    def clean_row(row):
        return row.strip().{method}()
"""

USES_CLEAN_DIRECTLY = """
    from flows_tui import flow, task
    from _clean import clean_row

    @task
    def tidy(row):
        return clean_row(row)

    @flow
    def direct(row: str = " Ab "):
        return tidy(row)
"""

USES_CLEAN_THROUGH_STEPS = """
    from flows_tui import flow
    import _steps

    @flow
    def indirect(row: str = " Ab "):
        return _steps.prepare(row)
"""

STEPS = """
    from _clean import clean_row

    def prepare(row):
        return "<" + clean_row(row) + ">"
"""


def test_a_helper_change_reloads_every_flow_file_that_imports_it_directly_or_not(workspace):
    workspace.save("_clean.py", CLEAN.format(method="lower"))
    workspace.save("_steps.py", STEPS)
    direct = workspace.save("direct.py", USES_CLEAN_DIRECTLY)
    indirect = workspace.save("indirect.py", USES_CLEAN_THROUGH_STEPS)
    unrelated = workspace.save("unrelated.py", flow_source())
    workspace.start()
    assert (workspace.value("direct"), workspace.value("indirect")) == ("ab", "<ab>")
    tidy = workspace.directory.flows["direct"].fn.__globals__["tidy"]

    helper = workspace.save("_clean.py", CLEAN.format(method="upper"))
    event = workspace.wait(lambda e: helper in e.helpers_changed, "_clean.py changed")
    assert event.files_changed == (direct, indirect) and unrelated not in event.files_changed
    assert event.flows_changed == ("direct", "indirect") and event.errors == ()
    new_tidy = workspace.directory.flows["direct"].fn.__globals__["tidy"]
    assert new_tidy.fn(" Ab ") == "AB" and workspace.value("indirect") == "<AB>"
    assert tidy.fn(" Ab ") == "ab"  # the old task still runs the old helper


def test_a_change_inside_a_helper_package_reloads_the_flows_that_import_the_package(workspace):
    workspace.save("_lib/__init__.py", "from .text import shout\n")
    workspace.save("_lib/text.py", 'def shout(word):\n    return word + "!"\n')
    path = workspace.save("loud.py", """
        from flows_tui import flow
        from _lib import shout

        @flow
        def loud():
            return shout("hey")
    """)
    workspace.start()
    assert workspace.value("loud") == "hey!"

    module = workspace.save("_lib/text.py", 'def shout(word):\n    return word.upper() + "!"\n')
    event = workspace.wait(lambda e: module in e.helpers_changed, "_lib/text.py changed")
    assert event.files_changed == (path,) and workspace.value("loud") == "HEY!"


def test_a_reload_builds_fresh_modules_and_leaves_no_stale_ones_in_sys_modules(workspace):
    workspace.save("_clean.py", CLEAN.format(method="lower"))
    path = workspace.save("direct.py", USES_CLEAN_DIRECTLY)
    workspace.start()
    (before,) = workspace.directory.files
    old_helper = sys.modules["_clean"]

    helper = workspace.save("_clean.py", CLEAN.format(method="upper"))
    workspace.wait(lambda e: helper in e.helpers_changed, "_clean.py changed")
    (after,) = workspace.directory.files
    assert after.module is not before.module and sys.modules[module_name_for(path)] is after.module
    assert sys.modules["_clean"] is not old_helper and after.module.clean_row is sys.modules["_clean"].clean_row
    loaded_from = [name for name, module in list(sys.modules.items())
                   if getattr(module, "__file__", None) in (str(helper), str(path))]
    assert sorted(loaded_from) == sorted(["_clean", module_name_for(path)])  # one module per file, the new one
    assert old_helper.clean_row(" Ab ") == "ab"  # nothing edited the old module in place


def test_a_run_in_progress_keeps_the_code_it_started_with(workspace):
    workspace.save("_clean.py", CLEAN.format(method="lower"))
    path = workspace.save("direct.py", USES_CLEAN_DIRECTLY)
    workspace.start()
    running = workspace.directory.flows["direct"]  # what a run holds from its start to its end

    workspace.save("_clean.py", CLEAN.format(method="upper"))
    workspace.save("direct.py", USES_CLEAN_DIRECTLY.replace("return tidy(row)", 'return tidy(row) + "!"'))
    workspace.wait(lambda e: path in e.files_changed and workspace.value("direct") == "AB!", "direct.py is new")
    assert running.fn() == "ab" and running is not workspace.directory.flows["direct"]
    # Workers get the function by value, with the helper it calls: the old one, in any process.
    program = "import pickle, sys; print(pickle.loads(sys.stdin.buffer.read())(' Ab '))"
    shipped = subprocess.run([sys.executable, "-c", program], input=cloudpickle.dumps(running.fn),
                             capture_output=True, cwd="/", timeout=60)
    assert shipped.returncode == 0, shipped.stderr.decode()
    assert shipped.stdout.decode().strip() == "ab"


def test_a_helper_saved_again_in_the_same_second_with_the_same_size_is_not_read_from_old_bytecode(
        workspace, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as for most users: __pycache__ is written
    helper = workspace.save("_clean.py", CLEAN.format(method="lower"))
    workspace.save("direct.py", USES_CLEAN_DIRECTLY)
    one_second = int(time.time()) * 10**9
    os.utime(helper, ns=(one_second, one_second))
    workspace.directory.load()
    assert Path(importlib.util.cache_from_source(str(helper))).exists()

    workspace.save("_clean.py", CLEAN.format(method="upper"))  # "upper" and "lower": one size
    os.utime(helper, ns=(one_second, one_second))  # what __pycache__ compares: whole seconds and size
    workspace.directory.reload([helper])
    assert workspace.value("direct") == "AB"


def test_a_helper_created_after_the_error_it_caused_fixes_the_file(workspace):
    path = workspace.save("direct.py", USES_CLEAN_DIRECTLY)
    workspace.start()
    (error,) = workspace.directory.errors
    assert error.error_type == "ModuleNotFoundError" and error.line == 2

    workspace.save("_clean.py", CLEAN.format(method="lower"))
    event = workspace.wait(lambda e: e.fixed, "direct.py loads")
    assert event.fixed == (path,) and event.flows_added == ("direct",) and workspace.value("direct") == "ab"


# Names, bursts, stopping ------------------------------------------------------------------------------

def test_one_flow_name_in_two_files_is_a_duplicate_naming_both(workspace):
    first = workspace.save("a_first.py", flow_source("report", value=1, function="report_a"))
    workspace.start()

    second = workspace.save("b_second.py", flow_source("report", value=2, function="report_b"))
    event = workspace.wait(lambda e: e.duplicates, "a duplicate appeared")
    (duplicate,) = event.duplicates
    assert (duplicate.name, duplicate.path, duplicate.first_path) == ("report", second, first)
    assert (duplicate.line, duplicate.first_line) == (7, 7)  # the @flow lines
    assert f"{second}:7" in str(duplicate) and f"{first}:7" in str(duplicate)
    assert workspace.value("report") == 1  # the name still means the first file's flow

    workspace.about_to_change()
    second.unlink()
    event = workspace.wait(lambda e: second in e.files_removed, "b_second.py was removed")
    assert event.duplicates == () and workspace.directory.duplicates == []


def test_a_burst_of_saves_is_one_reload_or_a_few_and_the_last_save_wins(workspace):
    path = workspace.save("answer.py", flow_source(value=0))
    workspace.start()

    workspace.about_to_change()
    for value in range(1, 21):
        write(path, flow_source(value=value))
    workspace.wait(lambda e: workspace.value("answer") == 20, "answer.py returns 20")
    reloads = [e for e in workspace.reloads.since(workspace.mark) if path in e.files_changed]
    assert 1 <= len(reloads) < 20


def test_reloading_paths_that_concern_no_flow_file_changes_nothing(workspace):
    workspace.save("answer.py", flow_source())
    workspace.directory.load()
    mark = workspace.reloads.mark()
    assert workspace.directory.reload([workspace.folder / "README.md", workspace.folder.parent / "elsewhere.py"]) is None
    assert workspace.reloads.since(mark) == []


def test_stopping_the_watch_is_prompt(workspace):
    workspace.save("answer.py", flow_source())
    workspace.start()
    watching = workspace.directory._watcher._thread  # this directory's; other tests may still watch theirs
    started = time.perf_counter()
    workspace.directory.stop()
    assert time.perf_counter() - started < 1.0
    assert not watching.is_alive()


# flows-tui list --watch -------------------------------------------------------------------------------

def test_list_watch_prints_a_line_per_reload_until_ctrl_c(tmp_path):
    write(tmp_path / "flows.toml", '[project]\nflows_dir = "flows"\n')
    path = write(tmp_path / "flows" / "answer.py", flow_source())
    environment = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    environment.update(NO_COLOR="1", CI="1", COLUMNS="200")
    process = subprocess.Popen([sys.executable, "-m", "flows_tui.cli", "list", "--watch"], cwd=tmp_path,
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: "queue.Queue[tuple[str, str]]" = queue.Queue()
    for name, stream in (("out", process.stdout), ("err", process.stderr)):
        threading.Thread(target=lambda n=name, s=stream: [lines.put((n, line.rstrip("\n"))) for line in s],
                         daemon=True).start()

    def next_line(where: str, containing: str) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                stream, line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if stream == where and containing in line:
                return line
        raise AssertionError(f"no {where} line containing {containing!r} within 30s")

    try:
        next_line("out", "answer.py")  # the listing
        next_line("err", "watching flows")
        write(path, "from flows_tui import flow\n\n@flow\ndef oops(:\n    pass\n")
        assert "reloaded answer.py" in next_line("out", "reloaded")
        failed = next_line("out", "✗")
        assert "answer.py:4: SyntaxError" in failed and "last good flows stay loaded: answer" in failed
        write(path, flow_source("renamed"))
        assert "+ renamed, - answer" in next_line("out", "reloaded")
        assert "answer.py loads again" in next_line("out", "✓")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_list_watch_reads_each_save_in_its_child_and_imports_no_file_here(tmp_path):
    # What `list --watch` holds: the saves' flows, errors and kept last good flows, as read in
    # the child importing each file; no file is imported in this process.
    marked = "import os, pathlib\npathlib.Path(__file__).with_name(f'ran-{os.getpid()}').touch()\n"
    path = write(tmp_path / "flows" / "answer.py", marked + textwrap.dedent(flow_source()))
    directory = FlowsDirectory(tmp_path / "flows", import_here=False)
    assert directory.load().flows_added == ("answer",)
    write(path, marked + textwrap.dedent(flow_source("renamed")))
    event = directory.reload([path])
    assert event.flows_added == ("renamed",) and event.flows_removed == ("answer",)
    write(path, "from flows_tui import flow\n\n@flow\ndef oops(:\n    pass\n")
    event = directory.reload([path])
    assert [error.line for error in event.failed] == [4] and list(directory.flows) == ["renamed"]
    ran = sorted(p.name for p in (tmp_path / "flows").glob("ran-*"))
    assert len(ran) == 2 and f"ran-{os.getpid()}" not in ran, ran  # two imports, each in a child
    assert module_name_for(path) not in sys.modules
