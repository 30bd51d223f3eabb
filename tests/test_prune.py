"""Keeping history small: `flows-tui prune` and `[project] keep` / `keep_runs`, on real SQLite files."""

from __future__ import annotations

import datetime as _dt
import logging
import sqlite3
import textwrap

import pytest
from click.testing import CliRunner

from conftest import wait_until

from flows_tui.cli import main
from flows_tui.project.config import parse_config
from flows_tui.errors import FlowsTuiError
from flows_tui.record import events as ev
from flows_tui.record.store import STORE_NAME, Store

NOW = _dt.datetime.now(_dt.timezone.utc)


def record_run(store: Store, run_id: str, days_ago: float, *, tasks: int = 3, lines: int = 2,
               ended: bool = True) -> None:
    """A run as the engine records it: its states, task runs with an attempt each, log lines."""
    started = NOW - _dt.timedelta(days=days_ago)
    events: list = [ev.FlowRunStarted(run_id, "etl", {"n": tasks}, started),
                    ev.FlowStateChanged(run_id, "Running", started)]
    for index in range(tasks):
        task_run_id = f"{run_id}-t{index}"
        events += [ev.TaskRunCreated(run_id, task_run_id, "clean", f"clean-{index}", started, index),
                   ev.AttemptStarted(run_id, task_run_id, 1, started),
                   ev.TaskStateChanged(run_id, task_run_id, "Running", started),
                   ev.LogLines(run_id, tuple(ev.LogLine(started, logging.INFO, f"line {n} of {index}", task_run_id, 1)
                                             for n in range(lines))),
                   ev.AttemptEnded(run_id, task_run_id, 1, "Completed", started),
                   ev.TaskStateChanged(run_id, task_run_id, "Completed", started)]
    if ended:
        events.append(ev.FlowStateChanged(run_id, "Completed", started + _dt.timedelta(seconds=5)))
    store.record(events)


def counts(store: Store) -> dict[str, int]:
    with sqlite3.connect(store.path) as c:
        return {table: c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("runs", "run_states", "task_runs", "task_states", "attempts", "logs")}


def test_prune_older_than_removes_old_runs_with_everything_they_recorded(tmp_path):
    store = Store.open(tmp_path)
    record_run(store, "old1", days_ago=40)
    record_run(store, "old2", days_ago=31)
    record_run(store, "new", days_ago=2)
    pruned = store.prune(older_than=_dt.timedelta(days=30))
    assert (pruned.runs, pruned.task_runs, pruned.log_lines) == (2, 6, 12)
    assert pruned.bytes > 0
    assert [run.run_id for run in store.runs()] == ["new"]
    assert counts(store) == {"runs": 1, "run_states": 2, "task_runs": 3, "task_states": 6, "attempts": 3, "logs": 6}
    assert len(store.logs("new")) == 6


def test_prune_keep_leaves_the_newest_runs_and_never_one_in_progress(tmp_path):
    store = Store.open(tmp_path)
    record_run(store, "running", days_ago=90, ended=False)  # still in flight (this process owns it)
    for day in range(5):
        record_run(store, f"run{day}", days_ago=day + 1)
    pruned = store.prune(keep=2)
    assert pruned.runs == 3
    assert sorted(run.run_id for run in store.runs()) == ["run0", "run1", "running"]
    assert store.prune(keep=2).describe() == "nothing to remove"


def test_the_prune_command_says_what_it_removed_and_vacuum_shrinks_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows.toml").write_text('[project]\nflows_dir = "flows"\n')
    store = Store.open(tmp_path / ".flows-tui")
    for day in range(4):
        record_run(store, f"run{day}", days_ago=10 * day, tasks=50, lines=20)
    store.close()
    runner = CliRunner()
    result = runner.invoke(main, ["prune", "--older-than", "15d"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("removed 2 runs, 100 task runs, 2,000 log lines (about ")
    assert "kB of data" in result.output
    size_before = (tmp_path / ".flows-tui" / STORE_NAME).stat().st_size
    result = runner.invoke(main, ["prune", "--keep", "1", "--vacuum"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("removed 1 run, 50 task runs, 1,000 log lines")
    assert lines[1].startswith("vacuumed .flows-tui/flows-tui.db: ")
    assert (tmp_path / ".flows-tui" / STORE_NAME).stat().st_size < size_before
    assert [run.run_id for run in Store.open(tmp_path / ".flows-tui").runs()] == ["run0"]


def test_prune_without_a_rule_or_with_a_bad_duration_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows.toml").write_text('[project]\nflows_dir = "flows"\n')
    Store.open(tmp_path / ".flows-tui").close()
    runner = CliRunner()
    result = runner.invoke(main, ["prune"])
    assert result.exit_code == 2
    assert "--older-than 30d, --keep 1000, or [project] keep" in result.output
    result = runner.invoke(main, ["prune", "--older-than", "a month"])
    assert result.exit_code == 2
    assert "--older-than: expected a duration" in result.output


def test_project_keep_and_keep_runs_are_read_and_checked(tmp_path):
    config = parse_config('[project]\nkeep = "30d"\nkeep_runs = 1000\n', path=tmp_path / "flows.toml")
    assert config.project.keep == _dt.timedelta(days=30)
    assert config.project.keep_runs == 1000
    with pytest.raises(FlowsTuiError) as error:
        parse_config(textwrap.dedent('''
            [project]
            keep = "a month"
        '''), path=tmp_path / "flows.toml")
    assert "flows.toml:3: [project.keep]" in str(error.value)


def test_serve_and_the_ui_prune_by_the_project_rules_and_say_what_went(tmp_path):
    from flows_tui.project.config import ProjectConfig
    from flows_tui.record.retention import Retention

    store = Store.open(tmp_path)
    for day in (1, 20, 40):
        record_run(store, f"run{day}", days_ago=day)
    said: list[str] = []
    project = ProjectConfig(flows_dir=tmp_path, state_dir=tmp_path, keep=_dt.timedelta(days=30), keep_runs=None)
    retention = Retention.for_project(store, project, said.append, first_after=0, every=3600)
    try:
        wait_until(lambda: said, timeout=10, message="the first prune")
    finally:
        retention.stop()
    [message] = said
    assert message.startswith("run history ([project] keep / keep_runs): removed 1 run, 3 task runs, 6 log lines")
    assert sorted(run.run_id for run in store.runs()) == ["run1", "run20"]
    assert Retention.for_project(store, ProjectConfig(flows_dir=tmp_path, state_dir=tmp_path), said.append) is None
