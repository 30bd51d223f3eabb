"""A memo of objects unpickled from bytes (imports no pickler: a flow file's `from flows_tui import task` pays nothing)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable


class Unpickled:
    """Objects unpickled from bytes, once per distinct bytes: a worker gets the same task's (or task
    call's) bytes for every task run of a map. The last `size` are kept."""

    def __init__(self, load: Callable[[bytes], Any], size: int = 256) -> None:
        self._load = load
        self._size = size
        self._kept: "OrderedDict[bytes, Any]" = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, blob: bytes) -> Any:
        with self._lock:
            found = self._kept.get(blob)
            if found is not None:
                self._kept.move_to_end(blob)
                return found
        found = self._load(blob)
        with self._lock:
            self._kept[blob] = found
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return found

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
