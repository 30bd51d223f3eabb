"""A store not created yet: the UI opened on a folder to look creates nothing in it.

Until the first thing this process records (a run, a schedule's pause), or until another
process (`flows-tui run`, `serve`) creates the store, it reads as an empty store; every read
looks for the file first, so the UI's tail of the journal picks up another process's runs as
soon as that process has created it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from flows_tui.project.config import display_path

from . import writes
from .database import Store
from .errors import StoreError, StoreNotWritable
from .schema import STORE_NAME, create


class DeferredStore(Store):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.waiting = True  # no file yet: reads are empty, the first write creates it
        self._taking = threading.Lock()

    @classmethod
    def for_state_dir(cls, state_dir: Path) -> Store:
        """The store of `state_dir`: opened if it exists, else one that waits for its file.

        StoreNotWritable at once when the state_dir could not be created (as `Store.open` would say)."""
        if (state_dir / STORE_NAME).exists():
            return Store.open(state_dir)
        existing = next(folder for folder in (state_dir, *state_dir.parents) if folder.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            raise StoreNotWritable(f"cannot create the state directory {display_path(state_dir)}: "
                                   f"{display_path(existing)} is not writable (set [project] state_dir in "
                                   "flows.toml to a directory that can be written)")
        return cls(state_dir / STORE_NAME)

    def _connect(self) -> sqlite3.Connection:
        if self.waiting and self.path.exists():
            self._take_file()
        if not self.waiting:
            return super()._connect()
        connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        create(connection)
        connection.row_factory = sqlite3.Row
        return connection

    def _take_file(self) -> None:
        """The file is there (another process created it, or this one did): opened as `Store.open` does
        (read-only if it cannot be written). Readers on other threads wait until it is ready."""
        with self._taking:
            if not self.waiting:
                return
            try:
                with contextlib.closing(Store._connect(self)) as connection:
                    self._migrate(connection)
                    self._check_writable(connection)
            except StoreNotWritable as error:
                self._open_read_only(error)
            self.waiting = False
        self.recover()

    def _create(self) -> None:
        if not self.waiting:
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as error:
            raise StoreNotWritable(f"cannot create the run store {display_path(self.path)}: "
                                   f"{error.strerror or error}") from None
        self._take_file()

    # Whatever writes creates the file first.

    def record(self, batch: list) -> None:
        if not any(type(event) in writes.WRITERS for event in batch):
            return  # nothing that is stored
        try:
            self._create()
        except StoreError as error:
            self.failure = error
            self._report(f"runs are not recorded: {error}")
            return
        super().record(batch)

    def record_due(self, *args: Any, **kwargs: Any) -> None:
        self._create()
        super().record_due(*args, **kwargs)

    def set_paused(self, *args: Any, **kwargs: Any) -> None:
        self._create()
        super().set_paused(*args, **kwargs)

    def ask(self, *args: Any, **kwargs: Any) -> int:
        self._create()
        return super().ask(*args, **kwargs)

    def answer(self, *args: Any, **kwargs: Any) -> None:
        self._create()
        super().answer(*args, **kwargs)
