"""flows.toml's clusters: `[cluster]` (the default: an embedded LocalCluster, or an address) and
`[clusters.NAME]` profiles (an address, or any importable Cluster class with kwargs and scaling)."""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows_tui.errors import ConfigError

from .toml_reader import Reader, display_path, parse_interval

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
    shared: bool = True  # use a running serve's embedded cluster instead of starting one (launch.shared_cluster)


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
                              "memory_limit", "tls", "connect_timeout", "shared"})
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
        shared=reader.get(data, keys, "shared", bool, True),
    )


# [clusters.NAME]: named profiles ------------------------------------------------------------------

PROFILE_KEYS = {"address", "tls", "class", "kwargs", "adapt", "scale", "reuse", "idle_timeout", "connect_timeout"}
ADAPT_KEYS = {"minimum", "maximum", "wait_count", "interval", "target_duration", "minimum_cores", "maximum_cores",
              "minimum_memory", "maximum_memory"}


@dataclass(frozen=True)
class ClusterProfile:
    """One `[clusters.NAME]`: a scheduler's address, or a Cluster class started with kwargs."""

    name: str
    address: str | None = None
    tls: TLSConfig | None = None
    cluster_class: str | None = None  # "package.module.ClusterClass"
    kwargs: dict = field(default_factory=dict)
    adapt: dict | None = None
    scale: int | None = None
    reuse: bool = False
    idle_timeout: float | None = None
    connect_timeout: float | None = None  # None: [cluster]'s
    path: str | None = field(default=None, compare=False)  # flows.toml as the user names it
    lines: dict = field(default_factory=dict, compare=False)  # key → line, for errors found when it is used

    def error(self, key: str | None, message: str) -> ConfigError:
        keys = f"clusters.{self.name}" + (f".{key}" if key else "")
        line = (self.lines.get(key) or self.lines.get(key.split(".")[0])) if key else None
        return ConfigError(message, path=self.path, key=keys, line=line or self.lines.get(None))


def read_profiles(reader: Reader, data: Any, root: Path) -> dict[str, ClusterProfile]:
    if not isinstance(data, dict):
        raise reader.error(("clusters",), f"expected tables [clusters.NAME], got {data!r}")
    profiles = {}
    for name, table in data.items():
        profile = reader.section(lambda: _profile(reader, name, table, root), lambda: None)
        if profile is not None:
            profiles[name] = profile
    return profiles


def _profile(reader: Reader, name: str, data: Any, root: Path) -> ClusterProfile:
    keys = ("clusters", name)
    reader.table(data, keys, PROFILE_KEYS)
    address = read_address(reader, data, keys)
    cluster_class = reader.get(data, keys, "class", str)
    if (address is None) == (cluster_class is None):
        raise reader.error(keys, f"cluster profile {name!r} needs either `address` (a scheduler that runs) or "
                                 "`class` (a Cluster class to start, e.g. \"dask_jobqueue.SLURMCluster\")")
    if address is not None:
        for key in ("kwargs", "adapt", "scale"):
            if key in data:
                raise reader.error(keys + (key,), f"`{key}` is for a profile with `class`, not `address`")
    kwargs = reader.get(data, keys, "kwargs", dict, {})
    kwargs = {key: _expand(reader, value, keys + ("kwargs", key)) for key, value in kwargs.items()}
    adapt = None
    if "adapt" in data:
        adapt = dict(reader.table(reader.get(data, keys, "adapt", dict, {}), keys + ("adapt",), ADAPT_KEYS))
        low, high = adapt.get("minimum", 0), adapt.get("maximum")
        if not isinstance(low, int) or isinstance(low, bool) or low < 0 or \
                (high is not None and (not isinstance(high, int) or isinstance(high, bool) or high < low)):
            raise reader.error(keys + ("adapt",), f"adapt needs whole numbers 0 <= minimum <= maximum, got {adapt!r}")
    scale = reader.get(data, keys, "scale", int)
    if scale is not None and scale < 0:
        raise reader.error(keys + ("scale",), f"scale must be a number of workers, 0 or more, got {scale}")
    if adapt is not None and scale is not None:
        raise reader.error(keys + ("scale",), "give either adapt or scale, not both")
    reuse = reader.get(data, keys, "reuse", bool, False)
    idle = None
    if "idle_timeout" in data:
        raw = reader.get(data, keys, "idle_timeout", (str, int, float))
        try:
            idle = parse_interval(raw).total_seconds() if raw is not None else None
        except ValueError:
            raise reader.error(keys + ("idle_timeout",), f"invalid idle_timeout {raw!r} (e.g. \"10m\", \"1h\")") from None
    lines = {key: reader.lines.find(keys + (key,)) for key in data}
    lines.update({f"kwargs.{key}": reader.lines.find(keys + ("kwargs", key)) for key in kwargs})
    lines[None] = reader.lines.find(keys)
    return ClusterProfile(name, address=address, tls=read_tls(reader, data, keys, root), cluster_class=cluster_class,
                          kwargs=kwargs, adapt=adapt, scale=scale, reuse=reuse, idle_timeout=idle,
                          connect_timeout=read_seconds(reader, data, keys, "connect_timeout", None),
                          path=display_path(reader.path), lines=lines)


def _expand(reader: Reader, value: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return reader.expand(value, keys)
    if isinstance(value, list):
        return [_expand(reader, item, keys) for item in value]
    if isinstance(value, dict):
        return {k: _expand(reader, v, keys + (k,)) for k, v in value.items()}
    return value


def cluster_class(profile: ClusterProfile) -> Any:
    """The profile's Cluster class, imported; ConfigError naming `class` and its line when it cannot be."""
    return import_cluster_class(profile.cluster_class, lambda message: profile.error("class", message))


def import_cluster_class(path: Any, error: Any) -> Any:
    if not isinstance(path, str):
        return path
    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise error(f"expected a class path like \"dask_jobqueue.SLURMCluster\", got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as problem:
        hint = " (pip install dask-jobqueue, or flows-tui[jobqueue])" if module_name.startswith("dask_jobqueue") else ""
        raise error(f"cannot import {module_name}: {problem}{hint}") from None
    except Exception as problem:
        raise error(f"importing {module_name} failed: {type(problem).__name__}: {problem}") from None
    found = getattr(module, name, None)
    if not isinstance(found, type):
        raise error(f"{module_name} has no class {name!r}")
    return found


def check_kwargs(cls: type, kwargs: dict, error: Any) -> None:
    """Each of `kwargs` is a parameter of the class, where its signature says so (a `**kwargs` takes
    anything; then only a near miss of a named parameter is taken for a typo)."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    named = {n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for key in kwargs:
        if key in named:
            continue
        close = difflib.get_close_matches(key, named, n=1, cutoff=0.8)
        if close or not open_ended:
            hint = f"; did you mean {close[0]!r}?" if close else f" (its parameters: {', '.join(sorted(named))})"
            raise error(key, f"{cls.__name__} has no parameter {key!r}{hint}")


def check_profile(profile: ClusterProfile) -> None:
    """ConfigError unless the profile's class imports and takes its kwargs; nothing is started."""
    if profile.cluster_class is None:
        return
    cls = cluster_class(profile)
    check_kwargs(cls, profile.kwargs, lambda key, message: profile.error(f"kwargs.{key}", message))
