"""The `@task` decorator and its options, with Prefect 3's names and meaning."""

from __future__ import annotations

import copy
import datetime as _dt
import functools
import inspect
import logging
import random
import threading
from typing import Any, Callable, Iterable, Sequence

from . import plugged  # flows_tui.engine.local_runs, above this module
from .context import current_flow_run, current_task_run, run_to_end
from .user_code.unpickled import Unpickled
from .definitions import (check_hooks, check_reserved_arguments, check_run_name, options_signature, seconds_or_none,
                          unwrap_method)

_UNBOUND = object()
# Said once, where the task is defined, as Prefect says it (`prefect.tasks` there). The null handler keeps
# it off a terminal whose logging nobody configured (the UI imports flow files while it draws).
_logger = logging.getLogger("flows_tui.tasks")
_logger.addHandler(logging.NullHandler())
_NOT_SET = object()  # cache_policy not given (None given means: none)

RetryDelay = float | int | Sequence[float] | Callable[[int], Sequence[float]] | None


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """Delays that double each retry: `backoff_factor * 2 ** n` for retry n (as Prefect)."""

    def delays(retries: int) -> list[float]:
        return [backoff_factor * max(0, 2 ** r) for r in range(retries)]

    return delays


class Task:
    """A function that runs on the cluster when called inside a flow, as a plain call outside."""

    wraps_user_function = True  # the task-source fingerprint follows `fn` (flows_tui.user_code.task_source)

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        retries: int | None = None,
        retry_delay_seconds: RetryDelay = None,
        retry_jitter_factor: float | None = None,
        retry_condition_fn: Callable[..., bool] | None = None,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        on_completion: Iterable[Callable[..., Any]] | None = None,
        on_failure: Iterable[Callable[..., Any]] | None = None,
        on_running: Iterable[Callable[..., Any]] | None = None,
        cache_policy: Any = _NOT_SET,
        cache_key_fn: Callable[..., Any] | None = None,
        cache_expiration: _dt.timedelta | None = None,
        refresh_cache: bool | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        result_storage_key: str | None = None,
        cache_result_in_memory: bool = True,
    ) -> None:
        hooks = check_hooks("task", on_completion=on_completion, on_failure=on_failure, on_running=on_running)
        fn, self._method_kind = unwrap_method(fn)
        if not callable(fn):
            raise TypeError("'fn' must be callable")
        self.fn = fn
        self.isasync = inspect.iscoroutinefunction(fn)
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.description = description or inspect.getdoc(fn)
        check_run_name("task_run_name", task_run_name)
        check_reserved_arguments(fn)
        self.tags = set(tags or ())
        self.version = version
        self.retries = int(retries or 0)
        if self.retries < 0:
            raise ValueError(f"task {self.name!r}: retries must be >= 0, got {retries}")
        if callable(retry_delay_seconds):  # exponential_backoff(...): the delays, once, as Prefect does
            retry_delay_seconds = list(retry_delay_seconds(self.retries))
        elif not isinstance(retry_delay_seconds, (list, int, float, type(None))):
            raise TypeError("Invalid `retry_delay_seconds` provided; must be an int, float, list or callable. "
                            f"Received type {type(retry_delay_seconds)}")
        if isinstance(retry_delay_seconds, list) and len(retry_delay_seconds) > 50:
            raise ValueError("Can not configure more than 50 retry delays per task.")
        self.retry_delay_seconds = retry_delay_seconds
        if retry_jitter_factor is not None and retry_jitter_factor < 0:
            raise ValueError("`retry_jitter_factor` must be >= 0.")
        self.retry_jitter_factor = retry_jitter_factor
        if retry_condition_fn is not None and not callable(retry_condition_fn):
            raise TypeError(f"Expected `retry_condition_fn` to be callable, got {type(retry_condition_fn).__name__} "
                            "instead.")
        self.retry_condition_fn = retry_condition_fn
        if timeout_seconds is not None and timeout_seconds < 0:
            raise ValueError(f"task {self.name!r}: timeout_seconds must be >= 0 (0: none), got {timeout_seconds}")
        self.timeout_seconds = seconds_or_none(timeout_seconds)
        self.log_prints = log_prints
        self.task_run_name = task_run_name
        self.on_completion_hooks = hooks["on_completion"]
        self.on_failure_hooks = hooks["on_failure"]
        self.on_running_hooks = hooks["on_running"]
        if result_serializer is not None:
            from .serializers import resolve

            resolve(result_serializer)  # an unknown name is an error here, not at the first run
        self.result_serializer = result_serializer
        self.result_storage_key = result_storage_key
        self.cache_result_in_memory = cache_result_in_memory
        # None given is not the same as nothing given: Prefect's task.cache_policy shows None then.
        self._cache_policy_given = cache_policy is not _NOT_SET
        cache_policy = None if cache_policy is _NOT_SET else cache_policy
        if cache_policy is not None:
            from .cache_policies import CachePolicy

            if not (isinstance(cache_policy, CachePolicy)
                    or (isinstance(cache_policy, type) and issubclass(cache_policy, CachePolicy))):
                raise TypeError(f"task {self.name!r}: cache_policy must be a policy from flows_tui.cache_policies "
                                f"(INPUTS, TASK_SOURCE, FLOW_PARAMETERS, RUN_ID, NO_CACHE), got {cache_policy!r}")
        if cache_expiration is not None and not isinstance(cache_expiration, _dt.timedelta):
            raise TypeError(f"task {self.name!r}: cache_expiration must be a datetime.timedelta, "
                            f"got {cache_expiration!r}")
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        self.refresh_cache = refresh_cache
        self.result_storage = result_storage
        # What the user asked for decides caching (cache_policies.policy_of); `cache_policy` and
        # `persist_result` show it as Prefect's attributes do (DEFAULT when nothing was said).
        self._user_cache_policy = cache_policy
        self._user_persist_result = persist_result
        self._show_cache_options()
        if persist_result is False and cache_policy is not None:
            from .cache_policies import NoCache

            if not isinstance(cache_policy, NoCache) and cache_policy is not NoCache:
                _logger.warning("Ignoring `cache_policy` because `persist_result` is False")
        self.task_key = _task_key(fn)
        try:
            self.source_code: str | None = inspect.getsource(fn)
        except (TypeError, OSError):
            self.source_code = None
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    # Calls -------------------------------------------------------------------------------

    def __call__(self, *args: Any, return_state: bool = False, wait_for: Iterable[Any] | None = None,
                 **kwargs: Any) -> Any:
        args = self._with_bound(args)
        engine = current_flow_run()
        if engine is None:  # inside another task or outside any flow: a task run all the same, as in Prefect 3
            return local_task_runs().call(self, args, kwargs, return_state=return_state, wait_for=wait_for)
        future = engine.submit(self, args, kwargs, wait_for=wait_for)
        if return_state:
            return engine.final_state(future, seen_by_body=True)
        return future.result()

    def submit(self, *args: Any, return_state: bool = False, wait_for: Iterable[Any] | None = None,
               **kwargs: Any) -> Any:
        if current_flow_run() is None and current_task_run() is not None:  # a task run inside a task run
            future = local_task_runs().submit(self, self._with_bound(args), kwargs, wait_for=wait_for)
            if return_state:
                future.wait()
                return future.state
            return future
        engine = _require_flow_run(self, "submit")
        future = engine.submit(self, self._with_bound(args), kwargs, wait_for=wait_for)
        if return_state:
            return engine.final_state(future, seen_by_body=True)
        return future

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """A background task run (Prefect's `.delay()`); see `apply_async`."""
        return self.apply_async(args, kwargs)

    def apply_async(self, args: tuple | None = None, kwargs: dict[str, Any] | None = None,
                    wait_for: Iterable[Any] | None = None, **ignored: Any) -> Any:
        """A background task run, as Prefect's `.apply_async()`: it starts now, in a thread of this
        process (Prefect hands it to task workers, which do not exist here), and its future is
        returned. Retries, timeouts, hooks and caching apply; it is no task run of a flow's record.
        Arguments that do not fit the signature are a ParameterBindError at once."""
        from .exceptions import ParameterBindError

        args, kwargs = self._with_bound(tuple(args or ())), dict(kwargs or {})
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise ParameterBindError(f"Error binding parameters for function '{self.fn.__name__}': {error}.") \
                from None
        return local_task_runs().submit(self, args, kwargs, wait_for=wait_for)

    def map(self, *args: Any, return_state: bool = False, wait_for: Iterable[Any] | None = None,
            **kwargs: Any) -> Any:
        args = self._with_bound(args)
        if self.__dict__.get("_bound_to", _UNBOUND) is not _UNBOUND:
            from .futures import unmapped

            args = (unmapped(args[0]), *args[1:])
        if current_flow_run() is None and current_task_run() is not None:  # inside a task run
            from .futures import TaskFutureList

            runs = local_task_runs()
            local = TaskFutureList(runs.submit(self, element_args, element_kwargs, wait_for=wait_for)
                                   for element_args, element_kwargs in runs.map_calls(self, args, kwargs))
            if return_state:
                return [future.wait() or future.state for future in local]
            return local
        engine = _require_flow_run(self, "map")
        futures = engine.map(self, args, kwargs, wait_for=wait_for)
        if return_state:
            return [engine.final_state(f, seen_by_body=True) for f in futures]
        return futures

    def with_options(self, **options: Any) -> "Task":
        """A copy of this task with some options changed (as Prefect's `Task.with_options`)."""
        clone = copy.copy(self)
        clone._changed()
        hooks = {"on_completion": "on_completion_hooks", "on_failure": "on_failure_hooks",
                 "on_running": "on_running_hooks"}
        check_hooks("task", **{key: options[key] for key in hooks if key in options})
        if "task_run_name" in options:
            check_run_name("task_run_name", options["task_run_name"])
        if "timeout_seconds" in options:
            options["timeout_seconds"] = seconds_or_none(options["timeout_seconds"])
        if options.get("result_serializer") is not None:
            from .serializers import resolve

            resolve(options["result_serializer"])
        for key, value in options.items():
            attribute = hooks.get(key, key)
            if not hasattr(clone, attribute) or key in ("fn", "signature"):
                raise TypeError(f"with_options() got an unknown option {key!r}")
            setattr(clone, attribute, list(value or ()) if key in hooks else value)
        if "cache_policy" in options:
            clone._user_cache_policy = options["cache_policy"]
            clone._cache_policy_given = True
        if "persist_result" in options:
            clone._user_persist_result = options["persist_result"]
        clone._show_cache_options()
        if "retries" in options:
            clone.retries = int(options["retries"] or 0)
        if "tags" in options:
            clone.tags = set(options["tags"] or ())
        else:
            clone.tags = set(self.tags)
        return clone

    def on_completion(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_completion_hooks.append(fn)
        self._changed()
        return fn

    def on_failure(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_failure_hooks.append(fn)
        self._changed()
        return fn

    def on_running(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_running_hooks.append(fn)
        self._changed()
        return fn

    def _show_cache_options(self) -> None:
        """Prefect's `cache_policy` and `persist_result` attributes, from the options given."""
        from .cache_policies import DEFAULT, NO_CACHE, CachePolicy

        policy, persist = self._user_cache_policy, self._user_persist_result
        if self.cache_key_fn is not None:
            policy = CachePolicy.from_cache_key_fn(self.cache_key_fn)
        if persist is None and any([policy is not None and policy != NO_CACHE, self.cache_key_fn is not None,
                                    self.result_storage_key is not None, self.result_storage is not None,
                                    self.result_serializer is not None]):
            persist = True
        given = self.__dict__.get("_cache_policy_given", True)
        if persist is False:
            self.cache_policy = None if (given and policy is None) else NO_CACHE
        elif not given and policy is None and self.result_storage_key is None:
            self.cache_policy = DEFAULT
        elif policy != NO_CACHE and self.result_storage_key:
            self.cache_policy = None
        else:
            self.cache_policy = policy
        self.persist_result = persist

    # What the worker needs -------------------------------------------------------------

    def run_fn(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task's function; an async one runs to its end in an event loop of its own."""
        return run_to_end(self.fn(*args, **kwargs))

    def retry_delay(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1 for the first retry), jitter applied."""
        spec = self.retry_delay_seconds
        if callable(spec):
            spec = list(spec(self.retries))
        if spec is None:
            delay = 0.0
        elif isinstance(spec, (int, float)):
            delay = float(spec)
        else:
            delays = list(spec)
            delay = float(delays[min(retry_number, len(delays)) - 1]) if delays else 0.0
        if self.retry_jitter_factor and delay > 0:
            # Spread retries around the delay, never beyond delay * (1 + factor), as Prefect clamps.
            factor = self.retry_jitter_factor
            delay = random.uniform(max(0.0, delay * (1 - factor)), delay * (1 + factor))
        return delay

    def format_run_name(self, parameters: dict[str, Any], fallback: str) -> str:
        template = self.task_run_name
        if template is None:
            return fallback
        if not (isinstance(template, str) or callable(template)):  # set on the task after it was defined
            raise TypeError(f"Expected string or callable for 'task_run_name'; got {type(template).__name__} "
                            "instead.")
        try:
            if callable(template):
                return str(template())
            return template.format(**parameters)
        except Exception as error:  # a bad template must not stop the run; say why in the name
            return f"{fallback} (task_run_name: {type(error).__name__}: {error})"

    def __repr__(self) -> str:
        return f"Task(name={self.name!r})"

    # Pickling: tasks travel to workers by value ---------------------------------------------

    def __reduce__(self) -> Any:
        # Plain pickle would reference a flow file's function by its private module name, which
        # workers cannot import; cloudpickle sends it by value. The bytes are kept so a thousand
        # submissions of one task pickle its function once.
        blob = self.__dict__.get("_pickled")
        if blob is not None:
            return (_restore_task, (blob,))
        state = {k: v for k, v in self.__dict__.items() if k not in _NOT_PICKLED}
        if getattr(_pickling, "active", None) is self:  # the task reached itself through its function's globals
            return (_new_task, (), state)
        import cloudpickle

        _pickling.active = self
        try:
            blob = cloudpickle.dumps(state)
        finally:
            _pickling.active = None
        self.__dict__["_pickled"] = blob
        return (_restore_task, (blob,))

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.signature = inspect.signature(self.fn)

    def _changed(self) -> None:
        self.__dict__.pop("_pickled", None)

    def __get__(self, instance: Any, owner: Any) -> Any:
        """A task defined as a method binds like one: `obj.method` is a task with `obj` as first argument."""
        kind = self.__dict__.get("_method_kind")
        if kind == "staticmethod" or (instance is None and kind != "classmethod"):
            return self
        bound = copy.copy(self)
        bound._changed()
        bound._bound_to = owner if kind == "classmethod" else instance
        return bound

    def _with_bound(self, args: tuple) -> tuple:
        bound_to = self.__dict__.get("_bound_to", _UNBOUND)
        return args if bound_to is _UNBOUND else (bound_to, *args)


# The object a method is bound to arrives on the worker as the call's first argument.
_NOT_PICKLED = frozenset({"signature", "_pickled", "_bound_to"})
_pickling = threading.local()


def _task_key(fn: Callable[..., Any]) -> str:
    """Prefect's task key: the function's name and a hash of its code."""
    import hashlib

    if not hasattr(fn, "__qualname__"):
        return f"{type(fn).__module__}.{type(fn).__qualname__}"
    code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__call__", None), "__code__", None)
    digest = hashlib.md5(code.co_code, usedforsecurity=False).hexdigest()[:8] if code is not None else "unknown"
    return f"{fn.__qualname__.split('.')[-1]}-{digest}"


def _new_task() -> Task:
    return Task.__new__(Task)


def _load_task(blob: bytes) -> Task:
    import cloudpickle

    restored = Task.__new__(Task)
    restored.__setstate__(cloudpickle.loads(blob))
    return restored


_restored = Unpickled(_load_task)


def _restore_task(blob: bytes) -> Task:
    """Unpickle a task on a worker, once per distinct version of it."""
    return _restored(blob)


def local_task_runs() -> Any:
    """`flows_tui.engine.local_runs`: it lives in a layer above this module, which must not import it;
    flows_tui/__init__.py plugs it in (imported at the first such call, so a flow file pays nothing)."""
    return plugged.local_task_runs()


def _require_flow_run(task: Task, method: str):
    engine = current_flow_run()
    if engine is None:
        raise RuntimeError(f"{task.name}.{method}() can only be called inside a flow run; "
                           f"call {task.name}(...) directly to run it as a plain function")
    return engine


def task_input_hash(context: Any, arguments: dict[str, Any]) -> str:
    """Prefect's ready-made `cache_key_fn`: the task's code and its arguments.

    An argument without a stable hash raises (Prefect returns None): the run's log then says
    why the task run was not cached.
    """
    from .cache import hash_inputs, hash_key_parts
    from flows_tui.user_code.task_source import task_source

    source = context.task_source or task_source(context.task)
    return hash_key_parts([context.task.name, source, hash_inputs(arguments)])


def task(__fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Decorate a function as a task: `@task` or `@task(retries=3, ...)`."""
    if __fn is not None:
        return Task(__fn, **options)
    return lambda fn: Task(fn, **options)


task.__signature__ = options_signature(Task.__init__, "__fn")  # type: ignore[attr-defined]
# As Prefect's: a copy with other options is the same task, so its version is not among them.
Task.with_options.__signature__ = options_signature(Task.__init__, "self", ["version"])  # type: ignore[attr-defined]
