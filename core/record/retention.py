"""`[project] keep` / `keep_runs`: the store pruned by `serve` and the UI, soon after they start and
then once a day, on a thread of its own (the rows go in one transaction; nothing waits for it)."""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from flows_tui.record.store import Store

logger = logging.getLogger("flows_tui.store")

PRUNE_EVERY_SECONDS = 24 * 3600.0
# The first prune waits this long: a process's first seconds belong to starting it (the UI's paint).
FIRST_PRUNE_AFTER_SECONDS = 10.0


class Retention:
    """Prunes `store` by the project's rules now and then; `say` hears what each prune removed."""

    def __init__(self, store: "Store", keep: _dt.timedelta | None, keep_runs: int | None,
                 say: Callable[[str], None] | None = None, *, first_after: float = FIRST_PRUNE_AFTER_SECONDS,
                 every: float = PRUNE_EVERY_SECONDS) -> None:
        self.store = store
        self.keep = keep
        self.keep_runs = keep_runs
        self.say = say
        self.first_after = first_after
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_project(cls, store: "Store | None", project: object, say: Callable[[str], None] | None = None,
                    **timing: float) -> "Retention | None":
        """The project's retention, started; None when flows.toml asks for none or nothing can be written."""
        keep, keep_runs = getattr(project, "keep", None), getattr(project, "keep_runs", None)
        if store is None or store.read_only is not None or (keep is None and keep_runs is None):
            return None
        retention = cls(store, keep, keep_runs, say, **timing)
        retention.start()
        return retention

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="flows-tui-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        wait = self.first_after
        while not self._stop.wait(wait):
            self.prune_now()
            wait = self.every

    def prune_now(self) -> None:
        try:
            pruned = self.store.prune(self.keep, self.keep_runs)
        except Exception as error:  # a busy or full store: the next day tries again
            message = f"could not prune the run history: {error}"
        else:
            if not pruned.runs:
                return
            message = f"run history ([project] keep / keep_runs): {pruned.describe()}"
        if self.say is None:
            logger.info("%s", message)
            return
        try:
            self.say(message)
        except Exception:  # the UI may be closing
            logger.debug("retention listener failed", exc_info=True)
