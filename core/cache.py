"""Cached task results: their keys, and their files under `state_dir/cache/`.

A key is made on both sides of the cluster. The engine computes, once per task and
before submitting, what only the client can compute cheaply: the code of the task and
of the user's helpers it reaches (`flows_tui.task_source`). The worker, once upstream
values have arrived, hashes the inputs (`hash_inputs`), asks the task's policy for the
key, and reads or writes the result file itself (`look_up`, `store`): results never pass
through the process driving the flow.

Keys do not depend on where inputs come from: a policy's `compute_key` hashes whatever
`inputs` it is handed. A later in-memory "session" reuse can therefore key a task run on
the client without running anything, by handing it the literal arguments with each
upstream replaced by that upstream's own key (its lineage) and the same `task_source`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import time
import types
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

from flows_tui.user_code.pickling import dispatch_table_by_name
from flows_tui.user_code.task_source import PRIMITIVES, code_fingerprint, is_user_module

CACHE_DIR_NAME = "cache"
ENTRY_SUFFIX = ".result"
_FORMAT = 1  # bump when an entry's layout changes; other versions read as misses


def cache_directory(state_dir: Path) -> Path:
    return state_dir / CACHE_DIR_NAME


class UnhashableInput(ValueError):
    """An input has no hash that is the same in every process: the task run is not cached."""


# Hashing inputs ---------------------------------------------------------------------------------

class _PortablePickler(pickle.Pickler):
    """Pickles the user's objects so the bytes are equal in every process.

    cloudpickle sends the user's classes by value with a per-process id, so Dask's tokenizer
    gives an instance of an Enum or dataclass from a flow file a different hash in each
    process; here the user's classes and functions are named instead, and sets are sorted.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Instances of the user's classes reduce to their class, which persistent_id names.
        self.dispatch_table = dispatch_table_by_name()

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, type) and is_user_module(obj.__module__):
            return ("class", obj.__qualname__)
        if isinstance(obj, types.FunctionType) and is_user_module(obj.__module__):
            return ("function", obj.__qualname__, code_fingerprint(obj.__code__))
        if type(obj) in (set, frozenset):
            return (type(obj).__name__, tuple(sorted(stable_token(item) for item in obj)))
        return None


def _portable(value: Any) -> Any:
    """`value` with what Dask would hash differently in each process replaced by stable stand-ins."""
    kind = type(value)
    if kind in PRIMITIVES:
        return value
    if kind is list or kind is tuple:
        return kind(_portable(item) for item in value)
    if kind is dict:
        return {_portable_key(key): _portable(item) for key, item in value.items()}
    if kind is set or kind is frozenset:
        # A set iterates in hash order, which for strings differs from process to process.
        return (kind.__name__, sorted((_portable_key(item) for item in value), key=repr))
    user_callable = isinstance(value, (type, types.FunctionType)) and is_user_module(value.__module__)
    if user_callable or is_user_module(getattr(kind, "__module__", None)):
        digests = {_portable_pickle(value) for _ in range(2)}
        if len(digests) > 1:  # as Dask checks: an object that pickles differently each time has no hash
            raise UnhashableInput(f"{_type_name(value)} pickles differently each time")
        return ("user object", digests.pop())
    return value  # Dask's tokenizer knows it (NumPy, pandas, Dask collections, dates, paths) or pickles it


def _portable_pickle(value: Any) -> str:
    buffer = io.BytesIO()
    _PortablePickler(buffer, protocol=5).dump(value)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def _portable_key(value: Any) -> Any:
    return value if type(value) in PRIMITIVES else stable_token(value)


def stable_token(value: Any) -> str:
    """A hash of `value` that is equal in every process; UnhashableInput when there is none."""
    from dask.base import tokenize

    try:
        return tokenize(_portable(value), ensure_deterministic=True)
    except UnhashableInput:
        raise
    except Exception as error:  # TokenizationError, an unpicklable object, a recursive structure
        raise UnhashableInput(f"{_type_name(value)} cannot be hashed deterministically") from error


def _type_name(value: Any) -> str:
    """The value's type as the user knows it: flow files' private module names left out."""
    kind = type(value)
    return kind.__qualname__ if is_user_module(kind.__module__) else f"{kind.__module__}.{kind.__qualname__}"


def hash_inputs(values: dict[str, Any], *, what: str = "input") -> str:
    """One hash of named values; UnhashableInput names the first that has none."""
    tokens = []
    for name, value in values.items():
        try:
            tokens.append((name, stable_token(value)))
        except UnhashableInput as error:
            # What to do about it, as Prefect's message says (locks, files, connections have no hash).
            advice = f" (leave it out: cache_policy=INPUTS - {name!r}, or a cache_key_fn; or cache_policy=NO_CACHE)" \
                if what == "input" else ""
            raise UnhashableInput(f"{what} {name!r}: {error}{advice}") from None
    return hash_key_parts(sorted(tokens))


