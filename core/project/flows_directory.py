"""The flows directory kept loaded: its flow files, their last good flows and current errors.

`FlowsDirectory` is what the UI, `serve` and `list --watch` hold. A save that no longer
imports keeps the file's last good flows and exposes the error; fixing it clears the error;
a run in progress keeps the Flow (and code) it started with. Every load or reload that
changed something is described by one `FlowsReloaded`, handed to the subscribers.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from flows_tui.errors import FlowFileError
from flows_tui.flows import Flow
from flows_tui.user_code.imports import forget_modules, is_within
from .flow_files import DuplicateFlow, FlowFile, duplicate_flows, is_flow_file, module_name_for
from .import_probe import fork_server, load_directory, load_flow_files, summarize_directory, summarize_files

log = logging.getLogger("flows_tui.reload")


@dataclass(frozen=True)
class FlowsReloaded:
    """What one load or reload of the flows directory changed; every subscriber gets one per reload."""

    files_added: tuple[Path, ...] = ()
    files_changed: tuple[Path, ...] = ()  # imported again: saved, or a helper module they import was
    files_removed: tuple[Path, ...] = ()
    helpers_changed: tuple[Path, ...] = ()  # saved modules that are no flow files but that flow files import
    flows_added: tuple[str, ...] = ()
    flows_changed: tuple[str, ...] = ()
    flows_removed: tuple[str, ...] = ()
    fixed: tuple[Path, ...] = ()  # files that failed to load before and load now
    errors: tuple[FlowFileError, ...] = ()  # every file's current load error, this reload's or older
    duplicates: tuple[DuplicateFlow, ...] = ()  # all current ones
    seconds: float = 0.0  # from the reload's start to just before the subscribers were called

    @property
    def failed(self) -> tuple[FlowFileError, ...]:
        """The errors of the files this reload imported: a broken save, or a file broken by its helper."""
        imported = {str(path) for path in (*self.files_added, *self.files_changed)}
        return tuple(error for error in self.errors if error.path in imported)

    def document(self) -> dict[str, Any]:
        """One JSON line of `flows-tui list --watch --json`."""
        return {
            "files_added": [str(path) for path in self.files_added],
            "files_changed": [str(path) for path in self.files_changed],
            "files_removed": [str(path) for path in self.files_removed],
            "helpers_changed": [str(path) for path in self.helpers_changed],
            "flows_added": list(self.flows_added),
            "flows_changed": list(self.flows_changed),
            "flows_removed": list(self.flows_removed),
            "fixed": [str(path) for path in self.fixed],
            "errors": [{"file": error.path, "line": error.line, "type": error.error_type, "message": error.reason}
                       for error in self.errors],
            "duplicates": [str(duplicate) for duplicate in self.duplicates],
            "seconds": round(self.seconds, 4),
        }


Subscriber = Callable[[FlowsReloaded], None]



def _resolved(path: Path) -> Path:
    """`path` resolved; a symlink loop stays as it is (its load says what is wrong with it)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()

