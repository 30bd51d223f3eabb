"""The `flows-tui` command line."""

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

from flows_tui.errors import FlowsTuiError, UsageError, closest
from flows_tui.safe_text import plain, visible
from flows_tui.terminal import exit_now, silence_stderr, silence_terminal

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


class CommandError(click.ClickException):
    """A user's error, as every command reports it: one `error:` line on stderr (the text made
    safe for a terminal), exit 2. Commands raise FlowsTuiError; the group turns it into this."""

    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        console = _stderr()
        console.print("[bold red]error:[/] ", end="")
        console.print(visible(self.message), markup=False)


def _store_problem(message: str) -> None:
    """The run store stopped taking a run's history (a full disk): one line when it happens; the run goes on."""
    console = _stderr()
    console.print("[bold red]error:[/] ", end="")
    console.print(visible(message), markup=False)


class _Main(click.Group):
    """`flows-tui [PATH]` starts the UI; a first argument naming a command runs that command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            ctx.meta["flows_tui.path"] = args[0]
            args = args[1:]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlowsTuiError as error:
            raise CommandError(str(error)) from None


def _load_config(config_path: str | None, *, require_env: bool = True, say_warnings: bool = True):
    """flows.toml; a command that runs flows says once what in it is off (a notifier without its ${VAR})."""
    from flows_tui.project.config import load_config

    config = load_config(Path(config_path) if config_path else None, cwd=Path.cwd(), require_env=require_env)
    if config.path is not None:  # where `cluster("NAME")` in a task, on a worker we start, finds the profiles
        os.environ.setdefault("FLOWS_TUI_CONFIG", str(config.path.resolve()))
    if require_env and say_warnings:
        _say_warnings(config.warnings)
    return config


def _say_warnings(warnings: Any) -> None:
    console = _stderr()
    for warning in warnings:
        console.print("[yellow]warning:[/] ", end="")
        console.print(visible(warning), markup=False)


@click.group(cls=_Main, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.option("--address", help="Dask scheduler to attach to (tcp://host:8786).")
@click.option("--cluster", "cluster_profile", metavar="NAME", help="The [clusters.NAME] profile of flows.toml to run on.")
@click.option("--debug", is_flag=True,
              help="Tracebacks keep flows-tui's and Dask's own frames (as FLOWS_TUI_DEBUG=1 does).")
@click.version_option(package_name="flows-tui")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, address: str | None, cluster_profile: str | None,
         debug: bool) -> None:
    """Develop Prefect-style flows locally on Dask: a terminal UI, and headless commands.

    Run without a command to open the UI on PATH (a flows directory or one flow file).
    """
    if debug:  # the environment, so the embedded cluster's worker processes see it too
        from flows_tui.tracebacks import DEBUG_ENV

        os.environ[DEBUG_ENV] = "1"
    ctx.ensure_object(dict)
    ctx.obj.update(config_path=config_path, address=address, cluster_profile=cluster_profile)
    if ctx.invoked_subcommand is not None:
        return  # each command that reads or records runs opens the store, which recovers crashed runs
    path = ctx.meta.get("flows_tui.path")
    config = _load_config(config_path, say_warnings=False)  # the UI shows them
    try:
        from flows_tui.tui.app import run_app
    except ImportError as error:
        raise FlowsTuiError(f"the terminal UI could not start: {error}")
    status = run_app(config, path=path, address=address, cluster=cluster_profile)
    if status > 128:  # SIGTERM or SIGHUP: runs cancelled and recorded, the terminal given back
        exit_now(status)
    raise click.exceptions.Exit(status)


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
    from flows_tui.project.flow_files import find_flow
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
                             on_engine=signals.started, on_connected=signals.connected)
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
    launcher = RunLauncher(choice, config, bus, keep_results=True,
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



def _schedule_states(config: Any) -> dict:
    """What `serve` recorded of each schedule (last due time, paused); empty without a store."""
    from flows_tui.record.store import Store, store_path

    if not store_path(config.project.state_dir).exists():
        return {}
    try:
        return Store.open(config.project.state_dir, read_only_ok=True).schedule_states()
    except FlowsTuiError:
        return {}


def _open_store(config: Any):
    """The state_dir's store (marking runs of dead flows-tui processes Crashed on the way, if it can write)."""
    from flows_tui.record.store import Store, store_path

    if not store_path(config.project.state_dir).exists():
        from flows_tui.project.config import display_path

        raise FlowsTuiError(f"no runs recorded yet in {display_path(config.project.state_dir)} "
                                  "(`flows-tui run FLOW` records one)")
    return Store.open(config.project.state_dir, read_only_ok=True)


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
    from flows_tui.engine.cluster import choose_cluster, connect
    from flows_tui.launch.debug import DebugError, Target, find_task_run, flow_of, input_lines, reach, run_under_debugger
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

    cluster = None
    try:
        cluster = connect(choice)
        where = cluster.address if cluster.local is None else "LocalCluster"
        say(f"debugging {task_run.name} of run {recorded.run_id} ({recorded.flow}) on {where}: running the flow "
            f"again with that run's parameters up to {task_run.name}; upstream results come from the cache or are "
            "computed again; nothing is recorded")
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
        if cluster is not None:
            closing = threading.Thread(target=cluster.close, name="flows-tui-close", daemon=True)
            closing.start()
            closing.join(5)
    raise click.exceptions.Exit(EXIT_OK if completed else EXIT_FAILED)


