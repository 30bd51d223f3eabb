"""Cache policies, with Prefect 3's names, algebra and meaning.

    from flows_tui.cache_policies import INPUTS, TASK_SOURCE, FLOW_PARAMETERS, RUN_ID, NO_CACHE

A policy turns a task run into a cache key (a string), or None: not cached. `+` combines
policies (the parts' keys are hashed together), `INPUTS - "arg"` leaves a parameter out,
`NO_CACHE` turns caching off. As in Prefect, task runs with the same key share one cached
result, across runs, flows and even tasks: a policy without TASK_SOURCE (or a
`cache_key_fn` that leaves the task out) lets two tasks with equal inputs share results.

Unlike Prefect, TASK_SOURCE covers the task's code and the code of the functions and
classes in the user's own files that it reaches, so editing a helper invalidates.

The hashing lives in `flows_tui.cache`, imported only when a key is computed: a flow file
importing this module does not pay for Dask's tokenizer at load time.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType
from typing import Any, Callable


@dataclass
class CachePolicy:
    """Base class of all policies; a custom one overrides `compute_key` with Prefect's signature.

    `key_storage` (a folder) is where this policy's results are written, one file named by
    the key, as Prefect writes them; None: the project's cache under `state_dir`. A
    `lock_manager` and `isolation_level` are kept as given (Prefect's transactions); runs here
    hold no lock while a result is computed.
    """

    key_storage: str | Path | None = None
    isolation_level: str | None = None
    lock_manager: Any = None

    def configure(self, key_storage: str | Path | None = None, lock_manager: Any = None,
                  isolation_level: str | None = None) -> "CachePolicy":
        """A copy of this policy with the options given (None keeps this policy's)."""
        new = deepcopy(self)
        if key_storage is not None:
            new.key_storage = key_storage
        if lock_manager is not None:
            new.lock_manager = lock_manager
        if isolation_level is not None:
            new.isolation_level = isolation_level
        return new

    def _settings_with(self, other: "CachePolicy") -> dict[str, Any]:
        """The storage, locks and isolation of `self + other`; two different ones cannot be combined."""
        for name, what in (("key_storage", "storage locations"), ("isolation_level", "isolation levels"),
                           ("lock_manager", "lock implementations")):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                raise ValueError(f"Cannot add CachePolicies with different {what}.")
        return {name: getattr(self, name) or getattr(other, name)
                for name in ("key_storage", "isolation_level", "lock_manager")}

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        raise NotImplementedError

    @classmethod
    def from_cache_key_fn(cls, cache_key_fn: Callable[[Any, dict[str, Any]], str | None]) -> "CacheKeyFnPolicy":
        return CacheKeyFnPolicy(cache_key_fn=cache_key_fn)

    def __add__(self, other: "CachePolicy") -> "CachePolicy":
        if not isinstance(other, CachePolicy):
            return NotImplemented
        if isinstance(other, NoCache):
            return self
        return CompoundCachePolicy(policies=[self, other], **self._settings_with(other))

    def __sub__(self, other: str) -> "CachePolicy":
        """Leaving out a parameter only changes policies that hash inputs (as in Prefect)."""
        if not isinstance(other, str):
            raise TypeError("only parameter names (str) can be subtracted from a cache policy")
        return self


@dataclass
class CompoundCachePolicy(CachePolicy):
    """Several policies at once: each part's key, hashed together; parts without a key are skipped."""

    policies: list[CachePolicy] = field(default_factory=list)

    def __post_init__(self) -> None:
        flat = [part for policy in self.policies
                for part in (policy.policies if isinstance(policy, CompoundCachePolicy) else [policy])]
        # Two INPUTS parts would hash the inputs twice; one with both exclusions means the same.
        inputs = [part for part in flat if isinstance(part, Inputs)]
        self.policies = [part for part in flat if not isinstance(part, Inputs)]
        if inputs:
            self.policies.append(Inputs(exclude=sorted({name for part in inputs for name in part.exclude})))

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        keys = [key for policy in self.policies
                if (key := policy.compute_key(task_ctx=task_ctx, inputs=inputs, flow_parameters=flow_parameters,
                                              **kwargs)) is not None]
        if not keys:
            return None
        from .cache import hash_key_parts

        return hash_key_parts(keys)

    def __add__(self, other: "CachePolicy") -> "CachePolicy":
        if not isinstance(other, CachePolicy):
            return NotImplemented
        if isinstance(other, NoCache):
            return self
        return CompoundCachePolicy(policies=[*self.policies, other], **self._settings_with(other))

    def __sub__(self, other: str) -> "CachePolicy":
        if not isinstance(other, str):
            raise TypeError("only parameter names (str) can be subtracted from a cache policy")
        if not any(isinstance(part, Inputs) for part in self.policies):
            return self
        return CompoundCachePolicy(policies=[*self.policies, Inputs(exclude=[other])], key_storage=self.key_storage,
                                   isolation_level=self.isolation_level, lock_manager=self.lock_manager)


@dataclass
class CacheKeyFnPolicy(CachePolicy):
    """A task's `cache_key_fn(context, parameters)`: its return value is the key (None: not cached)."""

    cache_key_fn: Callable[[Any, dict[str, Any]], str | None] | None = None

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        if self.cache_key_fn is None:
            return None
        key = self.cache_key_fn(task_ctx, inputs)
        if key is not None and not isinstance(key, str):
            raise TypeError(f"cache_key_fn must return a str or None, got {type(key).__name__}")
        return key


@dataclass
class NoCache(CachePolicy):
    """No key, so no caching: `NO_CACHE + X` and `X + NO_CACHE` are X."""

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        return None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return other


@dataclass
class TaskSource(CachePolicy):
    """The code of the task and of the functions and classes of the user's files it reaches.

    The engine computes it once per task, before submitting (`flows_tui.cache.task_source`),
    and hands it to the worker in the context; computing it here is the fallback.
    """

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        if task_ctx is None:
            return None
        source = getattr(task_ctx, "task_source", None)
        if source is not None:
            return source
        task = task_ctx.task
        fn = getattr(task, "fn", task)
        stored = getattr(task, "source_code", None)
        if isinstance(fn, FunctionType) or (callable(fn) and not isinstance(stored, str)):
            from flows_tui.user_code.task_source import task_source

            return task_source(task)
        if isinstance(stored, str):  # a task whose code is not here, only its text (as Prefect keeps it)
            from .cache import hash_key_parts

            return hash_key_parts([stored])
        return None


@dataclass
class FlowParameters(CachePolicy):
    """The parameters of the flow run the task belongs to."""

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        if not flow_parameters:
            return None
        from .cache import hash_inputs

        return hash_inputs(flow_parameters, what="flow parameter")


@dataclass
class RunId(CachePolicy):
    """The flow run's id: results are reused within one run only."""

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        if task_ctx is None:
            return None
        task_run = task_ctx.task_run
        return str(task_run.flow_run_id or task_run.id)


@dataclass
class Inputs(CachePolicy):
    """The task's arguments (upstream results by value), except the parameters in `exclude`."""

    exclude: list[str] = field(default_factory=list)

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        hashed = {name: value for name, value in (inputs or {}).items() if name not in self.exclude}
        if not hashed:
            return None
        from .cache import hash_inputs

        return hash_inputs(hashed)

    def __sub__(self, other: str) -> CachePolicy:
        if not isinstance(other, str):
            raise TypeError("only parameter names (str) can be subtracted from a cache policy")
        return Inputs(exclude=[*self.exclude, other], key_storage=self.key_storage,
                      isolation_level=self.isolation_level, lock_manager=self.lock_manager)


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
NO_CACHE = NoCache()
NONE = NO_CACHE  # Prefect's older name for it
_None = NoCache  # Prefect's class of NONE: no key, and `+` with it changes nothing
# Prefect's default: a task with `persist_result=True` and no policy reuses results within one run.
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID


def policy_of(task: Any) -> CachePolicy | None:
    """The policy a task's options ask for, or None when its results are not cached.

    Prefect's rules: `cache_key_fn` wins over `cache_policy`; `persist_result=False` turns
    caching off; `persist_result=True` (or a `result_serializer`) alone means DEFAULT. A task with none of these options
    is not cached at all (Prefect does not persist its results by default either), so it pays
    nothing for hashing. (`task.cache_policy` shows DEFAULT then, as Prefect's does.)
    """
    persist = task.__dict__.get("_user_persist_result", task.persist_result)
    if persist is None and getattr(task, "result_serializer", None) is not None:
        persist = True  # as in Prefect: choosing how results are written asks for them to be written
    if persist is False:
        return None
    if task.cache_key_fn is not None:
        return CacheKeyFnPolicy(cache_key_fn=task.cache_key_fn)
    policy = task.__dict__.get("_user_cache_policy", task.cache_policy)
    if isinstance(policy, type):  # the class given for an instance
        policy = policy()
    if policy is None:
        return DEFAULT if persist else None
    return None if isinstance(policy, NoCache) else policy


def reads(policy: CachePolicy, kind: type[CachePolicy]) -> bool:
    """Whether computing `policy`'s key may need what `kind` reads (a custom policy may need anything)."""
    if isinstance(policy, CompoundCachePolicy):
        return any(reads(part, kind) for part in policy.policies)
    if isinstance(policy, kind):
        return True
    return type(policy) not in _BUILT_IN


# A cache_key_fn is user code too: it may read anything (`task_input_hash` reads the task's source).
_BUILT_IN = frozenset({CompoundCachePolicy, NoCache, TaskSource, FlowParameters, RunId, Inputs})

__all__ = ["CachePolicy", "CompoundCachePolicy", "CacheKeyFnPolicy", "NoCache", "TaskSource", "FlowParameters",
           "RunId", "Inputs", "INPUTS", "TASK_SOURCE", "FLOW_PARAMETERS", "RUN_ID", "NO_CACHE", "NONE", "DEFAULT"]
