"""Attaching to a Dask scheduler that already runs: a real `dask scheduler` and `dask worker`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import cli, free_port, start_process, stop_processes, wait_for_worker, wait_until

pytestmark = pytest.mark.attach

FLOW = """
    import logging
    import os
    from flows_tui import flow, task, get_run_logger

    def where():
        return os.getcwd()

    @task
    def worker_cwd():
        return where()

    @task
    def square(x):
        get_run_logger().info("squaring %d", x)
        logging.getLogger("remote.helper").warning("helper saw %d", x)
        print("printed", x)
        return x * x

    @flow(log_prints=True)
    def remote(n: int = 4):
        return {"cwd": worker_cwd(), "squares": sum(square.map(range(n)).result())}
"""


def _project(tmp_path: Path, toml: str = "", name: str = "project") -> Path:
    project = tmp_path / name
    (project / "flows").mkdir(parents=True)
    (project / "flows" / "remote_flow.py").write_text(textwrap.dedent(FLOW))
    (project / "flows.toml").write_text(textwrap.dedent(toml))
    return project


def test_run_attaches_by_address_and_the_code_runs_on_the_remote_worker(tmp_path, scheduler, worker_dir):
    project = _project(tmp_path)
    result = cli("run", "remote", "--address", scheduler, "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["state"] == "Completed"
    assert len(document["tasks"]) == 5


def test_logs_from_remote_workers_reach_the_store_tagged_with_their_task_run(tmp_path, scheduler):
    project = _project(tmp_path)
    result = cli("run", "remote", "--address", scheduler, "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    logs = cli("logs", document["run_id"], "--task", "square", "--json", cwd=project)
    assert logs.returncode == 0, logs.stderr
    lines = [json.loads(line) for line in logs.stdout.splitlines()]
    ids = {t["name"]: t["id"] for t in document["tasks"]}
    for x in range(4):
        mine = [(line["level"], line["message"]) for line in lines if line["task_id"] == ids[f"square-{x}"]]
        assert mine == [("INFO", f"squaring {x}"), ("WARNING", f"helper saw {x}"), ("INFO", f"printed {x}")]


def test_the_task_ran_in_the_worker_process_that_cannot_import_the_flow_file(tmp_path, scheduler, worker_dir):
    from flows_tui.engine.flow_run import run_flow
    from flows_tui.project.flow_files import load_flow_file
    from distributed import Client

    project = _project(tmp_path)
    loaded = load_flow_file(project / "flows" / "remote_flow.py")
    with Client(scheduler, timeout=10) as client:
        engine = run_flow(loaded.flows["remote"], {"n": 4}, client=client)
    assert engine.final.name == "Completed"
    assert engine.return_value == {"cwd": str(worker_dir), "squares": 0 + 1 + 4 + 9}


def test_dask_scheduler_address_from_the_environment_is_used(tmp_path, scheduler):
    project = _project(tmp_path)
    result = cli("run", "remote", "--json", cwd=project, env={"DASK_SCHEDULER_ADDRESS": scheduler})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "Completed"


def test_cluster_address_from_flows_toml_is_used(tmp_path, scheduler):
    project = _project(tmp_path, f"""
        [project]
        flows_dir = "flows"
        [cluster]
        address = "{scheduler}"
    """)
    result = cli("run", "remote", cwd=project)
    assert result.returncode == 0, result.stderr
    assert scheduler in result.stdout
    # `runs` names the address it ran on, host and port on one line (an 80-column table).
    table = cli("runs", cwd=project, env={"COLUMNS": "80"}).stdout.splitlines()
    assert table[1].endswith(scheduler.removeprefix("tcp://")), table


def test_an_unreachable_address_is_one_clear_message_within_seconds(tmp_path):
    project = _project(tmp_path)
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = cli("run", "remote", "--address", address, cwd=project)
    assert result.returncode == 2
    assert time.monotonic() - started < 25
    assert address in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make certificates")
def test_a_tls_scheduler_is_reached_with_the_certificates_from_flows_toml(tmp_path, worker_dir):
    certs = tmp_path / "certs"
    certs.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=certs, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=flows-tui-test-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
            "-subj", "/CN=127.0.0.1")
    (certs / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "node.pem", "-days", "1", "-extfile", "ext.cnf")
    tls = ["--tls-ca-file", str(certs / "ca.pem"), "--tls-cert", str(certs / "node.pem"),
           "--tls-key", str(certs / "node.key")]
    port = free_port()
    address = f"tls://127.0.0.1:{port}"
    sched = start_process([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                    str(port), "--protocol", "tls", "--no-dashboard", *tls], worker_dir, tmp_path / "scheduler.log")
    work = start_process([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                   "--no-dashboard", "--host", "127.0.0.1", *tls], worker_dir, tmp_path / "worker.log")
    try:
        from distributed import Security

        wait_for_worker(address, Security(tls_ca_file=str(certs / "ca.pem"), tls_client_cert=str(certs / "node.pem"),
                                           tls_client_key=str(certs / "node.key"), require_encryption=True))
        project = _project(tmp_path, f"""
            [project]
            flows_dir = "flows"
            [cluster]
            address = "{address}"
            [cluster.tls]
            ca_file = "{certs / 'ca.pem'}"
            cert = "{certs / 'node.pem'}"
            key = "{certs / 'node.key'}"
        """)
        result = cli("run", "remote", "--json", cwd=project)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["state"] == "Completed"
        plain = _project(tmp_path, f'[cluster]\naddress = "{address}"\n', name="plain")
        without_tls = cli("run", "remote", cwd=plain, timeout=60)
        assert without_tls.returncode == 2 and address in without_tls.stderr
        assert "[cluster.tls] must give ca_file, cert and key" in without_tls.stderr
        # The TLS scheduler's address written as plain tcp://: a line that points at tls://, not a hang.
        as_tcp = address.replace("tls://", "tcp://")
        mismatch = cli("run", "remote", "--address", as_tcp, cwd=plain, timeout=60)
        assert mismatch.returncode == 2 and "Traceback" not in mismatch.stderr
        assert f"something at {as_tcp} closed the connection instead of answering as a Dask scheduler: if the " \
               "scheduler uses TLS, its address starts with tls://" in mismatch.stderr
    finally:
        stop_processes(work, sched)


def test_a_scheduler_without_workers_is_said_and_the_run_goes_on_once_one_joins(tmp_path, worker_dir):
    # As after a scheduler restart: a `dask worker` exits with its scheduler, the new one has none.
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    sched = start_process([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                    str(port), "--no-dashboard"], worker_dir, tmp_path / "scheduler.log")
    processes = [sched]
    try:
        wait_until(lambda: "Scheduler at:" in (tmp_path / "scheduler.log").read_text(), timeout=60,
                   message="the scheduler listening")
        project = _project(tmp_path)
        output = tmp_path / "run.log"
        run = start_process([sys.executable, "-m", "flows_tui.cli", "run", "remote", "--address", address], project, output)
        processes.append(run)
        wait_until(lambda: f"no Dask worker is connected to the scheduler at {address}" in output.read_text(),
                   timeout=60, message="the run saying it waits for a worker")
        assert f"start one with `dask worker {address}`" in output.read_text()
        assert run.poll() is None  # waiting, not failed
        processes.append(start_process([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "2",
                                 "--no-dashboard", "--host", "127.0.0.1"], worker_dir, tmp_path / "worker.log"))
        assert run.wait(60) == 0, output.read_text()
        assert "Completed flow run 'remote'" in output.read_text()
    finally:
        stop_processes(*reversed(processes))


def test_a_flows_dask_task_runner_address_is_where_it_runs(tmp_path, scheduler, worker_dir):
    project = _project(tmp_path, '[project]\nflows_dir = "flows"\n')
    (project / "flows" / "runner_flow.py").write_text(textwrap.dedent(f"""
        import os
        from flows_tui import DaskTaskRunner, flow, task

        @task
        def worker_cwd():
            return os.getcwd()

        @flow(task_runner=DaskTaskRunner(address="{scheduler}"), log_prints=True)
        def placed():
            print("ran in", worker_cwd())
    """))
    result = cli("run", "placed", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0].endswith(f" on {scheduler}, from the task_runner of flow 'placed'")
    document = json.loads(result.stdout)
    assert document["state"] == "Completed"
    logs = cli("logs", document["run_id"], "--json", cwd=project)
    assert f"ran in {worker_dir}" in [json.loads(line)["message"] for line in logs.stdout.splitlines()]
