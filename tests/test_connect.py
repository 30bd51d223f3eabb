"""Attaching never hangs: whatever answers at a wrong address, one line says what, within the deadline."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from conftest import TINY_FLOW, cli, free_port, write_project
from flows_tui.engine.cluster import ClusterChoice, connect
from flows_tui.errors import ClusterError, ConfigError
from flows_tui.project.config import parse_config

FLOW = {"tiny.py": TINY_FLOW}


@pytest.fixture
def http_address():
    """A real HTTP server on 127.0.0.1, as the dashboard's port is."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def silent_address():
    """A port something listens on and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def chatty_address():
    """A port where another protocol greets first (as SSH or a database does)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def greet() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n" * 4)
            conn.close()

    threading.Thread(target=greet, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def _attach_error(address: str, timeout: float = 1.0) -> str:
    with pytest.raises(ClusterError) as raised:
        connect(ClusterChoice(address=address, source="--address", connect_timeout=timeout))
    return str(raised.value)


def test_the_dashboards_http_port_is_named_as_an_http_server(http_address):
    message = _attach_error(http_address)
    assert message.startswith(f"an HTTP server answers at {http_address}, not a Dask scheduler")
    assert "8786" in message and "(address from --address)" in message


def test_a_port_that_never_answers_is_said_at_the_deadline(silent_address):
    message = _attach_error(silent_address)
    assert f"something accepts connections at {silent_address} but did not answer as a Dask scheduler within 1 s" \
        in message


def test_another_protocol_answering_is_not_read_as_dask(chatty_address):
    # Dask read a frame length out of such a greeting: "Unable to allocate 3.07 EiB".
    message = _attach_error(chatty_address)
    assert f"something at {chatty_address} answered, but not as a Dask scheduler" in message


def test_a_closed_port_is_said_at_the_deadline():
    address = f"tcp://127.0.0.1:{free_port()}"
    assert _attach_error(address).startswith(f"nothing listens at {address} (connection refused for 1 s)")


def test_a_tls_address_without_certificates_says_what_is_missing(http_address):
    address = http_address.replace("tcp://", "tls://")
    assert "[cluster.tls] must give ca_file, cert and key" in _attach_error(address)


def test_run_says_it_in_one_line_and_exits_2(tmp_path, http_address):
    project = write_project(tmp_path, FLOW, '[project]\nflows_dir = "flows"\n[cluster]\nconnect_timeout = 1\n')
    result = cli("run", "tiny", "--address", http_address, cwd=project, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: an HTTP server answers at {http_address}, not a Dask scheduler: is that the dashboard's port? "
        "(the scheduler's is usually 8786, the dashboard's 8787) (address from --address)"]
    assert result.stdout == ""


def test_connect_timeout_is_read_from_flows_toml(tmp_path):
    config = parse_config("[cluster]\nconnect_timeout = 2.5\n", path=tmp_path / "flows.toml")
    assert config.cluster.connect_timeout == 2.5
    assert parse_config("", path=tmp_path / "flows.toml").cluster.connect_timeout == 10
    with pytest.raises(ConfigError) as raised:
        parse_config("[cluster]\n\nconnect_timeout = 0\n", path=tmp_path / "flows.toml")
    assert "flows.toml:3" in str(raised.value) and "cluster.connect_timeout" in str(raised.value)
