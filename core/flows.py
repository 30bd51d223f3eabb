"""The `@flow` decorator, with Prefect 3's options and meaning."""

from __future__ import annotations

import copy
import functools
import inspect
from typing import Any, Callable

from .context import current_flow_run


class Launchers:
    """How a flow called from Python outside any run is run (`flows_tui.launch.runner`) and how
    `Flow.serve` serves (`flows_tui.schedule.serve`).

    Both live in layers above this module, which must not import them: flows_tui/__init__.py
    plugs them in, and it runs before any Flow can exist.
    """

    run_from_python: Callable[..., Any]
    serve_flow: Callable[..., None]


launchers = Launchers()


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
        task_runner: Any = None,
        persist_result: bool | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError("@flow must decorate a function")
        if inspect.iscoroutinefunction(fn):
            raise TypeError(f"flow {fn.__qualname__!r} is async; flows-tui runs synchronous flows only")
        self.fn = fn
        self.name = name or fn.__name__.replace("_", "-")
        self.description = description or inspect.getdoc(fn)
        self.version = version
        self.retries = int(retries or 0)
        self.retry_delay_seconds = retry_delay_seconds
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError(f"flow {self.name!r}: timeout_seconds must be > 0, got {timeout_seconds}")
        self.timeout_seconds = timeout_seconds
        self.log_prints = log_prints
        self.flow_run_name = flow_run_name
        self.should_validate_parameters = validate_parameters
        self.on_completion_hooks = list(on_completion or ())
        self.on_failure_hooks = list(on_failure or ())
        # As in Prefect 3, a crash or a cancellation calls its own hooks, not on_failure.
        self.on_crashed_hooks = list(on_crashed or ())
        self.on_cancellation_hooks = list(on_cancellation or ())
        self.task_runner = task_runner  # accepted for Prefect compatibility; Dask always runs the tasks
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

        if not self.should_validate_parameters:
            bound = self.signature.bind(**parameters)
            bound.apply_defaults()
            return dict(bound.arguments)
        return validate_parameters(self.fn, parameters, flow_name=self.name, from_text=from_text)

    def __call__(self, *args: Any, return_state: bool = False, **kwargs: Any) -> Any:
        bound = self.signature.bind(*args, **kwargs)
        parameters = dict(bound.arguments)
        parent = current_flow_run()
        if parent is not None:
            # A subflow: its body runs in the parent's driver, its tasks join the parent's run.
            value = self.fn(**self.validate(parameters))
            return value
        return launchers.run_from_python(self, parameters, return_state=return_state)

    def with_options(self, **options: Any) -> "Flow":
        clone = copy.copy(self)
        hooks = {name: f"{name}_hooks" for name in ("on_completion", "on_failure", "on_crashed", "on_cancellation")}
        for key, value in options.items():
            if key == "validate_parameters":
                clone.should_validate_parameters = value
                continue
            attribute = hooks.get(key, key)
            if not hasattr(clone, attribute) or key in ("fn", "signature"):
                raise TypeError(f"with_options() got an unknown option {key!r}")
            setattr(clone, attribute, list(value or ()) if key in hooks else value)
        return clone

    def serve(self, name: str | None = None, *, cron: str | None = None, interval: Any = None,
              parameters: dict[str, Any] | None = None, timezone: str | None = None, overlap: str = "skip",
              catchup: str = "skip", grace: float = 30.0, **ignored: Any) -> None:
        """Run this flow on a schedule, headless, until SIGTERM or Ctrl-C (Prefect's `flow.serve`).

        `interval` is seconds, a timedelta or text like "5m"; the cluster, store and notifications
        come from flows.toml in the current directory, as for `flows-tui serve`.
        """
        launchers.serve_flow(self, cron=cron, interval=interval, parameters=parameters or {}, timezone=timezone,
                   overlap=overlap, catchup=catchup, grace=grace)

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


def flow(__fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Decorate a function as a flow: `@flow` or `@flow(name=..., retries=...)`."""
    if __fn is not None:
        return Flow(__fn, **options)
    return lambda fn: Flow(fn, **options)
