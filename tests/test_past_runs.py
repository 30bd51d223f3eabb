"""Past runs read back at scale: `logs --json` streamed, a big stored run opened without building
every task run, its groups counted by the store and its children read as the user opens them."""

from __future__ import annotations

import datetime as _dt
import json
import logging

from flows_tui.record import events as ev
from flows_tui.record.store import Store

START = _dt.datetime(2026, 3, 1, 12, 0, tzinfo=_dt.timezone.utc)

# What a task may log: every escape json.dumps makes, and text around them.
HOSTILE = ["plain", "tab\there\nnew line\r\x00\x1b[2J\x07\x7f", 'quote " and \\ backslash', "é ü ß 漢字",
           "astral 🎉 \U0001f600", "\u2028\u2029 \ufeff", "\udce9 lone surrogate escaped", "", "[red]not markup[/]"]


def test_logs_json_prints_each_line_as_json_dumps_of_its_document(tmp_path):
    store = Store.open(tmp_path)
    store.record([ev.FlowRunStarted("r1", "etl", {}, START), ev.FlowStateChanged("r1", "Running", START),
                  ev.TaskRunCreated("r1", "t1", "load", "load-0", START, 0),
                  ev.TaskRunCreated("r1", "t2", "save", "save", START)])
    lines = [ev.LogLine(START + _dt.timedelta(seconds=index // 3, microseconds=0 if index % 3 == 0 else 7 * index),
                        (logging.INFO, logging.WARNING, 25, logging.DEBUG, 55)[index % 5], message,
                        (None, "t1", "t2")[index % 3], 1, "prefect.task_runs")
             for index, message in enumerate(HOSTILE * 3)]
    store.record([ev.LogLines("r1", tuple(lines)), ev.FlowStateChanged("r1", "Completed", START)])
    for task, level in ((None, 0), ("load", 0), ("save", logging.INFO)):
        expected = [json.dumps(stored.document()) for stored in store.logs("r1", task=task, level=level)]
        printed = [line for batch in store.logs_json("r1", task=task, level=level, batch=4) for line in batch]
        assert printed == expected and expected
    assert list(store.logs_json("no-such-run")) == []


def test_logs_prints_a_run_of_many_lines_as_it_printed_each_on_its_own(tmp_path, monkeypatch):
    import io

    from click.testing import CliRunner
    from rich.console import Console

    from flows_tui.cli import main
    from flows_tui.record.progress import log_text

    (tmp_path / "flows").mkdir()
    (tmp_path / "flows.toml").write_text('[project]\nflows_dir = "flows"\n')
    store = Store.open(tmp_path / ".flows-tui")
    untabbed = [message for message in HOSTILE if "\t" not in message] + ["\x08\x0b\x0c\x1b]0;title\x07 after"]
    for run_id, messages in (("r1", HOSTILE), ("r2", untabbed)):  # a tab: Rich lays it out
        store.record([ev.FlowRunStarted(run_id, "etl", {}, START),
                      ev.TaskRunCreated(run_id, f"{run_id}t1", "load", "load-0", START, 0)])
        store.record([ev.LogLines(run_id, tuple(
            ev.LogLine(START + _dt.timedelta(seconds=index), (10, 20, 30, 40)[index % 4], message,
                       (None, f"{run_id}t1")[index % 2], 1, "prefect")
            for index, message in enumerate(messages * 250)))])  # over a thousand
    monkeypatch.chdir(tmp_path)
    for run_id in ("r1", "r2"):
        expected = io.StringIO()
        console = Console(file=expected, highlight=False, soft_wrap=True, width=80)
        for stored in store.logs(run_id):
            console.print(log_text(stored.task or "flow", stored.line), highlight=False, soft_wrap=True)
        result = CliRunner().invoke(main, ["logs", run_id])
        assert result.exit_code == 0, result.output
        assert result.output == expected.getvalue() and len(result.output.splitlines()) >= 250 * 8


def test_the_lines_a_logs_pane_filter_shows_are_read_as_it_would_filter_them(tmp_path):
    store = Store.open(tmp_path)
    store.record([ev.FlowRunStarted("r1", "etl", {}, START), ev.TaskRunCreated("r1", "t1", "load", "load-0", START, 0),
                  ev.TaskRunCreated("r1", "t2", "load", "load-1", START, 1)])
    messages = HOSTILE + ["\u212a only", "MIXED Case Row", "row 7", "İstanbul"]
    store.record([ev.LogLines("r1", tuple(ev.LogLine(START + _dt.timedelta(seconds=index), (10, 20, 30, 40)[index % 4],
                                                     message, (None, "t1", "t2")[index % 3], 1, "prefect")
                                          for index, message in enumerate(messages * 4)))])
    every = store.logs("r1")
    for task_run_id, task, level, search in ((None, None, 0, ""), ("t1", None, 0, ""), (None, "load", 30, ""),
                                             (None, None, 0, "k"), (None, None, 0, "case r"), (None, None, 20, "ROW"),
                                             (None, None, 0, "i̇"), ("t2", None, 0, "é"), (None, None, 0, "\t")):
        wanted = [line for line in every if line.line.level >= level
                  and (task_run_id is None or line.line.task_run_id == task_run_id)
                  and (task is None or (line.task or "").startswith(task + "-"))
                  and search.lower() in line.line.message.lower()]
        for count in (3, 1000):
            found = store.last_lines("r1", count, task_run_id=task_run_id, task=task, level=level, search=search)
            assert [(row[0], row[3], row[7]) for row in found] == \
                [(line.id, line.line.message, line.task) for line in wanted[-count:]], (task_run_id, task, level, search)
        assert wanted


def record_shapes(store: Store, run_id: str = "r2") -> None:
    """A failed run of every shape a tree shows: a map whose children ran, retried, failed, crashed and
    never ran, created out of index order; a task called three times; single calls; a flow-level retry
    (the first attempt's task runs kept in history)."""
    at = lambda seconds: START + _dt.timedelta(seconds=seconds)  # noqa: E731
    events: list = [ev.FlowRunStarted(run_id, "shapes", {"n": 40}, at(0)), ev.FlowStateChanged(run_id, "Running", at(0)),
                    ev.TaskRunCreated(run_id, "old-1", "extract", "extract", at(0)),
                    ev.AttemptStarted(run_id, "old-1", 1, at(1), "tcp://127.0.0.1:1"),
                    ev.AttemptEnded(run_id, "old-1", 1, "Failed", at(2), "OSError: gone", "Traceback: old"),
                    ev.TaskStateChanged(run_id, "old-1", "Failed", at(2), "OSError: gone"),
                    ev.FlowStateChanged(run_id, "Retrying", at(3)), ev.FlowStateChanged(run_id, "Running", at(4), 2),
                    ev.TaskRunCreated(run_id, "extract", "extract", "extract", at(4), flow_attempt=2)]
    order = list(range(20, 40)) + list(range(20))  # a second .map() of lower indices after the first
    events += [ev.TaskRunCreated(run_id, f"m{index}", "clean", f"clean-{index}", at(5), index, ("extract",), 2)
               for index in order]
    events += [ev.TaskRunCreated(run_id, f"s{index}", "save", "save", at(5), None, (), 2) for index in range(3)]
    for index in range(40):
        task_run_id, when = f"m{index}", at(6 + index)
        if index % 10 == 9:
            continue  # never started: still Pending when the run crashed
        events += [ev.AttemptStarted(run_id, task_run_id, 1, when, f"tcp://127.0.0.1:{index % 3}"),
                   ev.TaskStateChanged(run_id, task_run_id, "Running", when)]
        if index % 7 == 3:  # a retry, then done
            events += [ev.AttemptEnded(run_id, task_run_id, 1, "Failed", when, "ValueError: bad row", "Traceback: retry"),
                       ev.TaskStateChanged(run_id, task_run_id, "Retrying", when, "ValueError: bad row",
                                           when + _dt.timedelta(seconds=1)),
                       ev.AttemptStarted(run_id, task_run_id, 2, when + _dt.timedelta(seconds=1)),
                       ev.TaskStateChanged(run_id, task_run_id, "Running", when + _dt.timedelta(seconds=1))]
        end = when + _dt.timedelta(seconds=2)
        if index == 17:
            events += [ev.AttemptEnded(run_id, task_run_id, 1, "Failed", end, "KeyError: 'id'", "Traceback: 17"),
                       ev.TaskStateChanged(run_id, task_run_id, "Failed", end, "KeyError: 'id'")]
        elif index % 10 != 8:  # index 8, 18, ... still running when the run crashed
            attempt = 2 if index % 7 == 3 else 1
            events += [ev.AttemptEnded(run_id, task_run_id, attempt, "Completed", end),
                       ev.TaskStateChanged(run_id, task_run_id, "Cached" if index % 11 == 0 else "Completed", end)]
    for index in range(3):
        events += [ev.AttemptStarted(run_id, f"s{index}", 1, at(50)), ev.TaskStateChanged(run_id, f"s{index}", "Running", at(50)),
                   ev.AttemptEnded(run_id, f"s{index}", 1, "Completed", at(51)),
                   ev.TaskStateChanged(run_id, f"s{index}", "Completed", at(51))]
    events += [ev.AttemptStarted(run_id, "extract", 1, at(4)), ev.AttemptEnded(run_id, "extract", 1, "Completed", at(5)),
               ev.TaskStateChanged(run_id, "extract", "Completed", at(5))]
    store.record(events)
    store._mark_crashed(run_id, "the scheduler was lost")  # as the next flows-tui finds it, its owner gone


def tree_of(run) -> list:
    """What the tree shows of a run's groups, and each group's task runs in order."""
    def task_run(t):
        return (t.id, t.name, t.state, t.message, t.retry_at, t.history, t.created, t.map_index, t.upstream,
                [(a.number, a.state, a.started, a.ended, a.error, a.traceback, a.worker) for a in t.attempts])

    return [(g.task, g.total, dict(g.counts), g.done, g.is_mapped, g.is_final, g.state, g.started, g.ended, g.duration,
             g.retries, [task_run(t) for t in g.runs]) for g in run.groups()]


def test_a_stored_run_opened_with_its_big_groups_counted_shows_what_the_whole_run_shows(tmp_path):
    from flows_tui.record.failure_lines import run_end_message

    store = Store.open(tmp_path)
    record_shapes(store)
    whole = store.load_run("r2")
    for lazy_over in (0, 2, 5, 1000):
        opened = store.open_run("r2", lazy_over=lazy_over)
        assert tree_of(opened) == tree_of(whole)
        assert opened.counts() == whole.counts() and opened.error == whole.error
        assert run_end_message(opened) == run_end_message(whole)
        assert opened.task_runs.get("m17").attempts[0].traceback == "Traceback: 17" and opened.task_runs.get("nope") is None
        assert [g.task for g in opened.groups(flow_attempt=1)] == ["extract"]  # an earlier attempt: all read
        assert list(opened.task_runs) == list(whole.task_runs) and opened.task_runs == whole.task_runs


def record_big_map(store: Store, run_id: str, count: int) -> None:
    """A failed run of a `count`-task map as the engine records it, a log line each: every 1000th from
    the 7th failed, every 500th from the 3rd retried once; then a task that never ran."""
    store.record([ev.FlowRunStarted(run_id, "maps", {"n": count}, START), ev.FlowStateChanged(run_id, "Running", START)])
    store.record([ev.TaskRunCreated(run_id, f"{index:016x}", "inc", f"inc-{index}", START, index)
                  for index in range(count)])
    batch: list = []
    for index in range(count):
        task_run_id, when = f"{index:016x}", START + _dt.timedelta(milliseconds=index)
        batch += [ev.AttemptStarted(run_id, task_run_id, 1, when, "tcp://127.0.0.1:40000"),
                  ev.TaskStateChanged(run_id, task_run_id, "Running", when),
                  ev.LogLines(run_id, (ev.LogLine(when, logging.INFO, f"inc({index})", task_run_id, 1, "prefect"),))]
        if index % 500 == 3:
            batch += [ev.AttemptEnded(run_id, task_run_id, 1, "Failed", when, "OSError: flaky", "Traceback: flaky"),
                      ev.AttemptStarted(run_id, task_run_id, 2, when, "tcp://127.0.0.1:40001")]
        attempt = 2 if index % 500 == 3 else 1
        if index % 1000 == 7:
            batch += [ev.AttemptEnded(run_id, task_run_id, attempt, "Failed", when, f"ValueError: {index}", "Traceback"),
                      ev.TaskStateChanged(run_id, task_run_id, "Failed", when, f"ValueError: {index}")]
        else:
            batch += [ev.AttemptEnded(run_id, task_run_id, attempt, "Completed", when),
                      ev.TaskStateChanged(run_id, task_run_id, "Completed", when)]
        if len(batch) >= 2000:
            store.record(batch)
            batch = []
    end = START + _dt.timedelta(seconds=count)
    store.record(batch + [ev.TaskRunCreated(run_id, "total", "total", "total", end),
                          ev.TaskStateChanged(run_id, "total", "NotRun", end, "upstream failed"),
                          ev.FlowStateChanged(run_id, "Failed", end, message="6 task runs failed")])


async def test_a_big_past_run_opens_with_its_map_counted_and_its_children_and_lines_read_as_shown(tmp_path):
    from test_tui import app_for, make_project, wait_for

    from flows_tui.tui.log_view import SHOWN_LINES, LogView
    from flows_tui.tui.task_tree import TaskTree, group_label, task_run_label

    project = make_project(tmp_path)
    store = Store.open(project / ".flows-tui")
    record_big_map(store, "bigrun000001", 6_000)  # more lines than the logs pane shows
    whole = store.load_run("bigrun000001")
    store.close()
    app = app_for(project, connect_cluster=False)
    async with app.run_test(size=(140, 40)) as pilot:
        tree, logs = app.query_one(TaskTree), app.query_one(LogView)
        await wait_for(pilot, lambda: app.loaded.is_set(), message="the flows")  # as a user opens it: after
        await pilot.pause()
        app.open_stored_run("bigrun000001")
        await wait_for(pilot, lambda: tree.flow_run is not None and tree.flow_run.run_id == "bigrun000001"
                       and logs.run_id == "bigrun000001", message="the stored run")
        group_row, total_row = tree.root.children
        now = app.clock()
        inc, total = whole.groups()
        assert str(group_row.label) == str(group_label(inc, now))  # the row it showed when it built every task run
        assert "inc  5994/6000  ✓ 5994  ✗ 6" in str(group_row.label) and "12 retries" in str(group_row.label)
        assert str(total_row.label) == str(task_run_label(total.runs[0], now, name="total"))
        shown = logs.shown_lines()
        assert len(shown) == SHOWN_LINES and shown[-1].endswith("inc-5999: inc(5999)")

        group_row.expand()
        await wait_for(pilot, lambda: len(group_row.children) == 201, message="the first children")
        assert [str(child.label) for child in group_row.children[:200]] == \
            [str(task_run_label(task_run, now)) for task_run in inc.runs[:200]]
        assert str(group_row.children[7].label).startswith("✗ Failed  inc-7") and "ValueError: 7" in str(
            group_row.children[7].label)
        assert str(group_row.children[-1].label) == "… 5800 more (enter)"
        tree.focus()
        tree.move_cursor(group_row.children[-1])
        await pilot.press("enter")  # the next chunk, read as it is shown
        await wait_for(pilot, lambda: len(group_row.children) == 401, message="the next children")
        assert [str(child.label) for child in group_row.children[200:400]] == \
            [str(task_run_label(task_run, now)) for task_run in inc.runs[200:400]]
        assert str(group_row.children[3].label).endswith("2 attempts")  # inc-3 retried once

        tree.move_cursor(group_row.children[7])  # an early child: its line is older than those shown
        await wait_for(pilot, lambda: [line.split(" ", 2)[2] for line in logs.shown_lines()] == ["inc-7: inc(7)"],
                       message="the child's line")
        tree.move_cursor(group_row)  # every child's lines: the last that the pane shows
        await wait_for(pilot, lambda: len(logs.shown_lines()) == SHOWN_LINES, message="the group's lines")
        assert logs.shown_lines()[0].endswith("inc-1000: inc(1000)") and logs.task_name == "inc"
        logs.set_search("INC(77")  # found in every line of the run, as the user types it
        await wait_for(pilot, lambda: len(logs.shown_lines()) == 11, message="the search")  # 77, 770 to 779
        assert logs.shown_lines()[0].endswith("inc-77: inc(77)") and logs.shown_lines()[-1].endswith("inc-779: inc(779)")
