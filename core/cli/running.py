"""`flows-tui run` (once, or again on every save with --watch) and `flows-tui debug`."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from flows_tui.errors import FlowsTuiError, UsageError
from flows_tui.safe_text import visible
from flows_tui.terminal import exit_now, silence_stderr, silence_terminal

from . import EXIT_OK, EXIT_FAILED, _load_config, _open_store, _stderr, _store_problem, main


@main.command(short_help="Run FLOW headless; exit 0 Completed, 1 failed, 2 bad input.")
@click.argument("flow_spec", metavar="FLOW")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="A flow parameter; repeat for several. Converted to the parameter's type hint.")
@click.option("--address", help="Dask scheduler to attach to (tcp://host:8786).")
@click.option("--cluster", "cluster_profile", metavar="NAME", help="The [clusters.NAME] profile of flows.toml to run on.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document when the run ends.")
@click.option("--rerun", "rerun_id", metavar="RUN_ID",
              help="Re-run RUN_ID (a run of FLOW) with its parameters; what it completed is reused from the "
                   "cache where the tasks have a cache policy, everything else runs again.")
@click.option("--watch", is_flag=True,
              help="Run, then run again on every save of the flow's file or of a helper it imports, reusing "
                   "the results of unchanged tasks from cluster memory (Ctrl-C stops, exit 0).")
@click.pass_context
def run(ctx: click.Context, flow_spec: str, params: tuple[str, ...], address: str | None, cluster_profile: str | None,
        config_path: str | None, as_json: bool, rerun_id: str | None, watch: bool) -> None:
    """Run FLOW (a flow's name or file.py:function) headless; exit 0 Completed, 1 failed, 2 bad input."""
    from flows_tui.record import events as ev
    from flows_tui.project.catalog import flow_config_for, located_in_config
    from flows_tui.engine.cluster import choose_cluster
    from flows_tui.errors import ParameterError
    from flows_tui.parameters import parse_assignments
    from flows_tui.record.progress import Progress, print_summary, run_document
    from flows_tui.project.flow_search import find_flow
    from flows_tui.launch.runner import execute, recording
    from flows_tui.record.store import StoreNotWritable

    address = address or ctx.obj.get("address")
    config_path = config_path or ctx.obj.get("config_path")
    previous = None
    out = _stdout_for_json() if as_json else None
    config = _load_config(config_path)
    flow, loaded = find_flow(flow_spec, config.project.flows_dir)
    flow_config = flow_config_for(config, flow)
    values: dict[str, Any] = dict(flow_config.parameters) if flow_config else {}
    if rerun_id is not None:
        previous = _run_to_rerun(config, rerun_id, flow.name)
        values = dict(previous.parameters)
    typed = parse_assignments(params)
    values.update(typed)
    try:
        parameters = flow.validate(values, from_text=set(typed))
    except ParameterError as error:
        if rerun_id is None and flow_config is not None and error.parameter in flow_config.parameters \
                and error.parameter not in typed:
            raise located_in_config(config, flow, error) from None  # flows.toml gave the bad value
        raise
    choice = choose_cluster(address, config, profile=cluster_profile or ctx.obj.get("cluster_profile"), flow=flow)

    console = Console(stderr=as_json, highlight=False, soft_wrap=True)
    live = console.is_terminal and not os.environ.get("CI")
    if previous is not None:
        # A new process holds none of that run's results: only the persistent cache can give them back.
        console.print(f"re-running run {previous.run_id} of {flow.name!r} with its parameters: results it "
                      "completed are reused only from the cache (tasks with a cache policy); the other tasks "
                      "run again", markup=False)
    if watch:
        single_file = ":" in flow_spec and flow_spec.split(":", 1)[0].endswith(".py")
        _watch_run(flow.name, loaded.path if single_file else config.project.flows_dir, values, set(typed),
                   choice, config, console, as_json=as_json, live=live, out=out)
    bus = ev.EventBus()
    progress = Progress(console, live=live)
    if choice.source != "default":  # the first line says where the run goes and why
        progress.origin = f"from {choice.source}"
    unsubscribe = bus.subscribe(progress.handle, name="progress")
    signals = _CancelOnSignals()
    try:
        with recording(bus, config) as store, progress, signals:
            store.on_problem = _store_problem
            engine = execute(flow, parameters, choice, config, bus=bus, file=str(loaded.path),
                             on_engine=lambda engine: (progress.follow(engine), signals.started(engine)),
                             on_connected=signals.connected, shared=True,
                             say=lambda text: console.print(visible(text), markup=False))
    except StoreNotWritable as error:  # raised by `recording` before the run starts
        unsubscribe()
        raise FlowsTuiError(f"{error}; nothing was run")
    except FlowsTuiError:
        unsubscribe()
        raise
    except KeyboardInterrupt:  # before the run started (the cluster starting or connecting): nothing to record
        unsubscribe()
        _leave_interrupted(128 + (signals.early or signal.SIGINT))
    unsubscribe()
    flow_run = engine.flow_run
    try:
        print_summary(console, flow_run, said=progress.said_failed)
        if previous is not None:
            again = _completed_before_and_run_again(previous, flow_run)
            if again:
                console.print(visible(f"{len(again)} task run(s) that run {previous.run_id} had completed ran again "
                                      f"(no cache policy, or no cached result): {', '.join(again[:8])}"
                                      + (f" and {len(again) - 8} more" if len(again) > 8 else "")), markup=False)
        if as_json:
            click.echo(json.dumps(run_document(flow_run)), file=out)
    finally:
        if signals.signum is not None:  # the output written (or its terminal gone): leave now
            signals.leave()
    raise click.exceptions.Exit(EXIT_OK if flow_run.state in ("Completed", "Cached") else EXIT_FAILED)


class _CancelOnSignals:
    """`run`: Ctrl-C, SIGTERM and SIGHUP (the terminal or SSH session closed) cancel the run at once,
    recorded Cancelled with the reason, and the command exits 128 + the signal's number once the
    run is recorded. Ctrl-C twice stops waiting for that.

    Before, SIGTERM and SIGHUP killed the process and left the run "Running" until a later
    command called it Crashed, and Ctrl-C took seconds, or forever behind a task that never returns.
    """

    REASONS = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)",
               signal.SIGHUP: "terminal closed (SIGHUP)"}

    def __init__(self) -> None:
        self.signum: int | None = None
        self.early: int | None = None  # the signal that came before the run started
        self._engine: Any = None
        self._cluster: Any = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_CancelOnSignals":
        for signum in self.REASONS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def leave(self) -> None:
        """Exit now, 128 + the signal's number as shells do: the run is recorded, the output written."""
        exit_now(128 + (self.signum or 0))

    def connected(self, cluster: Any) -> None:
        self._cluster = cluster

    def started(self, engine: Any) -> None:
        self._engine = engine
        if self.signum is not None:  # the signal came as the run started
            self._cancel()

    def _handle(self, signum: int, frame: Any) -> None:
        if self._engine is None:  # before the run started: nothing to record
            self.early = signum
            raise KeyboardInterrupt
        if self.signum is not None:  # a closed terminal may signal twice; Ctrl-C twice stops waiting
            if signum == self.signum == signal.SIGINT:
                self.leave()
            return
        self.signum = signum
        if self._cluster is not None:  # the run is recorded Cancelled at once; a task that goes on may not hold us
            self._cluster.close_timeout = 0.5
        if signum == signal.SIGHUP:
            silence_terminal()  # writing to a closed terminal fails: the rest goes nowhere
        self._cancel()

    def _cancel(self) -> None:
        # On a thread of its own: the handler may have interrupted the main thread inside the engine's locks.
        threading.Thread(target=self._engine.cancel, args=(self.REASONS[self.signum],), name="flows-tui-cancel",
                         daemon=True).start()


