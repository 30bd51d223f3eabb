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
