"""The state_dir read-only, or the disk full mid-run: one clear error, nothing recorded lost.

Real SQLite files and real OS failures, no mocks:
- a full disk is `RLIMIT_FSIZE` on the `flows-tui` process (SIGXFSZ ignored), so a write past
  the limit fails with EFBIG as it would with ENOSPC: SQLite reports a disk I/O error;
- a read-only state_dir is a read-only bind mount (as root, whom chmod does not stop), or
  `chmod a-w` for other users.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from flows_tui.record import events as ev
from flows_tui.project.config import load_config
from flows_tui.launch.runner import recording
from flows_tui.record.store import STORE_NAME, Store
from flows_tui.tui.app import FlowsApp
from flows_tui.tui.flow_list import FlowList
from flows_tui.tui.run_history import RunHistory
from flows_tui.tui.screens import HelpScreen
from flows_tui.tui.status_bar import StatusBar

from conftest import cli, write_project
from test_tui import select, wait_for

FLOWS = """
    import pathlib
    import time
    from flows_tui import flow, task, get_run_logger

    @task
    def talk(lines: int, chunks: int) -> int:
        log = get_run_logger()
        for chunk in range(chunks):
            for i in range(lines):
                log.info("chunk %d line %d %s", chunk, i, "x" * 200)
            time.sleep(0.12)  # each chunk its own batches
        return lines * chunks

    @flow
    def small(marker: str = ""):
        if marker:
            pathlib.Path(marker).write_text("ran")
        talk(3, 1)

    @flow
    def chatty(lines: int = 200, chunks: int = 10):
        return talk(lines, chunks)
"""

SCHEDULE = '\n[flows.small]\ninterval = "1h"\n'
DB = f".flows-tui/{STORE_NAME}"
FILE_LIMIT = 300_000  # bytes: the store with a few small runs fits; 2,000 lines of 200 characters do not


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = write_project(tmp_path, {"chat.py": FLOWS})
    with (root / "flows.toml").open("a") as toml:
        toml.write(SCHEDULE)
    return root


def runs_of(project: Path) -> list[dict]:
    result = cli("runs", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def logs_of(project: Path, run_id: str) -> list[str]:
    result = cli("logs", run_id, "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["message"] for line in result.stdout.splitlines()]


def stored(project: Path) -> Store:
    """The store as this process reads it (no CLI round trip)."""
    return Store.open(project / ".flows-tui", read_only_ok=True)


def integrity(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


def cli_with_file_limit(*args: str, cwd: Path, limit: int) -> subprocess.CompletedProcess:
    """`flows-tui` whose writes past `limit` bytes in any one file fail with EFBIG, as on a full disk."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return cli(*args, cwd=cwd, timeout=120, preexec_fn=limit_file_size)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` (a directory or a file) read-only even for root: a read-only bind mount; chmod a-w otherwise."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    mounted = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a read-only state_dir needs a bind mount as root, not permitted here: {mounted.stderr.strip()}")
    try:
        remounted = subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], capture_output=True, text=True)
        if remounted.returncode != 0:
            pytest.skip(f"remounting read-only is not permitted here: {remounted.stderr.strip()}")
        yield
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_a_full_disk_mid_run_the_run_ends_as_it_would_one_error_line_and_the_store_intact(project, figures):
    for _ in range(3):
        result = cli("run", "small", cwd=project)
        assert result.returncode == 0, result.stderr
    earlier = [run.document() for run in stored(project).runs()]
    assert len(earlier) == 3
    db = project / DB
    size_before = db.stat().st_size

    started = time.monotonic()
    full = cli_with_file_limit("run", "chatty", cwd=project, limit=FILE_LIMIT)
    took = time.monotonic() - started

    # The run went on to its end: its outcome and exit code are the run's own.
    assert full.returncode == 0, full.stderr
    assert "Completed flow run 'chatty'" in full.stdout
    assert full.stdout.count("chunk 9 line 199") == 1  # every line was shown, to the last
    # One error line, not one per failed batch: which run, that its history is incomplete, and why.
    lines = error_lines(full.stderr)
    assert len(lines) == 1, full.stderr
    assert "Traceback" not in full.stderr
    message = lines[0]
    assert message.startswith("error: the history of run ") and "'chatty'" in message and "incomplete" in message
    assert DB in message and "file size limit (ulimit -f)" in message

    # The store is not corrupted, and every run recorded before is intact and readable.
    assert integrity(db) == "ok"
    after = runs_of(project)
    chatty = after[0]
    assert chatty["flow"] == "chatty"
    assert after[1:] == earlier
    expected = [f"chunk 0 line {i} {'x' * 200}" for i in range(3)]
    assert logs_of(project, earlier[0]["run_id"]) == expected
    for run in earlier[1:]:
        assert [line.line.message for line in stored(project).logs(run["run_id"])] == expected
    # What was recorded of the chatty run is a beginning of it, in order; its end is noted.
    recorded = logs_of(project, chatty["run_id"])
    assert 0 < len(recorded) < 2000
    assert recorded == [f"chunk {i // 200} line {i % 200} {'x' * 200}" for i in range(len(recorded))]
    assert chatty["state"] == "Completed"
    assert "the history of this run is incomplete" in stored(project).load_run(chatty["run_id"]).message

    # Space is back: the next run records normally.
    again = cli("run", "small", cwd=project)
    assert again.returncode == 0 and not error_lines(again.stderr), again.stderr
    newest = stored(project).runs()[0]
    assert newest.flow == "small" and newest.state == "Completed"
    assert len(stored(project).logs(newest.run_id)) == 3
    assert integrity(db) == "ok"
    figures.add("disk full mid-run (RLIMIT_FSIZE 300 kB, store 80 kB before)",
                f"run Completed, exit 0, {len(lines)} error line, {len(recorded)} of 2000 lines recorded in order, "
                f"final state recorded with a note, integrity_check ok, {len(earlier)} earlier runs intact, "
                f"next run recorded; the full run took {took:.1f} s (store {size_before} bytes before)")


