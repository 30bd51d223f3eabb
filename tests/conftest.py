"""Shared fixtures: real Dask clusters, run helpers, deadlines instead of sleeps."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from flows_tui.record.events import EventBus
from flows_tui.engine.flow_run import run_flow
from flows_tui.project.flow_files import load_flow_file

ROOT = Path(__file__).resolve().parent.parent


# What tests/reliability measured, collected from each test's report (under pytest-xdist the
# tests run in worker processes; their reports, user_properties included, reach this one).
_FIGURES: dict[str, dict[str, object]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        for key, value in report.user_properties:
            if key == "reliability figure":
                name, figure = value
                _FIGURES.setdefault(report.nodeid.rpartition("::")[2], {})[name] = figure


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if not _FIGURES:
        return
    full = os.environ.get("FLOWS_TUI_RELIABILITY", "").lower() == "full"
    terminalreporter.section("reliability figures (" + ("full size" if full else "reduced size; "
                             "FLOWS_TUI_RELIABILITY=full for the README's sizes") + ")")
    for test, values in _FIGURES.items():
        terminalreporter.write_line(test)
        for name, value in values.items():
            terminalreporter.write_line(f"    {name}: {value}")
    path = config.getoption("--reliability-figures")
    if path:
        Path(path).write_text(json.dumps(_FIGURES, indent=2, default=str) + "\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failure's report keeps text a test's hostile input put there (a lone surrogate from a
    latin-1 file name) in a form pytest-xdist can send: surrogates escaped."""
    report = yield
    if report.longrepr is not None and not _encodable(str(report.longrepr)):
        report.longrepr = _escaped(str(report.longrepr))
    report.sections = [(title, _escaped(body)) for title, body in report.sections]
    return report


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def pytest_configure(config: pytest.Config) -> None:
    """flows-tui's modules compiled once, before any test: the suite starts hundreds of Pythons
    (`flows-tui` commands, worker processes, the import server) that each import them, and where
    PYTHONDONTWRITEBYTECODE is set none of them would write what it compiled for the next one
    (about half a second of CPU in each process)."""
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller did it already
        return
    import compileall
    import importlib.util

    for package in ("flows_tui", "flows_tui.tui"):  # the code imported, wherever it is installed
        for folder in importlib.util.find_spec(package).submodule_search_locations:
            compileall.compile_dir(folder, quiet=2, workers=1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reliability-figures", metavar="PATH", default=None,
                     help="write the figures tests/reliability measured to PATH as JSON")


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02, message: str = "") -> Any:
    """Poll `condition` until it is truthy; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or condition}")
        time.sleep(interval)


@contextlib.contextmanager
def local_client(*, processes: bool, threads_per_worker: int, n_workers: int = 2):
    """A client of a fresh LocalCluster on this machine, closed afterwards."""
    from distributed import Client, LocalCluster

    from flows_tui.engine.cluster import _restarts_outlast_lost_worker_timeout, _short_debug_logs

    _short_debug_logs()  # Dask's settings as flows-tui's embedded clusters have them
    _restarts_outlast_lost_worker_timeout()
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                           dashboard_address=":0", silence_logs=logging.CRITICAL)
    client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="session")
def thread_client():
    """A LocalCluster of threads, shared by the tests that do not need separate processes."""
    with local_client(processes=False, threads_per_worker=2) as client:
        yield client


@pytest.fixture(scope="session")
def process_client():
    """A LocalCluster of worker processes: pickling, worker death and data movement are real here."""
    with local_client(processes=True, threads_per_worker=1) as client:
        yield client


class Recorder:
    """Collects every event of a run from the bus, as any observer would."""

    def __init__(self) -> None:
        self.events: list = []

    def __call__(self, batch: list) -> None:
        self.events.extend(batch)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def log_messages(self) -> list[str]:
        from flows_tui.record.events import LogLines

        return [line.message for e in self.of(LogLines) for line in e.lines]


@pytest.fixture
def run(thread_client):
    """Run a flow on the shared thread cluster; returns (engine, recorder)."""

    def go(flow, client=None, **parameters):
        bus = EventBus()
        recorder = Recorder()
        bus.subscribe(recorder, name="test")
        bound = flow.signature.bind(**parameters)
        bound.apply_defaults()
        engine = run_flow(flow, dict(bound.arguments), client=client or thread_client, bus=bus)
        assert bus.flush(10)
        return engine, recorder

    return go


@pytest.fixture
def ran(tmp_path) -> Path:
    """A folder where the flows of a test leave one file per task execution."""
    directory = tmp_path / "ran"
    directory.mkdir()
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120,
        **options: Any) -> subprocess.CompletedProcess:
    """Run the installed `flows-tui` command as a user would (`options` go to subprocess.run)."""
    environment = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    environment.update({"NO_COLOR": "1", "CI": "1", **(env or {})})
    return subprocess.run([sys.executable, "-m", "flows_tui.cli", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout, **options)


# A flows.toml for tests that run `flows-tui` commands: the flows in ./flows, a small thread cluster.
THREAD_CLUSTER_TOML = """
[project]
flows_dir = "flows"
[cluster]
n_workers = 1
threads_per_worker = 2
processes = false
"""


# The same with the embedded cluster users get by default: worker processes.
PROCESS_CLUSTER_TOML = """
[project]
flows_dir = "flows"
[cluster]
n_workers = 2
threads_per_worker = 1
processes = true
"""


# The smallest flow that runs a task: for tests about where and how a run starts, not what it does.
TINY_FLOW = """
    from flows_tui import flow, task

    @task
    def one():
        return 1

    @flow
    def tiny():
        return one()
