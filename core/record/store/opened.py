"""A past run opened for the tree without building each of its task runs.

A 100,000-task map is one row of the tree: its counts per state, its start, end and retries are
read with SQL (`StoredGroup`), and its task runs only when the tree shows them (a chunk as the
group is expanded; one by id as a row is selected). A group of few task runs is built whole, as
`load_run` builds it. Anything that walks every task run (`task_runs.values()`, the groups of an
earlier flow-level attempt) reads them all then, once. Only an ended run is opened so: its rows
no longer change (a run in flight is read whole, and its owner's events bring the rest).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import sqlite3
import threading
from collections import Counter
from typing import Any, Callable, Iterator, Sequence

from flows_tui.record.model import FlowRun, TaskGroup, TaskRun, group_state
from flows_tui.states import FINAL_STATES, SUCCESS_STATES

from .compact import code, state_of
from .run_rows import build_run, build_task_runs, flow_run, read_run, read_task_rows

# A group of more task runs than this is counted by the store and its task runs read as they are shown.
LAZY_OVER = 200

Connect = Callable[[], "contextlib.closing[sqlite3.Connection]"]
_FAILED = tuple(code(state) for state in FINAL_STATES if state not in SUCCESS_STATES)


def open_run(c: sqlite3.Connection, run_id: str, connect: Connect, lazy_over: int = LAZY_OVER) -> FlowRun | None:
    """`run_id` as the tree shows it: an ended run's groups of more than `lazy_over` task runs counted,
    not built; a run in flight whole (as `build_run`)."""
    rows = read_run(c, run_id)
    if rows is None:
        return None
    if rows.run["ended"] is None:
        return build_run(c, run_id)
    base = flow_run(rows)
    run = StoredRun(**{name: getattr(base, name) for name in base.__dataclass_fields__})
    run.reader = reader = _Reader(connect, rows.run["id"], rows.at(0))
    run.task_runs = reader.task_runs
    totals = c.execute("SELECT t.flow_attempt, t.task, t.state, count(*), min(t.id), count(t.map_index), "
                       "max(t.ended) FROM task_runs t WHERE t.run = ? GROUP BY 1, 2, 3", (reader.run,)).fetchall()
    reader.total = sum(row[3] for row in totals)
    run.all_counts = Counter()
    tasks: dict[str, dict] = {}
    for flow_attempt, task, state, count, first, mapped, ended in totals:
        run.all_counts[state_of(state)] += count
        if flow_attempt != run.attempt:
            continue
        totals_of = tasks.setdefault(task, {"first": first, "counts": Counter(), "mapped": 0, "ended": None})
        totals_of["first"] = min(totals_of["first"], first)
        totals_of["counts"][state_of(state)] += count
        totals_of["mapped"] += mapped
        if ended is not None and (totals_of["ended"] is None or ended > totals_of["ended"]):
            totals_of["ended"] = ended
    small = [task for task, totals_of in tasks.items() if sum(totals_of["counts"].values()) <= lazy_over]
    built: dict[str, list[TaskRun]] = {task: [] for task in small}
    if small:
        for task_run in reader.read("t.run = ? AND t.flow_attempt = ? AND t.task IN (SELECT value FROM json_each(?))",
                                    (reader.run, run.attempt, json.dumps(small))):
            built[task_run.task].append(task_run)
    attempts = {row[0]: row[1:] for row in c.execute(
        # The first attempt's start of each task run (the group's start), and how many attempts came after.
        # (Attempts count from 1: the first is found without a second look but where that one is missing.)
        "SELECT t.task, min(CASE WHEN a.attempt = 1 OR a.attempt = (SELECT min(b.attempt) FROM attempts b "
        "WHERE b.task = a.task) THEN a.started END), count(*) - count(DISTINCT a.task) FROM task_runs t "
        "JOIN attempts a ON a.task = t.id "
        "WHERE t.run = ? AND t.flow_attempt = ? GROUP BY t.task", (reader.run, run.attempt))} if len(small) < len(tasks) else {}
    at = rows.at
    run.stored_groups = []
    for task in sorted(tasks, key=lambda task: tasks[task]["first"]):  # in the order tasks were first created
        if task in built:
            runs = sorted(built[task], key=lambda t: (t.map_index is not None, t.map_index or 0))
            run.stored_groups.append(TaskGroup(task, runs))
        else:
            totals_of = tasks[task]
            started, retries = attempts.get(task, (None, 0))
            run.stored_groups.append(StoredGroup(
                task, _GroupRuns(reader, run.attempt, task, sum(totals_of["counts"].values())), totals_of["counts"],
                totals_of["mapped"] > 0, at(started), at(totals_of["ended"]), retries))
    return run


class StoredRun(FlowRun):
    """An ended run read from the store, its big groups counted (see the module's doc)."""

    reader: "_Reader"
    all_counts: Counter  # every task run's state, of every flow-level attempt
    stored_groups: list[TaskGroup]  # the latest flow-level attempt's

    def groups(self, flow_attempt: int | None = None) -> list[TaskGroup]:
        if flow_attempt is None or flow_attempt == self.attempt:
            return list(self.stored_groups)
        return FlowRun.groups(self, flow_attempt)

    def counts(self) -> Counter:
        return Counter(self.all_counts)

    def failed_task_runs(self) -> list[TaskRun]:
        found = self.reader.read(
            f"t.run = ? AND t.flow_attempt = ? AND (t.state IN ({', '.join('?' * len(_FAILED))}) OR EXISTS "
            "(SELECT 1 FROM attempts a WHERE a.task = t.id AND a.traceback IS NOT NULL))",
            (self.reader.run, self.attempt, *_FAILED))
        return [t for t in found if t.error or any(attempt.traceback for attempt in t.attempts)]


class StoredGroup(TaskGroup):
    """A big group of a stored run: its totals read with SQL, its task runs (`runs`) as they are asked for."""

    def __init__(self, task: str, runs: Sequence[TaskRun], counts: Counter, mapped: bool,
                 started: _dt.datetime | None, ended: _dt.datetime | None, retries: int) -> None:
        self.task, self.runs = task, runs  # type: ignore[assignment]
        self._counts, self._mapped, self._started, self._ended, self._retries = counts, mapped, started, ended, retries

    @property
    def is_mapped(self) -> bool:
        return self._mapped

    @property
    def counts(self) -> Counter:
        return Counter(self._counts)

    @property
    def done(self) -> int:
        return sum(self._counts[state] for state in SUCCESS_STATES)

    @property
    def is_final(self) -> bool:
        return all(state in FINAL_STATES for state, count in self._counts.items() if count)

    @property
    def state(self) -> str:
        return group_state({state for state, count in self._counts.items() if count})

    @property
    def started(self) -> _dt.datetime | None:
        return self._started

    @property
    def ended(self) -> _dt.datetime | None:
        return self._ended if self.runs and self.is_final else None

    @property
    def retries(self) -> int:
        return self._retries


class _Reader:
    """Reads one stored run's task runs on demand, each built once (the same object each time it is asked for)."""

    def __init__(self, connect: Connect, run: int, start: _dt.datetime) -> None:
        self.connect, self.run, self.start = connect, run, start
        self.total = 0  # task runs in the run
        self.lock = threading.RLock()
        self.by_key: dict[int, TaskRun] = {}
        self.task_runs = _TaskRuns(self)

    def read(self, where: str, args: Any) -> list[TaskRun]:
        """The task runs `where` says (a condition on the task_runs row `t`), in the order they were created."""
        with self.connect() as c:
            rows = read_task_rows(c, where, args)
        with self.lock:
            found = []
            for key, task_run in build_task_runs(rows, self.start).items():
                kept = self.by_key.get(key)
                if kept is None:
                    kept = self.by_key[key] = task_run
                    dict.__setitem__(self.task_runs, task_run.id, task_run)
                found.append(kept)
            return found

    def keys(self, where: str, args: Any) -> list[int]:
        with self.connect() as c:
            cursor = c.cursor()
            cursor.row_factory = None  # plain tuples: a big group is 100,000 rows
            return [row[0] for row in cursor.execute(f"SELECT t.id FROM task_runs t WHERE {where}", args)]

    def by_keys(self, keys: list[int]) -> list[TaskRun]:
        """The task runs of these row ids, in this order (those no longer stored left out)."""
        with self.lock:
            missing = [key for key in keys if key not in self.by_key]
        if missing:
            self.read("t.id IN (SELECT value FROM json_each(?))", (json.dumps(missing),))
        with self.lock:
            return [self.by_key[key] for key in keys if key in self.by_key]

    def read_all(self) -> None:
        """Every task run of the run, in `task_runs` in the order they were created."""
        self.read("t.run = ?", (self.run,))
        with self.lock:
            ordered = [self.by_key[key] for key in sorted(self.by_key)]
            dict.clear(self.task_runs)
            dict.update(self.task_runs, ((task_run.id, task_run) for task_run in ordered))


class _TaskRuns(dict):
    """A stored run's task runs by id: those read so far, any other read when asked for by id;
    walking them (keys, values, items, iterating) reads them all first."""

    def __init__(self, reader: _Reader) -> None:
        super().__init__()
        self._reader = reader
        self._whole = False
        self._absent: set[str] = set()

    def get(self, key: Any, default: Any = None) -> Any:
        found = dict.get(self, key)
        if found is None and not self._whole and isinstance(key, str) and key not in self._absent:
            reader = self._reader
            found = next(iter(reader.read("t.task_run_id = ? AND t.run = ?", (key, reader.run))), None)
            if found is None:
                self._absent.add(key)
        return default if found is None else found

    def __getitem__(self, key: Any) -> TaskRun:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def __contains__(self, key: Any) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return dict.__len__(self) if self._whole else self._reader.total

    def whole(self) -> None:
        if not self._whole:
            self._reader.read_all()
            self._whole = True

    def __iter__(self) -> Iterator[str]:
        self.whole()
        return dict.__iter__(self)

    def keys(self) -> Any:
        self.whole()
        return dict.keys(self)

    def values(self) -> Any:
        self.whole()
        return dict.values(self)

    def items(self) -> Any:
        self.whole()
        return dict.items(self)

    def __eq__(self, other: object) -> bool:
        self.whole()
        return dict.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]


class _GroupRuns(Sequence):
    """A big group's task runs in the tree's order (plain calls as created, then mapped children by
    index), read as they are asked for: `runs[200:400]` reads those 200."""

    def __init__(self, reader: _Reader, flow_attempt: int, task: str, total: int) -> None:
        self._reader, self._flow_attempt, self._task, self._total = reader, flow_attempt, task, total
        self._keys: list[int] | None = None

    def _order(self) -> list[int]:
        if self._keys is None:
            self._keys = self._reader.keys(
                "t.run = ? AND t.flow_attempt = ? AND t.task = ? ORDER BY t.map_index IS NOT NULL, t.map_index, t.id",
                (self._reader.run, self._flow_attempt, self._task))
        return self._keys

    def __len__(self) -> int:
        return self._total

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self._reader.by_keys(self._order()[index])
        found = self._reader.by_keys([self._order()[index]])
        if not found:
            raise IndexError(index)
        return found[0]

    def __iter__(self) -> Iterator[TaskRun]:
        for first in range(0, self._total, 2000):
            yield from self[first:first + 2000]
