"""The `@flow` decorator, with Prefect 3's options and meaning."""

from __future__ import annotations

import copy
import functools
import inspect
from typing import Any, Callable, Iterable

from . import plugged
from .context import current_flow_run, run_to_end
from .definitions import (check_flow_name, check_hooks, check_reserved_arguments, check_run_name,
                          check_validator_names, options_signature, seconds_or_none, unwrap_method)

_UNBOUND = object()
_HOOKS = ("on_completion", "on_failure", "on_crashed", "on_cancellation", "on_running")

class Flow:
    """A function whose body drives tasks on the cluster; calling it runs it, as in Prefect."""

    wraps_user_function = True  # the task-source fingerprint follows `fn` (flows_tui.user_code.task_source)

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | None = None,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        flow_run_name: str | Callable[..., str] | None = None,
        validate_parameters: bool = True,
        on_completion: list[Callable[..., Any]] | None = None,
        on_failure: list[Callable[..., Any]] | None = None,
        on_crashed: list[Callable[..., Any]] | None = None,
        on_cancellation: list[Callable[..., Any]] | None = None,
        on_running: list[Callable[..., Any]] | None = None,
        task_runner: Any = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        cache_result_in_memory: bool = True,
        fail_on_unhandled_task_failures: bool = True,
    ) -> None:
        check_flow_name(name)
        hooks = check_hooks("flow", on_completion=on_completion, on_failure=on_failure, on_crashed=on_crashed,
                            on_cancellation=on_cancellation, on_running=on_running)
        fn, self._method_kind = unwrap_method(fn)
        if not callable(fn):
            raise TypeError("'fn' must be callable")
        self.fn = fn
        self.isasync = inspect.iscoroutinefunction(fn)
        # Prefect's default name; "<lambda>" would hold characters names may not have.
        self.name = name or fn.__name__.replace("_", "-").replace("<lambda>", "unknown-lambda")
        check_flow_name(self.name)
        check_run_name("flow_run_name", flow_run_name)
        check_reserved_arguments(fn)
        if validate_parameters:
            check_validator_names(fn)
        self.description = description or inspect.getdoc(fn)
        self.version = version or _source_file_hash(fn)
        self.retries = int(retries or 0)
        self.retry_delay_seconds = retry_delay_seconds
        if timeout_seconds is not None and timeout_seconds < 0:
            raise ValueError(f"flow {self.name!r}: timeout_seconds must be >= 0 (0: none), got {timeout_seconds}")
        self.timeout_seconds = seconds_or_none(timeout_seconds)
        self.log_prints = log_prints
        self.flow_run_name = flow_run_name
        self.should_validate_parameters = validate_parameters
        self.on_completion_hooks = hooks["on_completion"]
        self.on_failure_hooks = hooks["on_failure"]
        # As in Prefect 3, a crash or a cancellation calls its own hooks, not on_failure.
        self.on_crashed_hooks = hooks["on_crashed"]
        self.on_cancellation_hooks = hooks["on_cancellation"]
        self.on_running_hooks = hooks["on_running"]
        # Accepted for Prefect compatibility: Dask always runs the tasks (flows_tui.task_runners).
        self.task_runner = task_runner() if isinstance(task_runner, type) else task_runner
        if persist_result is None and (result_storage is not None or result_serializer is not None):
            persist_result = True
        self.persist_result = persist_result
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.cache_result_in_memory = cache_result_in_memory
        # flows-tui's rule, not Prefect's: a task run that failed and that nothing looked at (no
        # `return_state`, no `.result()`, no `allow_failure`) fails the flow, so no failure is silent.
        # False: Prefect 3's rule, the state follows from the return value alone.
        self.fail_on_unhandled_task_failures = fail_on_unhandled_task_failures
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    @property
    def file(self) -> str | None:
        """The file the flow's function was loaded from (None for one typed in a REPL)."""
        import sys

        return getattr(sys.modules.get(self.fn.__module__), "__file__", None)

    def validate(self, parameters: dict[str, Any], *, from_text: Any = False) -> dict[str, Any]:
        """Bind and convert parameters against the signature; ParameterError names the bad one."""
        from .parameters import validate_parameters

        fn = self.fn
        bound_to = self.__dict__.get("_bound_to", _UNBOUND)
        if bound_to is not _UNBOUND:  # a method: its object is no parameter of the run
            fn = functools.partial(self.fn, bound_to)
        if not self.should_validate_parameters:
            bound = inspect.signature(fn).bind(**parameters)
            bound.apply_defaults()
            return dict(bound.arguments)
        return validate_parameters(fn, parameters, flow_name=self.name, from_text=from_text)

    def __call__(self, *args: Any, return_state: bool = False, wait_for: Iterable[Any] | None = None,
                 **kwargs: Any) -> Any:
        bound_to = self.__dict__.get("_bound_to", _UNBOUND)
        if bound_to is not _UNBOUND:
            args = (bound_to, *args)
        bound = self.signature.bind(*args, **kwargs)
        parameters = dict(bound.arguments)
        if bound_to is not _UNBOUND:
            parameters.pop(next(iter(self.signature.parameters)))
        parent = current_flow_run()
        if parent is not None:
            return _run_subflow(self, parent, parameters, wait_for, return_state)
        template = self.flow_run_name
        if not (template is None or isinstance(template, str) or callable(template)):  # set after definition
            raise TypeError(f"Expected string or callable for 'flow_run_name'; got {type(template).__name__} "
                            "instead.")
        if self.isasync:  # as in Prefect, an async flow's call is awaited; the run itself is in a thread
            import asyncio

            return asyncio.to_thread(plugged.run_from_python, self, parameters, return_state=return_state)
        return plugged.run_from_python(self, parameters, return_state=return_state)

    def call_fn(self, parameters: dict[str, Any]) -> Any:
        """Call the flow's function with validated `parameters` (`*args`/`**kwargs` spread as the signature says)."""
        bound_to = self.__dict__.get("_bound_to", _UNBOUND)
        signature = self.signature
        names = list(signature.parameters)
        if bound_to is not _UNBOUND:
            parameters = {names[0]: bound_to, **parameters}
        arguments = {name: parameters[name] for name in names if name in parameters}
        extras = {k: v for k, v in parameters.items() if k not in signature.parameters}
        if extras:  # values given to **kwargs by name (from the command line or flows.toml)
            var_keyword = next(p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD)
            arguments[var_keyword] = {**arguments.get(var_keyword, {}), **extras}
        bound = inspect.BoundArguments(signature, arguments)  # type: ignore[arg-type]
        # An async body runs in an event loop of its own, in the thread driving the run.
        return run_to_end(self.fn(*bound.args, **bound.kwargs))

    def __get__(self, instance: Any, owner: Any) -> Any:
        """A flow defined as a method binds like one: `obj.method(...)` runs with `obj` as its first argument."""
        kind = self.__dict__.get("_method_kind")
        if kind == "staticmethod" or (instance is None and kind != "classmethod"):
            return self
        bound = copy.copy(self)
        bound._bound_to = owner if kind == "classmethod" else instance
        return bound

    def on_completion(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_completion_hooks.append(fn)
        return fn

    def on_failure(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_failure_hooks.append(fn)
        return fn

    def on_crashed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_crashed_hooks.append(fn)
        return fn

    def on_cancellation(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_cancellation_hooks.append(fn)
        return fn

    def on_running(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_running_hooks.append(fn)
        return fn

    def with_options(self, **options: Any) -> "Flow":
        clone = copy.copy(self)
        hooks = {name: f"{name}_hooks" for name in _HOOKS}
        check_hooks("flow", **{key: options[key] for key in hooks if key in options})
        if "name" in options:
            check_flow_name(options["name"])
        if "flow_run_name" in options:
            check_run_name("flow_run_name", options["flow_run_name"])
        if "timeout_seconds" in options:
            options["timeout_seconds"] = seconds_or_none(options["timeout_seconds"])
        for key in hooks.values():
            setattr(clone, key, list(getattr(self, key)))
        if clone.persist_result is None and "persist_result" not in options and (
                options.get("result_storage") is not None or options.get("result_serializer") is not None):
            options["persist_result"] = True
        for key, value in options.items():
            if key == "validate_parameters":
                clone.should_validate_parameters = value
                continue
            attribute = hooks.get(key, key)
            if not hasattr(clone, attribute) or key in ("fn", "signature"):
                raise TypeError(f"with_options() got an unknown option {key!r}")
            setattr(clone, attribute, list(value or ()) if key in hooks else value)
        return clone

    @classmethod
    def from_source(cls, source: Any, entrypoint: str) -> "Flow":
        """Prefect's `Flow.from_source`: the flow `entrypoint` ("file.py:function" or "module.function")
        names in `source`, a folder, a git URL or a storage object (see `flows_tui.project.flow_sources`)."""
        return plugged.load_from_source(source, entrypoint)

    def deploy(self, *args: Any, **kwargs: Any) -> None:
        """Prefect's `flow.deploy()` publishes to its server and work pools, which do not exist here."""
        raise NotImplementedError(f"{self.name}.deploy() publishes to Prefect's server, which flows-tui has none of: "
                                  "run the flow on a schedule with flow.serve(cron=... | interval=...), "
                                  "serve(flow.to_deployment(...), ...), or [flows.NAME] in flows.toml with "
                                  "flows-tui serve")

    def to_deployment(self, name: str, **options: Any) -> Any:
        """Prefect's `flow.to_deployment(name, cron=... | interval=..., parameters=...)`: this flow with a
        schedule, for `flows_tui.serve(*deployments)` (see `flows_tui.deployments`)."""
        from .deployments import to_deployment

        return to_deployment(self, name, **options)

    def serve(self, name: str | None = None, *, cron: str | None = None, interval: Any = None,
              parameters: dict[str, Any] | None = None, timezone: str | None = None, overlap: str = "skip",
              catchup: str = "skip", grace: float = 30.0, **ignored: Any) -> None:
        """Run this flow on a schedule, headless, until SIGTERM or Ctrl-C (Prefect's `flow.serve`).

        `interval` is seconds, a timedelta or text like "5m"; the cluster, store and notifications
        come from flows.toml in the current directory, as for `flows-tui serve`.
        """
        plugged.serve_flow(self, cron=cron, interval=interval, parameters=parameters or {}, timezone=timezone,
                   overlap=overlap, catchup=catchup, grace=grace)

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The parameters as JSON-compatible values, as Prefect's `Flow.serialize_parameters`: a value
        with no JSON form (an arbitrary object, a cycle) becomes its type's name, `"<Cyclic>"`."""
        from pydantic_core import to_jsonable_python

        serialized = {}
        for name, value in parameters.items():
            try:
                serialized[name] = to_jsonable_python(value)
            except (TypeError, ValueError, RecursionError):
                serialized[name] = f"<{type(value).__name__}>"
        return serialized

    def format_run_name(self, parameters: dict[str, Any]) -> str | None:
        template = self.flow_run_name
        if template is None:
            return None
        try:
            return str(template()) if callable(template) else template.format(**parameters)
        except Exception as error:
            return f"{self.name} (flow_run_name: {type(error).__name__}: {error})"

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"


def _source_file_hash(fn: Callable[..., Any]) -> str | None:
    """Prefect's default version: a hash of the file that defines the flow (None for one typed in a REPL)."""
    import hashlib

    try:
        path = inspect.getsourcefile(fn)
        if path is None:
            return None
        with open(path, "rb") as source:
            return hashlib.md5(source.read(), usedforsecurity=False).hexdigest()
    except (OSError, TypeError):
        return None


def flow(__fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Decorate a function as a flow: `@flow` or `@flow(name=..., retries=...)`."""
    if __fn is not None:
        return Flow(__fn, **options)
    return lambda fn: Flow(fn, **options)


def _run_subflow(flow: Flow, parent: Any, parameters: dict[str, Any], wait_for: Iterable[Any] | None,
                 return_state: bool) -> Any:
    """A subflow: its body runs in the parent's driver, its tasks join the parent's run.

    Its state follows from what it returned, as a flow run's does; it retries by its own
    `retries` and runs its own hooks, as Prefect's subflow runs do. With `persist_result=True`, a subflow that completed
    in an attempt of the parent that then failed is not run again by the parent's retry: its
    n-th call of that subflow gets the result it had.
    """
    from .futures import resolve_futures_to_results
    from .states import FAILED, NOT_RUN, RUNNING, State, UpstreamFailed, state_from_return

    call = parent.count_subflow_call(flow.name)
    kept = parent.subflow_results.get(call) if flow.persist_result else None
    if kept is not None:
        return kept if return_state else kept.result()
    attempt = 0
    while True:
        attempt += 1
        raised = None
        parent._run_flow_hooks(State(RUNNING), flow)
        try:
            _wait_for_upstream(wait_for)
            values = flow.validate({k: resolve_futures_to_results(v) for k, v in parameters.items()})
            state = state_from_return(parent._futures_to_states(flow.call_fn(values)))
        except UpstreamFailed as error:  # as a task whose upstream failed: the subflow did not run
            state, raised = State(NOT_RUN, str(error), _exception=error), error
        except Exception as error:
            state, raised = State(FAILED, f"subflow {flow.name!r} raised {type(error).__name__}: {error}",
                                  _exception=error), error
        if state.is_failed() and state.name != NOT_RUN and attempt <= (flow.retries or 0):
            parent._sleep(float(flow.retry_delay_seconds or 0))
            continue
        break
    if state.name != NOT_RUN:
        parent._run_flow_hooks(state, flow)
    if raised is not None and not return_state:
        raise raised
    state._run = True  # a run's state: returned by the parent, it counts as one
    if state.is_completed():
        parent.subflow_results[call] = state
    return state if return_state else state.result()


def _wait_for_upstream(wait_for: Iterable[Any] | None) -> None:
    """A subflow's `wait_for`: each future (or state) in it final; UpstreamFailed for the first that did
    not complete, unless given as `allow_failure(...)`."""
    from .futures import allow_failure, resolve_futures_to_states
    from .states import State, UpstreamFailed

    for item in wait_for or ():
        allowed = type(item) is allow_failure
        resolved = resolve_futures_to_states(item.value if allowed else item)
        for state in resolved if isinstance(resolved, (list, tuple, set)) else [resolved]:
            if isinstance(state, State) and not allowed and not state.is_completed():
                raise UpstreamFailed(f"upstream in wait_for ended {state.name}"
                                     + (f" ({state.message})" if state.message else ""))


# The function's parameter is named as Prefect's decorator (a FlowDecorator's mangled `__fn`) names it.
flow.__signature__ = options_signature(Flow.__init__, "_FlowDecorator__fn")  # type: ignore[attr-defined]
flow.from_source = Flow.from_source  # type: ignore[attr-defined] - as Prefect's decorator has it
Flow.with_options.__signature__ = options_signature(Flow.__init__, "self")  # type: ignore[attr-defined]