def hash_key_parts(parts: list) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


# What the worker needs, and what policies see -----------------------------------------------------

@dataclass(frozen=True)
class CacheSpec:
    """How one task caches in one flow run; built by the engine, carried to the worker in TaskCall."""

    directory: str
    flow: str
    task_source: str | None = None  # None when the policy does not read it
    flow_parameters: dict[str, Any] | None = None
    refresh: bool = False
    expiration: float | None = None  # seconds a stored result stays usable; None: forever


@dataclass
class CacheKeyContext:
    """The task run as a policy or `cache_key_fn(context, parameters)` sees it (Prefect's task run context)."""

    task: Any
    task_run: Any  # .id, .flow_run_id, .name, .map_index, as Prefect's TaskRun
    parameters: dict[str, Any]
    task_source: str | None = None

    @property
    def task_run_id(self) -> str:
        return self.task_run.id

    @property
    def run_id(self) -> str:
        return self.task_run.flow_run_id


@dataclass
class Lookup:
    """A task run looked up in the cache: found (`hit`), or where its result is to be written."""

    path: Path | None = None  # None: this task run is not cached
    header: dict[str, Any] = field(default_factory=dict)  # who stores the entry: flow, task, run
    expiration: float | None = None
    warning: str | None = None
    hit: bool = False
    value: Any = None
    stored: dict[str, Any] = field(default_factory=dict)  # the header of the entry found

    def describe_hit(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.stored.get("created", 0)))
        return f"result cached by run {self.stored.get('run_id')} at {when}"


def look_up(spec: CacheSpec, policy: Any, context: CacheKeyContext) -> Lookup:
    """The key of this task run and, unless refreshing, its stored result. Never raises."""
    try:
        # By keyword, as Prefect calls it: a custom policy may rely on the names.
        key = policy.compute_key(task_ctx=context, inputs=context.parameters,
                                 flow_parameters=spec.flow_parameters or {})
    except Exception as error:
        return Lookup(warning=f"not cached: {_reason(error)}")
    if key is None:
        return Lookup()
    header = {"format": _FORMAT, "key": key, "flow": spec.flow, "task": context.task.name,
              "task_run": context.task_run.name, "run_id": context.run_id}
    found = Lookup(entry_path(spec, policy, key), header, spec.expiration)
    if spec.refresh:
        return found
    try:
        entry = read_entry(found.path, time.time(), getattr(context.task, "result_serializer", None))
    except FileNotFoundError:
        return found
    except Exception as error:  # unreadable, or a value that no longer unpickles: compute it again
        found.warning = f"cached result not used: {_reason(error)}"
        return found
    if entry is not None:
        found.stored, found.value = entry
        found.hit = True
    return found


def store(lookup: Lookup, value: Any, serializer: Any = None) -> str | None:
    """Write a result for later runs (with the task's `result_serializer`, resolved); returns a
    one-line warning instead of raising."""
    assert lookup.path is not None
    now = time.time()
    header = {**lookup.header, "created": now,
              "expires": None if lookup.expiration is None else now + lookup.expiration}
    try:
        write_entry(lookup.path, header, value, serializer)
    except OSError as error:
        return f"result not cached: cannot write {lookup.path.parent} on this worker: {error.strerror or error}"
    except Exception as error:  # a value the serializer cannot write
        if serializer is not None:  # Prefect's words for it
            kind = getattr(serializer, "type", "custom")
            return (f"Encountered an error while serializing result: {_reason(error)}; the result is not cached "
                    f"(result_serializer={kind!r}); the task run goes on")
        return f"result not cached: {_reason(error)}"
    return None


def _reason(error: BaseException) -> str:
    lines = str(error).splitlines()
    first = lines[0] if lines else ""
    if isinstance(error, UnhashableInput):
        return first
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


# Entries on disk --------------------------------------------------------------------------------
# One file per key: a JSON header line (flow, task, expiry) then the value as cloudpickle, so
# `cache clear FLOW` and expiry read a line, not the value. Written to a temporary file and
# renamed into place: a reader sees a whole entry or none.