def test_a_read_only_state_dir_runs_nothing_says_so_once_and_history_still_reads(project, figures):
    first = cli("run", "small", cwd=project)
    assert first.returncode == 0, first.stderr
    (run_id,) = [run["run_id"] for run in runs_of(project)]
    db = project / DB
    before = digest(db)
    marker = project / "ran"

    with read_only(project / ".flows-tui"):
        refused = cli("run", "small", "-p", f"marker={marker}", cwd=project)
        served = cli("serve", cwd=project)
        listed = cli("runs", cwd=project)
        history = runs_of(project)
        logs = logs_of(project, run_id)
        flows = cli("list", cwd=project)

    for result in (refused, served):
        assert result.returncode == 2, result.stderr
        lines = error_lines(result.stderr)
        assert len(lines) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert lines[0].startswith(f"error: cannot record runs: the run store {DB} cannot be written")
        assert "Read-only file system" in lines[0] or "Permission denied" in lines[0]
        assert "set [project] state_dir in flows.toml" in lines[0]
    assert lines[0].count(DB) == 1
    assert "nothing was run" in refused.stderr
    assert "flow run" not in refused.stdout and not marker.exists()  # nothing ran
    assert "serving" not in served.stdout
    # History commands read a store they cannot write.
    assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr
    assert [run["run_id"] for run in history] == [run_id]
    assert len(logs) == 3
    assert flows.returncode == 0 and "small" in flows.stdout, flows.stderr
    # Nothing was changed.
    assert digest(db) == before and integrity(db) == "ok"
    figures.add("read-only state_dir (read-only bind mount)" if os.geteuid() == 0 else "read-only state_dir (chmod)",
                "run and serve: exit 2, 1 error line naming .flows-tui/flows-tui.db, no traceback, nothing ran; "
                "runs, logs, list: exit 0; db byte-identical, integrity_check ok")


def test_a_store_file_that_cannot_be_written_in_a_writable_state_dir_is_refused_before_running(project):
    assert cli("run", "small", cwd=project).returncode == 0
    db = project / DB
    before = digest(db)
    marker = project / "ran"
    with read_only(db):
        refused = cli("run", "small", "-p", f"marker={marker}", cwd=project)
        history = runs_of(project)
    assert refused.returncode == 2
    lines = error_lines(refused.stderr)
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert f"the run store {DB} cannot be written" in lines[0] and "readonly database" in lines[0]
    assert not marker.exists() and len(history) == 1
    assert digest(db) == before and integrity(db) == "ok"


async def test_the_ui_on_a_read_only_state_dir_stays_up_says_so_and_runs_unrecorded(project, figures, monkeypatch):
    assert cli("run", "small", cwd=project).returncode == 0
    monkeypatch.chdir(project)  # where the user starts `flows-tui`: paths are shown from there
    state_dir = project / ".flows-tui"
    before = digest(state_dir / STORE_NAME)
    config = load_config(None, cwd=project)
    with read_only(state_dir):
        bus = ev.EventBus()
        with recording(bus, config, unrecorded_ok=True) as store:  # as `flows-tui` starts the UI
            assert store.read_only is not None
            app = FlowsApp(config, bus=bus, store=store)
            async with app.run_test(size=(120, 40)) as pilot:
                status = app.query_one(StatusBar)
                await wait_for(pilot, lambda: status.store_problem == "runs not recorded", message="the status")
                notes = [n.message for n in app._notifications]
                assert len(notes) == 1 and f"the run store {DB} cannot be written" in notes[0], notes
                assert "unrecorded" in notes[0]
                assert "runs not recorded" in str(status.render())
                # The history still reads; the keys work.
                runs = app.query_one(RunHistory)
                await wait_for(pilot, lambda: runs.row_count == 1, message="the history")
                flows = app.query_one(FlowList)
                await wait_for(pilot, lambda: app.cluster is not None and flows.row_count == 2, message="the cluster")
                select(app, "small")
                await pilot.press("r")
                await wait_for(pilot, lambda: flows.last_states.get("small") == "Completed", message="the run")
                await pilot.press("tab")
                await pilot.press("question_mark")
                await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), message="the help")
                await pilot.press("escape")
                # A write failure later (a full disk) reaches the UI the same way, from the journal's thread.
                await asyncio.to_thread(store._report, "the history of run x is incomplete: disk I/O error")
                await wait_for(pilot, lambda: status.store_problem == "history incomplete", message="the status")
                assert any("disk I/O error" in n.message for n in app._notifications)
                assert app.is_running
    assert len(stored(project).runs()) == 1  # the run in the UI was not recorded
    assert digest(state_dir / STORE_NAME) == before and integrity(state_dir / STORE_NAME) == "ok"
    figures.add("UI on a read-only state_dir", "stays up; 1 error notification + status 'runs not recorded'; "
                "history readable; r runs the flow, unrecorded; db byte-identical")
