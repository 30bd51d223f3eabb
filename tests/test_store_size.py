"""What a big run costs on disk; stores and journal rows written by an earlier flows-tui still read."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import shutil
import sqlite3
from pathlib import Path

from flows_tui.record import events as ev
from flows_tui.record.store import SCHEMA_VERSION, STORE_NAME, Store, journal

NOW = _dt.datetime.now(_dt.timezone.utc)


def record_map(store: Store, run_id: str, count: int, lines: bool = False) -> None:
    """A map of `count` task runs as the engine reports it: created, started, ended, in batches (each
    with a log line)."""
    store.record([ev.FlowRunStarted(run_id, "maps", {"n": count}, NOW), ev.FlowStateChanged(run_id, "Running", NOW)])
    store.record([ev.TaskRunCreated(run_id, f"{index:016x}", "inc", f"inc-{index}", NOW, index)
                  for index in range(count)])
    batch: list = []
    for index in range(count):
        task_run_id, when = f"{index:016x}", NOW + _dt.timedelta(milliseconds=index)
        batch += [ev.AttemptStarted(run_id, task_run_id, 1, when, "127.0.0.1:40000"),
                  ev.TaskStateChanged(run_id, task_run_id, "Running", when),
                  ev.AttemptEnded(run_id, task_run_id, 1, "Completed", when),
                  ev.TaskStateChanged(run_id, task_run_id, "Completed", when)]
        if lines:
            batch.append(ev.LogLines(run_id, (ev.LogLine(when, 20, f"processed item {index}", task_run_id, 1,
                                                         "prefect.task_runs"),)))
        if len(batch) >= 400:
            store.record(batch)
            batch = []
    store.record(batch + [ev.FlowStateChanged(run_id, "Completed", NOW)])


def used_bytes(path) -> int:
    """The bytes the store's pages in use take: pages freed by the journal's trim go to the next runs."""
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, size = (c.execute(f"PRAGMA {name}").fetchone()[0]
                             for name in ("page_count", "freelist_count", "page_size"))
    return (pages - free) * size


def test_a_big_map_takes_under_250_bytes_per_task_run_with_a_log_line_with_every_state_and_attempt(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "GRACE_SECONDS", 0.0)  # at rest: the run ended a minute ago
    store = Store.open(tmp_path)
    empty = used_bytes(tmp_path / STORE_NAME)  # a page per table and index: what any store takes
    record_map(store, "big", 2000, lines=True)
    store.close()
    with sqlite3.connect(tmp_path / STORE_NAME) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert c.execute("SELECT count(*) FROM task_states").fetchone()[0] == 4000
        assert c.execute("SELECT count(*) FROM attempts").fetchone()[0] == 2000
    store = Store.open(tmp_path)
    run = store.load_run("big")
    assert run.counts() == {"Completed": 2000}
    assert all(len(task_run.attempts) == 1 and task_run.attempts[0].worker == "127.0.0.1:40000"
               and [state for state, _ in task_run.history] == ["Pending", "Running", "Completed"]
               for task_run in run.task_runs.values())
    assert run.task_runs[f"{1999:016x}"].ended == NOW + _dt.timedelta(milliseconds=1999)
    lines = store.logs("big")
    assert len(lines) == 2000 and lines[-1].task == "inc-1999" and lines[-1].line.logger == "prefect.task_runs"
    size = used_bytes(tmp_path / STORE_NAME) - empty  # ~210 (it was ~1,220 with the journal's copies)
    assert size / 2000 < 250, f"{size / 2000:.0f} bytes per task run"


def test_journal_rows_in_the_earlier_form_are_still_read(tmp_path):
    store = Store.open(tmp_path)
    older = [["FlowRunStarted", {"run_id": "old", "flow": "etl", "parameters": {}, "time": NOW.isoformat(),
                                 "file": None, "address": None}],
             ["TaskStateChanged", {"run_id": "old", "task_run_id": "t1", "state": "Running",
                                   "time": NOW.isoformat(), "message": None, "retry_at": None}]]
    with sqlite3.connect(tmp_path / STORE_NAME) as c:
        c.execute("INSERT INTO journal (time, writer, events) VALUES (?, ?, ?)", (0.0, None, json.dumps(older)))
    store.record([ev.TaskStateChanged("new", "t2", "Completed", NOW)])
    with sqlite3.connect(tmp_path / STORE_NAME) as c:  # as another process tails it
        c.row_factory = sqlite3.Row
        events = journal.read(c, 0, None, 100).events
    assert events == [ev.FlowRunStarted("old", "etl", {}, NOW), ev.TaskStateChanged("old", "t1", "Running", NOW),
                      ev.TaskStateChanged("new", "t2", "Completed", NOW)]


def describe(store: Store) -> dict:
    """What `runs --json`, `logs --json` and the tree show of every run in a store."""
    def moment(when):
        return when and when.isoformat()

    out: dict = {"runs": [s.document() for s in store.runs()], "logs": {}, "tree": {}}
    for summary in store.runs():
        out["logs"][summary.run_id] = [line.document() | {"attempt": line.line.attempt, "logger": line.line.logger}
                                       for line in store.logs(summary.run_id)]
        run = store.load_run(summary.run_id)
        out["tree"][summary.run_id] = {
            "state": run.state, "history": [[state, moment(when)] for state, when in run.history],
            "task_runs": {key: {"name": t.name, "task": t.task, "map_index": t.map_index, "upstream": list(t.upstream),
                                "state": t.state, "history": [[state, moment(when)] for state, when in t.history],
                                "attempts": [dataclasses.asdict(a) | {"started": moment(a.started), "ended": moment(a.ended)}
                                             for a in t.attempts]}
                          for key, t in run.task_runs.items()}}
    return out


def test_a_store_written_at_schema_6_is_migrated_in_place_and_reads_the_same(tmp_path):
    """tests/data/store-schema6.db was recorded by flows-tui at schema 6 (two runs: a map with a retry,
    a failure, log lines of tasks and of the flow); the .json next to it is what that version's
    readers said of it."""
    data = Path(__file__).parent / "data"
    shutil.copy(data / "store-schema6.db", tmp_path / STORE_NAME)
    store = Store.open(tmp_path)
    assert json.loads(json.dumps(describe(store))) == json.loads((data / "store-schema6.json").read_text())
    with sqlite3.connect(tmp_path / STORE_NAME) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.record([ev.FlowRunStarted("r3", "etl", {}, NOW)])  # and it records on
    assert [s.run_id for s in store.runs()][0] == "r3"


def test_a_run_loaded_from_its_rows_is_the_tree_a_model_folding_its_history_holds(tmp_path):
    from flows_tui.record.model import RunModel

    shutil.copy(Path(__file__).parent / "data" / "store-schema6.db", tmp_path / STORE_NAME)
    store = Store.open(tmp_path)
    for summary in store.runs():
        model = RunModel()
        model.apply_all(store._replay(summary.run_id))
        assert store.load_run(summary.run_id) == model.runs[summary.run_id]


def test_logs_json_prints_every_line_as_the_stored_lines_say(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from flows_tui.cli import main

    (tmp_path / "flows").mkdir()
    (tmp_path / "flows.toml").write_text('[project]\nflows_dir = "flows"\n')
    (tmp_path / ".flows-tui").mkdir()
    shutil.copy(Path(__file__).parent / "data" / "store-schema6.db", tmp_path / ".flows-tui" / STORE_NAME)
    monkeypatch.chdir(tmp_path)
    store = Store.open(tmp_path / ".flows-tui")
    for task in (None, "clean", "clean-1"):
        args = ["logs", "r1aaaaaaaaaa", "--json"] + (["--task", task] if task else [])
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        expected = [json.dumps(line.document()) for line in store.logs("r1aaaaaaaaaa", task=task)]
        assert result.output.splitlines() == expected and expected


def test_the_last_lines_of_a_run_are_its_last_lines_in_order(tmp_path):
    shutil.copy(Path(__file__).parent / "data" / "store-schema6.db", tmp_path / STORE_NAME)
    store = Store.open(tmp_path)
    every = store.logs("r1aaaaaaaaaa")
    assert store.logs("r1aaaaaaaaaa", last=2) == every[-2:] and store.logs("r1aaaaaaaaaa", last=99) == every
    assert store.logs("r1aaaaaaaaaa", task="clean", last=1) == store.logs("r1aaaaaaaaaa", task="clean")[-1:]
