"""The flows a long-lived process runs, imported in it one file at a time, when one is run.

The UI lists its flows from what child processes read of them (`FlowsDirectory(import_here=False,
details=True)`: names, errors, parameter forms, plans): no flow file is imported in its own
process to be listed, so none can end it, hang it or leave a thread in it. Running a flow imports
its file here (checked in a child first, as `run FLOW` does), from the bytes its listing was read
from, and again only once that file, or a helper module it imports, was saved since.
"""

from __future__ import annotations

import threading
from pathlib import Path

from flows_tui.errors import FlowsTuiError
from flows_tui.flows import Flow

from .flow_files import FlowFile, FlowSummary, defined_flows
from .flows_directory import FlowsDirectory
from .import_probe import installed_imports, load_flow_files
from .import_server import preload


class RunnableFlows:
    """Flows of `directory` (its listing holds FlowSummary objects) as Flow objects a run can take."""

    def __init__(self, directory: FlowsDirectory) -> None:
        self.directory = directory
        self._lock = threading.Lock()  # one import at a time; a second asker of the same file waits for it
        # path → (the listing's flows the import was made for, the file imported here)
        self._imported: dict[Path, tuple[dict, FlowFile]] = {}

    def named(self, name: str) -> Flow:
        """The flow the directory lists as `name` (of two, the first file's, as `flows` has it)."""
        summary = self.directory.flows.get(name)
        if summary is None:
            raise FlowsTuiError(f"flow {name} is not in the flows directory any more")
        return self.flow_for(summary)

    def flow_for(self, summary: FlowSummary | Flow) -> Flow:
        """The Flow `summary` was read from, its file imported here if it was not since its last save.

        Raises FlowsTuiError (a FlowFileError with the file and line) when the file does not import
        here, or no longer defines the flow.
        """
        if isinstance(summary, Flow):  # a directory that imports its files here lists Flows already
            return summary
        listed = self._file_of(summary)
        if listed is None:  # a later reload replaced it: the flow of that name as listed now
            return self.named(summary.name)
        with self._lock:
            cached = self._imported.get(listed.path)
            if cached is not None and cached[0] is listed.flows:
                loaded = cached[1]
            else:
                # The bytes the listing was read from: a save that broke the file since keeps its last good flows.
                sources = {listed.path: listed.source} if listed.source is not None else None
                if listed.source is not None:
                    # The installed libraries it imports first, outside the file's import deadline: its
                    # child had them from the import server, this process not yet (dask.dataframe took
                    # 4.7 s to import on a loaded 2-core machine, and ran the file past 10 s).
                    preload(installed_imports({listed.path: listed.source}, self.directory.directory))
                loaded = load_flow_files([listed.path], self.directory.directory, sources=sources)[0]
                if loaded.error is not None:
                    raise loaded.error
                self._imported[listed.path] = (listed.flows, loaded)
        flow = next((flow for flow in defined_flows(loaded)
                     if flow.name == summary.name and flow.fn.__name__ == summary.function), None)
        if flow is None:
            flow = loaded.flows.get(summary.name)
        if flow is None:
            raise FlowsTuiError(f"flow {summary.name} is not in {listed.path.name} any more")
        return flow

    def imported(self) -> list[Path]:
        """The flow files imported in this process so far."""
        with self._lock:
            return sorted(self._imported)

    def _file_of(self, summary: FlowSummary) -> FlowFile | None:
        for listed in self.directory.files:
            if any(flow is summary for flow in listed.flows.values()):
                return listed
        return None