def entry_path(spec: CacheSpec, policy: Any, key: str) -> Path:
    """Where the result of `key` is kept: the project's cache, or the policy's own `key_storage`.

    In a `key_storage` folder the file is named by the key itself, as Prefect names it, when
    the key is a plain file name (a policy's keys are hex digests); otherwise by its hash.
    """
    storage = getattr(policy, "key_storage", None)
    if isinstance(storage, (str, os.PathLike)):
        plain = key and len(key) <= 200 and key not in (".", "..") and not set(key) & set("/\\\0")
        return Path(storage).expanduser() / (key if plain else entry_name(key))
    return Path(spec.directory) / entry_name(key)


def entry_name(key: str) -> str:
    # Hashed again: a cache_key_fn may return any text, not only what is safe in a file name.
    return hashlib.sha256(key.encode()).hexdigest()[:40] + ENTRY_SUFFIX


def _read_header(handle: Any) -> dict[str, Any] | None:
    line = handle.readline(1 << 16)
    try:
        header = json.loads(line)
    except ValueError:
        return None
    return header if isinstance(header, dict) and header.get("format") == _FORMAT else None


def read_entry(path: Path, now: float, serializer: Any = None) -> tuple[dict[str, Any], Any] | None:
    """The header and value stored at `path`; None when it is expired (and then removed) or foreign.

    An entry written with another format than cloudpickle names it in its header; a custom one
    is read with `serializer`, the task's `result_serializer`."""
    with open(path, "rb") as handle:
        header = _read_header(handle)
        if header is None:
            return None
        if header.get("expires") is not None and now >= header["expires"]:
            handle.close()
            _remove(path)
            return None
        if header.get("serializer") is None:
            return header, cloudpickle.load(handle)
        from flows_tui.serializers import by_type

        return header, by_type(header["serializer"], serializer).loads(handle.read())


def write_entry(path: Path, header: dict[str, Any], value: Any, serializer: Any = None) -> None:
    """Write an entry; `serializer` (a task's `result_serializer`, resolved) writes its value, else cloudpickle."""
    kind = getattr(serializer, "type", "custom") if serializer is not None else "pickle"
    if kind != "pickle":
        blob = serializer.dumps(value)  # before the file exists: a value it cannot write leaves nothing
        header = {**header, "serializer": kind}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(json.dumps(header).encode() + b"\n")
            if kind == "pickle":
                cloudpickle.dump(value, handle, protocol=5)
            else:
                handle.write(blob)
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


def _remove(path: Path) -> int | None:
    """Delete `path`; its size in bytes, None when it was already gone."""
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    flow: str | None
    task: str | None
    size: int
    expired: bool


def cache_entries(directory: Path, now: float | None = None) -> list[CacheEntry]:
    """Every entry in `directory`, with the flow and task that stored it (None if unreadable)."""
    now = time.time() if now is None else now
    entries = []
    try:
        paths = sorted(directory.glob(f"*{ENTRY_SUFFIX}"))
    except OSError:
        return []
    for path in paths:
        try:
            size = path.stat().st_size
            with open(path, "rb") as handle:
                header = _read_header(handle) or {}
        except OSError:
            continue
        expires = header.get("expires")
        entries.append(CacheEntry(path, header.get("flow"), header.get("task"), size,
                                  expires is not None and now >= expires))
    return entries


def same_flow(stored: str | None, name: str) -> bool:
    """Flow names compare as `flows-tui run` compares them: `my_flow` is `My-Flow`."""
    return stored is not None and stored.replace("_", "-").lower() == name.replace("_", "-").lower()


def cache_size(directory: Path) -> int:
    """Bytes of all entries in `directory`, from the file sizes alone (no header is read)."""
    total = 0
    try:
        paths = list(directory.glob(f"*{ENTRY_SUFFIX}"))
    except OSError:
        return 0
    for path in paths:
        try:
            total += path.stat().st_size
        except OSError:  # removed meanwhile (cache clear, expiry)
            continue
    return total


def cache_sizes(directory: Path) -> dict[str | None, int]:
    """Bytes stored per flow name."""
    sizes: dict[str | None, int] = {}
    for entry in cache_entries(directory):
        sizes[entry.flow] = sizes.get(entry.flow, 0) + entry.size
    return sizes


def clear_cache(directory: Path, flow: str | None = None) -> tuple[int, int]:
    """Remove every entry (or those `flow` stored); returns (entries, bytes) removed."""
    count = size = 0
    for entry in cache_entries(directory):
        if flow is None or same_flow(entry.flow, flow):
            removed = _remove(entry.path)
            if removed is not None:  # not removed meanwhile by another process
                count += 1
                size += removed
    if flow is None:
        # Left behind by a worker that died while writing.
        for leftover in directory.glob(f".*{ENTRY_SUFFIX}.*.tmp"):
            size += _remove(leftover) or 0
    return count, size