class FlowsDirectory:
    """The flow files of one folder (or one file), loaded, and reloaded as they change.

    A save that no longer imports keeps the file's last good flows and exposes the error;
    fixing it clears the error. Subscribers are called with a `FlowsReloaded` after each
    load or reload that changed something, on the thread that reloaded (the watcher's).
    Safe to use from several threads: reloads run one at a time, reads see a consistent state.
    """

    def __init__(self, root: Path, *, import_here: bool = True, details: bool = False) -> None:
        """`import_here=False`: the files are imported only in their child processes, and `files`
        hold what those read of their flows (FlowSummary objects, as `list` shows them), not Flows;
        `details`: with each flow's parameter form and plan (the UI's; `RunnableFlows` imports a
        file here when one of its flows is run)."""
        self.root = Path(root).resolve()
        self.import_here = import_here
        self.details = details
        # Where the user's own helper modules live: imports from here are watched and reloaded.
        self.directory = self.root if self.root.suffix != ".py" else self.root.parent
        self._reloading = threading.RLock()  # one load or reload at a time; events leave in order
        self._state = threading.Lock()  # guards the fields below, held only briefly
        self._files: dict[Path, FlowFile] = {}
        self._duplicates: list[DuplicateFlow] = []
        self._subscribers: list[Subscriber] = []
        self._watcher: Any = None
        fork_server().start()  # its Python starts while ours goes on: the first load does not wait for it

    # Reading ------------------------------------------------------------------------------------

    @property
    def files(self) -> list[FlowFile]:
        """Every flow file in path order: its last good flows, and its current error if the last save broke it."""
        with self._state:
            return [self._files[path] for path in sorted(self._files)]

    @property
    def flows(self) -> dict[str, Flow]:
        """Flows by name; of two flows with one name, the first file's (see `duplicates`)."""
        with self._state:
            return _flows_by_name(self._files)

    @property
    def errors(self) -> list[FlowFileError]:
        """Every file's current load error, in path order (its last good flows stay in `flows`)."""
        with self._state:
            return [self._files[path].error for path in sorted(self._files) if self._files[path].error]

    @property
    def duplicates(self) -> list[DuplicateFlow]:
        with self._state:
            return list(self._duplicates)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(event)` after every later load or reload; returns a function that unsubscribes."""
        with self._state:
            self._subscribers = [*self._subscribers, callback]

        def unsubscribe() -> None:
            with self._state:
                self._subscribers = [s for s in self._subscribers if s is not callback]

        return unsubscribe

    # Loading ------------------------------------------------------------------------------------

    def load(self) -> FlowsReloaded:
        """Import every flow file afresh: the first scan (or a full rescan)."""
        started = time.perf_counter()
        with self._reloading:
            before = self._snapshot()
            files = load_directory(self.root) if self.import_here else \
                summarize_directory(self.root, {}, details=self.details)
            loaded = {loaded_file.path: loaded_file for loaded_file in files}
            present = set(loaded)
            event = self._apply(before, loaded, removed=set(before) - present, saved=set(before) & present,
                                started=started)
            self._publish(event)
            return event

    def reload(self, paths: Iterable[Path | str]) -> FlowsReloaded | None:
        """Bring the flows up to date with `paths` that were saved, added, deleted or renamed.

        A path may be a flow file, a helper module, or a folder (renamed or deleted as a
        whole). Reloads the flow files among them, every flow file importing a saved helper
        (directly or through another), and, when a new file appeared, files that failed before
        (the module they missed may be that one). Returns the event published, or None when nothing changed.
        """
        started = time.perf_counter()
        with self._reloading:
            before = self._snapshot()
            touched = self._touched({_resolved(Path(path)) for path in paths}, before)
            if not touched:
                return None
            present = {path for path in touched if is_flow_file(path, self.root) and path.is_file()}
            removed = {path for path in touched & set(before) if path not in present}
            imported = {path for loaded in before.values() for path in loaded.helpers.values()}
            forget_modules(self.directory, touched)
            importlib.invalidate_caches()  # a new file may be a module someone imports
            importers = {path for path, loaded in before.items() if touched & set(loaded.helpers.values())}
            # A broken file is tried again when a file appeared (the module it missed may be that);
            # not at every save of another one: a file that loops at import costs its whole deadline.
            appeared = touched - set(before) - imported
            broken = {path for path, loaded in before.items() if loaded.error is not None} if appeared else set()
            to_load = (present | importers | broken) - removed
            order = sorted(to_load)
            sources = {path: _written(path) for path in order if path in before}
            loaded = dict(zip(order, load_flow_files(order, self.directory, sources=sources) if self.import_here
                              else summarize_files(order, self.directory, {}, sources=sources, details=self.details)))
            helpers = (touched & imported) - set(before) - present
            event = self._apply(before, loaded, removed=removed, saved=(present & set(before)) | importers,
                                helpers=helpers, started=started)
            if not _changed_anything(event):
                return None
            self._publish(event)
            return event

    def _snapshot(self) -> dict[Path, FlowFile]:
        with self._state:
            return dict(self._files)

    def _touched(self, paths: set[Path], before: dict[Path, FlowFile]) -> set[Path]:
        """The .py files `paths` concern: a folder stands for the files known under it and found in it."""
        touched = set()
        known = set(before) | {path for loaded in before.values() for path in loaded.helpers.values()}
        for path in paths:
            if not is_within(str(path), str(self.directory)):
                continue
            if path.suffix == ".py":
                touched.add(path)
                continue
            touched.update(file for file in known if path in file.parents)
            if path.is_dir():
                touched.update(_resolved(file) for file in path.rglob("*.py")
                               if is_within(str(_resolved(file)), str(self.directory)))
        return touched

    def _apply(self, before: dict[Path, FlowFile], loaded: dict[Path, FlowFile], *, removed: set[Path],
               saved: set[Path], helpers: set[Path] = frozenset(), started: float) -> FlowsReloaded:
        """Fold freshly loaded files into the state and describe what changed."""
        after = {path: loaded_file for path, loaded_file in before.items() if path not in removed}
        for path, new in loaded.items():
            old = before.get(path)
            good_before = old is not None and (old.module is not None or old.defined is not None)
            if new.error is not None and good_before:
                # A broken save keeps the last good flows; its helpers join the ones known, so
                # fixing either the file or a helper it imports retries it.
                new = replace(old, error=new.error, helpers={**old.helpers, **new.helpers})
            after[path] = new
        for path in removed:
            sys.modules.pop(module_name_for(path), None)

        changed = []
        for path in sorted(set(loaded) & set(before)):
            old, new = before[path], after[path]
            if path in saved or new.module is not old.module or _error_key(new) != _error_key(old):
                changed.append(path)
        flows_before, flows_after = _flows_by_name(before), _flows_by_name(after)
        duplicates = duplicate_flows(after[path] for path in sorted(after))
        event = FlowsReloaded(
            files_added=tuple(sorted(set(loaded) - set(before))),
            files_changed=tuple(changed),
            files_removed=tuple(sorted(removed & set(before))),
            helpers_changed=tuple(sorted(helpers)),
            flows_added=tuple(name for name in flows_after if name not in flows_before),
            flows_changed=tuple(name for name in flows_after
                                if name in flows_before and flows_after[name] is not flows_before[name]),
            flows_removed=tuple(name for name in flows_before if name not in flows_after),
            fixed=tuple(path for path in changed if before[path].error is not None and after[path].error is None),
            errors=tuple(after[path].error for path in sorted(after) if after[path].error is not None),
            duplicates=tuple(duplicates),
            seconds=time.perf_counter() - started,
        )
        with self._state:
            self._files = after
            self._duplicates = duplicates
        return event

    def _publish(self, event: FlowsReloaded) -> None:
        with self._state:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # a broken subscriber must not stop reloads nor the others
                log.exception("a reload subscriber failed")

    # Watching -----------------------------------------------------------------------------------

    def watch(self, *, debounce_ms: int | None = None, step_ms: int | None = None) -> None:
        """Reload on every save under the directory, from a background thread, until `stop()`.

        Returns once the watch is in place: a save made after it returns is seen. The
        timings default to `watch.DEBOUNCE_MS` and `watch.STEP_MS`.
        """
        from .watch import FlowsWatcher

        with self._state:
            if self._watcher is not None:
                return
            self._watcher = FlowsWatcher(self.directory, self.reload, recursive=self.root == self.directory,
                                         debounce_ms=debounce_ms, step_ms=step_ms)
        self._watcher.start()

    @property
    def watching(self) -> bool:
        """A save made now is seen (the watch is in place)."""
        watcher = self._watcher
        return watcher is not None and watcher.ready

    def stop(self) -> None:
        """Stop watching; returns once the watcher thread has ended (a reload under way finishes first)."""
        with self._state:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()


def _changed_anything(event: FlowsReloaded) -> bool:
    """False for a reload that only retried broken files, which failed again the same way."""
    return bool(event.files_added or event.files_changed or event.files_removed or event.flows_added
                or event.flows_changed or event.flows_removed)


def _error_key(loaded: FlowFile) -> tuple[str, int | None] | None:
    return None if loaded.error is None else (loaded.error.reason, loaded.error.line)


def _flows_by_name(files: dict[Path, FlowFile]) -> dict[str, Flow]:
    flows: dict[str, Flow] = {}
    for path in sorted(files):
        for name, flow in files[path].flows.items():
            flows.setdefault(name, flow)
    return flows


# An editor that saves in place truncates the file, then writes it: a reload can read it
# empty in between, and its flows would vanish for a moment (a UI row, a schedule, a watch
# run "not in the flows directory any more"). A known file that reads empty gets this long
# to be written (a broken one too: its last good flows are still listed); one that stays
# empty was emptied on purpose.
HALF_WRITTEN_WAIT_SECONDS = 0.2


def _written(path: Path) -> bytes | None:
    """The file's bytes, given a moment to be written if they read empty (None: unreadable)."""
    deadline = time.monotonic() + HALF_WRITTEN_WAIT_SECONDS
    while True:
        try:
            source = path.read_bytes()
        except OSError:
            return None  # gone or unreadable: load_flow_file says so
        if source or time.monotonic() >= deadline:
            return source
        time.sleep(0.01)
