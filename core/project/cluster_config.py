"""flows.toml's clusters: `[cluster]` (the default: an embedded LocalCluster, or an address)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .toml_reader import Reader

# How long reaching a scheduler (or starting a cluster) may take before the user is told why not.
DEFAULT_CONNECT_TIMEOUT = 10.0
ADDRESS_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


@dataclass(frozen=True)
class TLSConfig:
    ca_file: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterConfig:
    address: str | None = None
    n_workers: int | None = None
    threads_per_worker: int | None = None
    processes: bool = True
    dashboard_address: str = ":0"
    memory_limit: str | None = None
    tls: TLSConfig | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT


def read_address(reader: Reader, data: dict, keys: tuple[str, ...]) -> str | None:
    """`address` of a table, `tcp://` added when no scheme is given."""
    address = reader.get(data, keys, "address", str)
    if address is None:
        return None
    if "://" not in address:
        address = f"tcp://{address}"
    scheme = address.split("://", 1)[0]
    if scheme not in ADDRESS_SCHEMES or not address.split("://", 1)[1]:
        raise reader.error(keys + ("address",), f"expected an address like tcp://host:8786, got {address!r}")
    return address


def read_tls(reader: Reader, data: dict, keys: tuple[str, ...], root: Path) -> TLSConfig | None:
    if "tls" not in data:
        return None
    tls_keys = keys + ("tls",)
    table = reader.table(data["tls"], tls_keys, {"ca_file", "cert", "key"})
    paths = {}
    for name in ("ca_file", "cert", "key"):
        value = reader.get(table, tls_keys, name, str)
        if value is None:
            raise reader.error(tls_keys, f"missing key {name!r} (TLS needs ca_file, cert and key)")
        paths[name] = (root / value).resolve()
    return TLSConfig(**paths)


def read_seconds(reader: Reader, data: dict, keys: tuple[str, ...], name: str, default: float | None) -> float | None:
    """A number of seconds above 0."""
    value = reader.get(data, keys, name, (int, float), default)
    if value is None:
        return None
    if isinstance(value, bool) or not value > 0:
        reader.report(reader.error(keys + (name,), f"{name} must be a number of seconds above 0, got {value!r}"))
        return default
    return float(value)


def read_cluster(reader: Reader, data: dict, root: Path) -> ClusterConfig:
    keys = ("cluster",)
    reader.table(data, keys, {"address", "n_workers", "threads_per_worker", "processes", "dashboard_address",
                              "memory_limit", "tls", "connect_timeout"})
    memory_limit = reader.get(data, keys, "memory_limit", (str, int))
    return ClusterConfig(
        address=read_address(reader, data, keys),
        n_workers=reader.positive(data, keys, "n_workers"),
        threads_per_worker=reader.positive(data, keys, "threads_per_worker"),
        processes=reader.get(data, keys, "processes", bool, True),
        dashboard_address=reader.get(data, keys, "dashboard_address", str, ":0"),
        memory_limit=None if memory_limit is None else str(memory_limit),
        tls=read_tls(reader, data, keys, root),
        connect_timeout=read_seconds(reader, data, keys, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
    )