@main.command(short_help="Run the scheduled flows headless, until stopped.")
@click.option("--grace", type=float, default=30.0, show_default=True, metavar="SECONDS",
              help="On SIGTERM/Ctrl-C, how long running runs may finish before they are cancelled.")
@click.option("--address", help="Dask scheduler to attach to (tcp://host:8786).")
@click.option("--cluster", "cluster_profile", metavar="NAME", help="The [clusters.NAME] profile of flows.toml to run on.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.pass_context
def serve(ctx: click.Context, grace: float, address: str | None, cluster_profile: str | None,
          config_path: str | None) -> None:
    """Run the flows scheduled in flows.toml ([flows.NAME] cron or interval), headless, until stopped."""
    import threading

    from flows_tui.project.catalog import located_in_config
    from flows_tui.engine.cluster import choose_cluster
    from flows_tui.errors import ParameterError
    from flows_tui.project.flows_directory import FlowsDirectory
    from flows_tui.schedule.serve import Service, scheduled_flows, stop_on_signals

    config = _load_config(config_path or ctx.obj.get("config_path"))
    if not config.project.flows_dir.exists():
        raise UsageError(f"flows directory {config.project.flows_dir} does not exist "
                         "(set [project] flows_dir in flows.toml)")
    directory = FlowsDirectory(config.project.flows_dir)
    directory.load()
    try:
        served = scheduled_flows(config, directory.files)
    except ParameterError as error:  # a scheduled run's values all come from flows.toml: name the key
        raise located_in_config(config, directory.flows.get(error.flow or ""), error) from None
    choice = choose_cluster(address or ctx.obj.get("address"), config,
                            profile=cluster_profile or ctx.obj.get("cluster_profile"))
    console = Console(highlight=False, soft_wrap=True)
    for error in directory.errors:
        console.print(visible(f"warning: {error}"), markup=False)
    service = Service(served, config, choice, console=console)

    def reloaded(event: Any) -> None:
        """A save: new code for the next runs (runs in progress keep theirs), new schedules."""
        from flows_tui.project.catalog import reload_lines

        for line in reload_lines(event, directory, with_time=False):
            service.say(line)
        try:
            service.update(scheduled_flows(config, directory.files))
        except FlowsTuiError as error:
            service.say(f"warning: {error}; the schedules stay as they were")

    directory.subscribe(reloaded)
    stop = threading.Event()
    restore = stop_on_signals(stop)
    try:
        directory.watch()
        service.run(stop, grace)
    finally:
        directory.stop()
        restore()


@main.command("list", short_help="The flows: file, parameters, schedule, next run.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON lines: one per flow, one per file that fails to load.")
@click.option("--watch", is_flag=True,
              help="Then keep running: print what each save, new, deleted or broken file changed (Ctrl-C stops).")
@click.pass_context
def list_flows(ctx: click.Context, config_path: str | None, as_json: bool, watch: bool) -> None:
    """List the discovered flows with their file, parameters, schedule and next run.

    A file that fails to load is listed with its error; the others are still listed (exit 0).
    """
    import datetime as _dt

    from flows_tui.project.catalog import flow_entries, stdout_to_stderr
    from flows_tui.project.flows_directory import FlowsDirectory

    config = _load_config(config_path or ctx.obj.get("config_path"), require_env=False)
    directory = config.project.flows_dir
    if not directory.exists():
        raise UsageError(f"flows directory {directory} does not exist (set [project] flows_dir in flows.toml)")
    flows_directory = FlowsDirectory(directory)
    with stdout_to_stderr():
        flows_directory.load()
    entries = flow_entries(config, flows_directory.files, _dt.datetime.now(_dt.timezone.utc), _schedule_states(config))
    if as_json:
        for entry in entries:
            click.echo(json.dumps(entry.document()))
    elif entries:
        Console(highlight=False).print(_flows_table(entries, directory))
    else:
        Console(highlight=False).print(visible(f"no flow files in {directory}"), markup=False)
    if watch:
        _watch(flows_directory, as_json)


def _watch(flows_directory: Any, as_json: bool) -> None:
    """`list --watch`: a line for each reload, as it happens, until Ctrl-C."""
    import threading

    from flows_tui.project.catalog import reload_lines, stdout_to_stderr
    from flows_tui.project.config import display_path

    out = sys.stdout

    def show(event: Any) -> None:
        lines = [json.dumps(event.document())] if as_json else [visible(line) for line in reload_lines(event, flows_directory)]
        for line in lines:
            click.echo(line, file=out)

    flows_directory.subscribe(show)
    # A flow file that prints while it is imported writes to stderr, never between these lines.
    with stdout_to_stderr():
        flows_directory.watch()
        _stderr().print(visible(f"watching {display_path(flows_directory.directory)} for changes (Ctrl-C to stop)"),
                        markup=False)
        forever = threading.Event()
        try:
            while not forever.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            flows_directory.stop()


def _flows_table(entries: list, directory: Path) -> Any:
    """`list` for people: one row per flow; a symbol and a word for the state, so NO_COLOR loses nothing."""
    from rich.table import Table
    from rich.text import Text

    from flows_tui.project.config import display_path

    table = Table(box=None, header_style="bold", padding=(0, 1), title=plain(f"flows in {display_path(directory)}"),
                  title_justify="left")
    # Names stay whole; the rest folds rather than being cut with "…", of no use in 80 columns.
    for column in ("", "flow", "file", "parameters", "schedule", "next run"):
        table.add_column(column, overflow="fold", no_wrap=column in ("", "flow", "file"))
    for entry in entries:
        file = _relative_to(entry.file, directory)
        if entry.error is not None:
            where = f"{file}:{entry.line}" if entry.line else file
            table.add_row(Text("✗ error", style="red"), plain(entry.name or "-", "bold", one_line=True),
                          plain(where, one_line=True), plain(entry.reason or entry.error, "red"), "", "")
            continue
        shown = [f"{name} (required)" if name in entry.required else f"{name}={json.dumps(value)}"
                 for name, value in entry.parameters.items()]
        when = ""
        if entry.next_run is not None:
            when = entry.next_run.strftime("%Y-%m-%d %H:%M:%S %Z" if entry.next_run.second else "%Y-%m-%d %H:%M %Z")
        table.add_row(Text("✓ ok", style="green"), plain(entry.name, "bold", one_line=True), plain(file, one_line=True),
                      plain(", ".join(shown)), plain(entry.schedule or ""), when)
    return table


def _relative_to(file: str, directory: Path) -> str:
    try:
        return str(Path(file).resolve().relative_to(directory))
    except (ValueError, OSError, RuntimeError):  # elsewhere, or a symlink loop
        return file


@main.command(short_help="Check flows.toml and every flow file (exit 2 on problems).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.pass_context
def check(ctx: click.Context, config_path: str | None) -> None:
    """Load flows.toml and every flow file; print each problem as file:line: message (exit 2 if any)."""
    from flows_tui.project.catalog import check_project

    config_path = config_path or ctx.obj.get("config_path")
    report = check_project(Path(config_path) if config_path else None, cwd=Path.cwd())
    _say_warnings(report.warnings)
    for problem in report.problems:
        click.echo(visible(problem))
    if report.problems:
        count = len(report.problems)
        _stderr().print(f"✗ {count} problem{'s' if count != 1 else ''}", style="red")
        raise click.exceptions.Exit(EXIT_USAGE)
    flows, files = report.flows, report.files
    click.echo(f"ok: {flows} flow{'s' if flows != 1 else ''} in {files} file{'s' if files != 1 else ''}")


@main.group("cache", invoke_without_command=True, short_help="Cached task results per flow; `cache clear` removes them.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines: one per flow.")
@click.pass_context
def cache_command(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """Cached task results under state_dir: entries and bytes per flow. `cache clear [FLOW]` removes them."""
    if config_path:
        ctx.obj["config_path"] = config_path
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from flows_tui.cache import cache_directory, cache_entries
    from flows_tui.project.config import display_path
    from flows_tui.record.progress import format_size

    directory = cache_directory(_cache_config(ctx).project.state_dir)
    flows: dict[str, dict[str, Any]] = {}
    for entry in cache_entries(directory):
        summary = flows.setdefault(entry.flow or "?", {"flow": entry.flow, "entries": 0, "bytes": 0, "expired": 0})
        summary["entries"] += 1
        summary["bytes"] += entry.size
        summary["expired"] += entry.expired
    if as_json:
        for summary in flows.values():
            click.echo(json.dumps(summary))
        return
    console = Console(highlight=False)
    if not flows:
        console.print(visible(f"no cached results in {display_path(directory)}"), markup=False)
        return
    table = Table(box=None, header_style="bold", padding=(0, 1), title=plain(f"cached results in {display_path(directory)}"),
                  title_justify="left")
    for column in ("flow", "entries", "size", "expired"):
        table.add_column(column, justify="left" if column == "flow" else "right")
    for name, summary in sorted(flows.items()):
        table.add_row(plain(name, one_line=True), str(summary["entries"]), format_size(summary["bytes"]), str(summary["expired"]))
    console.print(table)


@cache_command.command("clear")
@click.argument("flow_name", metavar="[FLOW]", required=False)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="flows.toml to use.")
@click.pass_context
def cache_clear(ctx: click.Context, flow_name: str | None, config_path: str | None) -> None:
    """Remove cached task results (all, or FLOW's only); print how many and how many bytes."""
    from flows_tui.cache import cache_directory, cache_entries, clear_cache
    from flows_tui.record.progress import format_size

    if config_path:
        ctx.obj["config_path"] = config_path
    directory = cache_directory(_cache_config(ctx).project.state_dir)
    count, size = clear_cache(directory, flow_name)
    of = f" of flow {flow_name!r}" if flow_name else ""
    click.echo(f"removed {count} cached result{'s' if count != 1 else ''}{of} ({format_size(size)})")
    if flow_name and not count:
        close = closest(flow_name, {entry.flow for entry in cache_entries(directory) if entry.flow})
        if close:
            _stderr().print(f"no cached results of a flow named {flow_name!r}; did you mean {close[0]!r}?",
                            markup=False)


def _cache_config(ctx: click.Context) -> Any:
    return _load_config(ctx.obj.get("config_path"), require_env=False)



@main.command(short_help="Start a project: flows/riders.py and a commented flows.toml.")
@click.argument("directory", default=".", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Start a project in DIRECTORY (default: here): flows/riders.py and a commented flows.toml."""
    from flows_tui.project.scaffold import create_project

    folder = Path(directory)
    written = create_project(folder)
    console = Console(highlight=False, soft_wrap=True)
    for path in written:
        console.print(f"wrote {visible(path)}", markup=False)
    go = "" if folder.resolve() == Path.cwd().resolve() else f"cd {visible(folder)}, then "
    console.print(f"next: {go}`flows-tui run riders` (headless) or `flows-tui` (the UI)", markup=False)


from . import history as _history  # noqa: E402,F401 - registers `runs`, `logs` and `cancel` on `main`
from . import prune as _prune  # noqa: E402,F401 - registers `flows-tui prune` on `main`
