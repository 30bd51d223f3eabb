"""The run store: everything runs produced, in SQLite under `state_dir`.

The store is the bus's journal: each batch of events is committed before any
subscriber sees it, so a line on screen is a line on disk. SQLite in WAL mode lets
several flows-tui processes (a TUI and a `serve`) share one state_dir: each write is
one short `BEGIN IMMEDIATE` transaction, readers never block writers.

A store that cannot be written (a read-only state_dir) is refused before a run starts
(StoreNotWritable), or opened read-only where only reading is needed. A write that fails
mid-run (a full disk) rolls back whole: what was committed stays intact and only the rest of
that run's history is missing, said once (see `record`).

Each run records the process that owns it. A run still in flight whose owner is gone
(flows-tui was killed) is marked Crashed by the next flows-tui command that opens the
store.

Every transaction also appends its events to the journal, which any process tails from the last id
it read (`journal`; `flows_tui.record.tail`): other processes' runs reach a UI as its own do.

The package: the tables and their migrations (`schema`), what goes wrong in a user's words
(`errors`), which process owns a run (`owners`), how events are written (`writes`), the
queries (`reading`): a run's rows read back as its tree or its events (`run_rows`), a big past
run opened with its groups counted and its task runs read as shown (`opened`), log lines as
`logs --json` prints them (`log_json`); and the Store that opens, records and recovers (`database`).
"""

from .database import Store
from .errors import StoreError, StoreNotWritable
from .rows import RunSummary, ScheduleState, StoredLine
from .schema import MIGRATIONS, SCHEMA_VERSION, STORE_NAME, store_path

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "STORE_NAME", "RunSummary", "ScheduleState", "Store", "StoreError",
           "StoreNotWritable", "StoredLine", "store_path"]
