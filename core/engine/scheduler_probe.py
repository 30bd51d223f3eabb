"""Whether a Dask scheduler answers at an address, told in one line within a deadline.

`distributed.Client(address, timeout=...)` bounds only the TCP connect: against something
that accepts the connection and never speaks Dask (a port another program listens on, an
HTTP server such as the dashboard's port) it waited for the handshake forever, and a server
that answers in its own protocol made it read a frame length out of that answer ("Unable to
allocate 3.07 EiB"), then print a `Client.__del__` traceback. So before a Client is made,
one connection asks the scheduler who it is, everything under one deadline; what answered
otherwise is named.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit


class NoScheduler(Exception):
    """No Dask scheduler at the address; the message says what was there instead (one line)."""


def probe_scheduler(address: str, timeout: float, connection_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """The scheduler's identity, or NoScheduler within `timeout` seconds (and a moment)."""
    deadline = time.monotonic() + timeout
    if address.startswith("tls://") and not connection_args:
        raise NoScheduler(f"{address} is a TLS address: [cluster.tls] must give ca_file, cert and key")
    host, port = _host_port(address)
    if host is not None and port is not None:
        _tcp_reachable(address, host, port, timeout)
    # What answered, if not Dask, is asked within the time left after Dask's handshake.
    sniff = min(0.5, timeout / 5)
    try:
        return asyncio.run(_identity(address, deadline - sniff, connection_args or {}))
    except NoScheduler:
        raise
    except (asyncio.TimeoutError, TimeoutError):
        problem = f"something accepts connections at {address} but did not answer as a Dask scheduler within " \
                  f"{timeout:g} s"
    except ssl.SSLError as error:
        problem = f"the TLS handshake with {address} failed ({error.reason or error}): is the scheduler there " \
                  "plain tcp:// rather than tls://, or are [cluster.tls]'s certificates the scheduler's?"
    except MemoryError:
        problem = f"something at {address} answered, but not as a Dask scheduler (its reply is not Dask's protocol)"
    except Exception as error:
        problem = _closed_or_other(address, error)
    raise NoScheduler(_with_what_answered(problem, address, host, port, deadline))


async def _identity(address: str, deadline: float, connection_args: dict[str, Any]) -> dict[str, Any]:
    from distributed.comm import connect

    def left() -> float:
        return max(0.01, deadline - time.monotonic())

    comm = await asyncio.wait_for(connect(address, timeout=left(), **connection_args), left())
    try:
        await asyncio.wait_for(comm.write({"op": "identity", "reply": True}), left())
        reply = await asyncio.wait_for(comm.read(), left())
    finally:
        comm.abort()
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind == "Scheduler":
        return reply
    if kind in ("Worker", "Nanny"):
        raise NoScheduler(f"{address} is a Dask {kind.lower()}, not the scheduler: give the scheduler's address "
                          "(its log says `Scheduler at: tcp://...`)")
    raise NoScheduler(f"something at {address} answered, but not as a Dask scheduler")


def _host_port(address: str) -> tuple[str | None, int | None]:
    scheme, _, rest = address.partition("://")
    if scheme not in ("tcp", "tls"):
        return None, None
    try:
        parts = urlsplit(f"//{rest}")
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def _tcp_reachable(address: str, host: str, port: int, timeout: float) -> None:
    """NoScheduler when nothing listens there, or nothing answers at all, by the deadline.

    A refused connection is tried again until then, as Dask does: a scheduler that is
    starting, or restarting on the same address, is waited for.
    """
    deadline = time.monotonic() + timeout
    pause = 0.05
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.01, deadline - time.monotonic())):
                return
        except ConnectionRefusedError:
            if time.monotonic() + pause >= deadline:
                raise NoScheduler(f"nothing listens at {address} (connection refused for {timeout:g} s): is "
                                  "`dask scheduler` running there, on that port?") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
        except socket.gaierror as error:
            raise NoScheduler(f"cannot resolve the host of {address}: {error.strerror or error}") from None
        except (socket.timeout, TimeoutError):
            raise NoScheduler(f"no answer from {address} within {timeout:g} s (a firewall, or no such host?)") from None
        except OSError as error:
            raise NoScheduler(f"cannot connect to {address}: {error.strerror or error}") from None


def _closed_or_other(address: str, error: Exception) -> str:
    from distributed.comm.core import CommClosedError

    if isinstance(error, CommClosedError) or isinstance(error, (ConnectionError, EOFError)):
        hint = ""
        if address.startswith("tcp://"):
            hint = ": if the scheduler uses TLS, its address starts with tls:// and [cluster.tls] gives the certificates"
        return f"something at {address} closed the connection instead of answering as a Dask scheduler{hint}"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"cannot talk to a Dask scheduler at {address}: {type(error).__name__}{': ' + text if text else ''}"


def _with_what_answered(problem: str, address: str, host: str | None, port: int | None, deadline: float) -> str:
    """`problem`, told more precisely when an HTTP server is what answered (the dashboard's port, often)."""
    if host is None or port is None or address.startswith("tls://"):
        return problem
    if _is_http(host, port, max(0.1, deadline - time.monotonic())):
        return (f"an HTTP server answers at {address}, not a Dask scheduler: is that the dashboard's port? "
                "(the scheduler's is usually 8786, the dashboard's 8787)")
    return problem


def _is_http(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"HEAD / HTTP/1.0\r\nHost: " + host.encode("ascii", "replace") + b"\r\n\r\n")
            return sock.recv(5) == b"HTTP/"
    except (OSError, UnicodeError):
        return False