def _leave_interrupted(status: int) -> None:
    """Ctrl-C (or SIGTERM) while the cluster starts or connects: say so and end now. A cluster still
    starting is left to end with the process: its worker processes are stopped, and Dask's complaints
    about being cut short (a nanny that failed to start, a close at exit) stay off the terminal."""
    _stderr().print("interrupted")
    silence_stderr()
    exit_now(status)


def _stdout_for_json() -> Any:
    """`run --json`: stdout carries the JSON document alone. Whatever else writes to it, from this
    point on (a flow file printing as it is imported, the flow body, a library, C code, a worker
    thread), goes to stderr instead: file descriptor 1 becomes stderr, and the document is written
    to the original stdout, returned here."""
    sys.stdout.flush()
    document_out = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="backslashreplace")
    os.dup2(2, 1)
    return document_out


def _run_to_rerun(config: Any, prefix: str, flow_name: str) -> Any:
    """The stored run `--rerun` names (a unique prefix is enough); it must be a run of the flow asked for."""
    from flows_tui.project.flow_files import normalize_name

    store = _open_store(config)
    previous = store.load_run(store.find_run(prefix))
    if normalize_name(previous.flow) != normalize_name(flow_name):
        raise UsageError(f"run {previous.run_id} is a run of flow {previous.flow!r}, not of {flow_name!r}")
    return previous