"""


def write_project(root: Path, files: dict[str, str], toml: str = THREAD_CLUSTER_TOML) -> Path:
    """A project as a user lays it out: flows.toml and flows/NAME.py (sources dedented)."""
    (root / "flows").mkdir(exist_ok=True)
    for name, source in files.items():
        (root / "flows" / name).write_text(textwrap.dedent(source))
    (root / "flows.toml").write_text(toml)
    return root


def load_flows(tmp_path: Path, source: str, name: str = "user_flows.py"):
    """`source` (dedented) saved as tmp_path/NAME and loaded as a flow file; it must load."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    loaded = load_flow_file(path)
    assert loaded.error is None, loaded.error
    return loaded


# A real `dask scheduler` and `dask worker`, started as a user would -------------------------------

def start_process(args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`args` in a process group of its own (a `dask worker`'s nanny and worker stop together);
    `env`: variables set for it on top of ours."""
    handle = log.open("w")
    return subprocess.Popen(args, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **(env or {})})


def stop_processes(*processes: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM to each process group, SIGKILL to what is left after `grace` seconds: a test's
    scheduler and workers are gone when it ends, without waiting for Dask's graceful close."""
    import signal

    def signal_group(process: subprocess.Popen, number: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, number)

    for process in processes:
        signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        signal_group(process, signal.SIGKILL)
        process.wait(10)


def wait_for_worker(address: str, security=None) -> None:
    from distributed import Client

    def ready():
        try:
            with Client(address, timeout=2, security=security) as client:
                return len(client.scheduler_info(n_workers=-1)["workers"]) >= 1
        except OSError:
            return False

    wait_until(ready, timeout=60, interval=0.3, message=f"a worker at {address}")


@pytest.fixture(scope="module")
def worker_dir(tmp_path_factory) -> Path:
    """The worker runs far from the project and the flow files: code must travel by value."""
    return tmp_path_factory.mktemp("elsewhere")


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory, worker_dir):
    """A real `dask scheduler` and one `dask worker`, shared by a module's tests (each runs its
    own project in its own folder; starting the pair takes seconds on a loaded machine)."""
    logs = tmp_path_factory.mktemp("scheduler")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    sched = start_process([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                    str(port), "--no-dashboard"], worker_dir, logs / "scheduler.log")
    work = start_process([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "2",
                   "--no-dashboard", "--host", "127.0.0.1"], worker_dir, logs / "worker.log")
    try:
        wait_for_worker(address)
        yield address
    finally:
        stop_processes(work, sched)


# Prefect's own tests, ported (tests/prefect/): they call flows from plain Python, as Prefect
# users do. One thread LocalCluster serves them all (DASK_SCHEDULER_ADDRESS, Dask's own
# convention, points every flow call at it); each test runs in its own directory, so the
# store and cached results of one test are not another's. (Here, not in a conftest of their
# own: two conftest modules outside packages share one module name.)
PREFECT_TESTS = ROOT / "tests" / "prefect"


@pytest.fixture(scope="session")
def prefect_cluster_address():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=4, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(autouse=True)
def _ported_prefect_test(request):
    if request.node.path.parent != PREFECT_TESTS:
        yield
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", request.getfixturevalue("prefect_cluster_address"))
    monkeypatch.chdir(request.getfixturevalue("tmp_path"))
    yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The ported Prefect tests that fail today are expected to, strictly: one that starts passing
    fails the suite until its entry in tests/prefect/xfails.py is removed."""
    ported = [item for item in items if item.path.parent == PREFECT_TESTS]
    if not ported:
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location("prefect_xfails", PREFECT_TESTS / "xfails.py")
    xfails = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(xfails)
    for item in ported:
        reason = xfails.XFAIL.get(f"{item.path.name}::{item.nodeid.split('::', 1)[1]}")
        if reason is not None:
            # A test whose outcome depends on the machine (a race within milliseconds, the number of
            # cores) is not run: it would pass or fail by chance, and either way says nothing.
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason, run=not reason.startswith("not run")))
