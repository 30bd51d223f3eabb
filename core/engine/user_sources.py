"""A worker plugin giving every worker the user's sources, so its tracebacks show their lines.

A file the worker cannot read at its path (a remote worker, or one started elsewhere) is put
in `linecache` under that path. Kept apart from `flows_tui.tracebacks` so that formatting a
traceback, and `import flows_tui`, do not import Dask.
"""

from __future__ import annotations

import hashlib
import linecache
import os
import socket
import weakref
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from flows_tui import tracebacks

PLUGIN_NAME = "flows-tui-sources"


class UserSources(WorkerPlugin):
    """Gives a worker the client's project folder, debug switch and the source of the user's files.

    A file the worker cannot read at its path (a remote worker, or one started elsewhere)
    is put in `linecache` under that path, so tracebacks formatted there show its lines.
    """

    idempotent = False  # a newer version of the files replaces the one registered before

    def __init__(self, sources: dict[str, str], root: str, debug: bool) -> None:
        self.sources = sources
        self.root = root
        self.debug = debug
        self.client_process = (socket.gethostname(), os.getpid())

    def setup(self, worker: Any = None) -> None:
        # Envelopes move through their own serializer (values as raw Dask moves them): a worker
        # must have it before it receives one. Registering on import is not enough: a worker
        # process spawned from a script that imported the engine before Dask never registered
        # it, and pickled every result whole (a copy on each side; 10 MB took 2x raw Dask).
        from .outcome import register_outcome_serializer

        register_outcome_serializer()
        if (socket.gethostname(), os.getpid()) != self.client_process:  # threads in the client's own process read its own
            tracebacks.adopt_client_settings(self.root, self.debug)
        for path, text in self.sources.items():
            if not os.path.exists(path):
                linecache.cache[path] = (len(text), None, text.splitlines(True), path)


_shared: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def share_sources(client: Any, sources: dict[str, str]) -> None:
    """Register `UserSources` on `client`'s cluster unless the same files were given to it already."""
    root, debug = os.getcwd(), tracebacks.debug_enabled()
    digest = hashlib.sha256(repr((sorted(sources.items()), root, debug)).encode()).hexdigest()
    if _shared.get(client) == digest:
        return
    try:
        client.register_plugin(UserSources(sources, root, debug), name=PLUGIN_NAME)
    except Exception:  # a lost scheduler is the run's to report; tracebacks only lose their lines
        return
    _shared[client] = digest