def _completed_before_and_run_again(previous: Any, flow_run: Any) -> list[str]:
    """Task runs (matched by name) that succeeded in `previous` and executed again in `flow_run`."""
    succeeded = {t.name for t in previous.current_task_runs() if t.state in ("Completed", "Cached")}
    return [t.name for t in flow_run.current_task_runs() if t.name in succeeded and t.attempts]


def _watch_run(flow_name: str, root: Path, values: dict[str, Any], typed: set[str], choice: Any, config: Any,
               console: Console, *, as_json: bool, live: bool, out: Any = None) -> None:
    """`run --watch`: run now and after every save that changes the flow, until Ctrl-C (exit 0).

    One cluster and one session for all the runs: each re-run reuses, from cluster memory,
    the results of the tasks whose code and inputs did not change.
    """
    import threading

    from flows_tui.launch.launcher import RunLauncher
    from flows_tui.launch.runner import recording
    from flows_tui.launch.watch_run import WatchRun
    from flows_tui.project.catalog import stdout_to_stderr
    from flows_tui.project.config import display_path
    from flows_tui.project.flows_directory import FlowsDirectory
    from flows_tui.record import events as ev
    from flows_tui.record.progress import Progress, print_summary, run_document

    directory = FlowsDirectory(root)
    with stdout_to_stderr():  # a flow file that prints while imported must not mix with --json lines
        directory.load()
    bus = ev.EventBus()
    launcher = RunLauncher(choice, config, bus, keep_results=True, shared=True,
                           say=lambda text: console.print(visible(text), markup=False))
    try:
        launcher.connect()
    except KeyboardInterrupt:
        launcher.close()
        _leave_interrupted(130)
    waiting = f"watching {display_path(directory.directory)} for changes to {flow_name!r} (Ctrl-C to stop)"

    def run_once(flow: Any) -> None:
        try:
            parameters = flow.validate(values, from_text=typed)
        except FlowsTuiError as error:  # the saved signature no longer accepts them: wait for the next save
            console.print(visible(f"not run: {error}"), markup=False)
            return
        progress = Progress(console, live=live)
        unsubscribe = bus.subscribe(progress.handle, name="progress")
        try:
            with progress:
                # A lost scheduler (the run before ended Crashed) is connected to again first.
                engine = launcher.launch(flow, parameters, file=flow.file, reuse=True)
                bus.flush()
        except FlowsTuiError as error:
            console.print(visible(f"not run: {error}"), markup=False)
            return
        finally:
            unsubscribe()
        print_summary(console, engine.flow_run, said=progress.said_failed)
        if as_json:
            click.echo(json.dumps(run_document(engine.flow_run)), file=out)
        if not watch.stopped:  # after a Ctrl-C the run ends cancelled and nothing is watched any more
            console.print(visible(waiting), markup=False)

    def show_reload(event: Any) -> None:
        for error in event.failed:
            where = f"{error.path}:{error.line}" if error.line else error.path
            console.print(visible(f"✗ {where}: {error.reason} (the last good version stays)"), markup=False)

    def missing(name: str) -> None:
        console.print(f"flow {name!r} is not in {display_path(directory.directory)} any more; "
                      "waiting for it to come back", markup=False)

    watch = WatchRun(directory, flow_name, run_once, on_missing=missing)
    try:
        with recording(bus, config) as store:
            store.on_problem = _store_problem
            directory.subscribe(show_reload)
            directory.watch()
            watch.start()
            forever = threading.Event()
            try:
                while not forever.wait(3600):
                    pass
            except KeyboardInterrupt:
                watch.stop(timeout=0)
                if launcher.cluster is not None:  # a task that goes on after the cancel must not hold the exit
                    launcher.cluster.close_timeout = 0.5
                launcher.cancel_all("interrupted (Ctrl-C)")
                try:
                    watch.stop(timeout=30)  # the cancelled run ends and is recorded as Cancelled
                except KeyboardInterrupt:
                    pass
    finally:
        directory.stop()
        launcher.close()
    raise click.exceptions.Exit(EXIT_OK)


@main.command(short_help="Run one task run again here, under the debugger.")
@click.argument("run_id", metavar="RUN_ID")
@click.argument("task_run_spec", metavar="TASK_RUN")
@click.option("--inputs", "inputs_only", is_flag=True,
              help="Print the inputs the task run would get (type, size, a short repr) without running it.")
@click.option("--address", help="Dask scheduler to attach to (tcp://host:8786).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.pass_context
def debug(ctx: click.Context, run_id: str, task_run_spec: str, inputs_only: bool, address: str | None,
          config_path: str | None) -> None:
    """Run TASK_RUN of RUN_ID (a name like clean-3, or an id prefix) here, under the debugger, with its inputs.

    The flow runs again with the run's parameters up to that task run (nothing is recorded);
    its upstream results come from the cache or are computed again. On an exception the
    debugger opens at the failing frame (pdb, or PYTHONBREAKPOINT's: ipdb, pudb). Exit 0 when
    the task returned, 1 when it raised or could not be reached, 2 for a bad RUN_ID or TASK_RUN.
    """
    import threading

    from flows_tui.cache import cache_directory
    from flows_tui.engine.cluster import choose_cluster
    from flows_tui.launch.debug import DebugError, Target, find_task_run, flow_of, input_lines, reach, run_under_debugger
    from flows_tui.launch.launcher import RunLauncher, where
    from flows_tui.record import events as ev
    from flows_tui.safe_text import visible

    config = _load_config(config_path or ctx.obj.get("config_path"), require_env=False)
    store = _open_store(config)
    recorded = store.load_run(store.find_run(run_id))
    task_run = find_task_run(recorded, task_run_spec)
    flow = flow_of(recorded, config.project.flows_dir)
    parameters = flow.validate(recorded.parameters)
    choice = choose_cluster(address or ctx.obj.get("address"), config)
    err = _stderr()

    def say(text: str) -> None:
        err.print(visible(text), markup=False)

    launcher = RunLauncher(choice, config, ev.EventBus())  # nothing is recorded: the bus goes nowhere
    try:
        cluster = launcher.connect()
        say(f"debugging {task_run.name} of run {recorded.run_id} ({recorded.flow}) on {where(cluster)}: running the "
            f"flow again with that run's parameters up to {task_run.name}; upstream results come from the cache or "
            "are computed again; nothing is recorded")
        try:
            reached = reach(flow, parameters, recorded.run_id, Target.of(recorded, task_run), client=cluster.client,
                            cache_dir=cache_directory(config.project.state_dir), log_level=config.project.log_level,
                            say=say)
        except DebugError as error:
            say(f"error: {error}")
            raise click.exceptions.Exit(EXIT_FAILED)
        for line in input_lines(reached):
            click.echo(line)
        if inputs_only:
            return
        completed = run_under_debugger(reached, log_level=config.project.log_level)
    except KeyboardInterrupt:
        err.print("interrupted")
        exit_now(130)  # an upstream task still running on a thread worker would hold the exit until it returns
    finally:
        # A task still running on a thread worker (Ctrl-C during its upstream) would hold the close until
        # it returns: it gets a moment, then ends with the process.
        closing = threading.Thread(target=launcher.close, name="flows-tui-close", daemon=True)
        closing.start()
        closing.join(5)
    raise click.exceptions.Exit(EXIT_OK if completed else EXIT_FAILED)
