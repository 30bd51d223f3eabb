"""Task calls from the flow body: `submit` and `map`, argument templating and upstream
dependencies (`_Dependencies`), run names, the cache spec, and the session's reuse of
earlier runs' results."""

from __future__ import annotations

import datetime as _dt
import inspect
import logging
import os
from typing import TYPE_CHECKING, Any, Iterable

from flows_tui.cache import CacheSpec
from flows_tui.cache_policies import FlowParameters, TaskSource, policy_of, reads
from flows_tui.errors import describe as _describe
from flows_tui.futures import TaskFuture, TaskFutureList, allow_failure, opaque, quote, unmapped
from flows_tui.record import events as ev
from flows_tui.states import CACHED, SUCCESS_STATES, State, UpstreamFailed
from flows_tui.states import now as _now
from flows_tui.user_code.task_source import task_source

from .in_process import by_reference
from .outcome import Ref, outcome_length
from .session import Held, HeldCall, NotReusable, lineage_key
from .task_runs import ALLOWED, NEEDED, _Tracking
from .worker import TaskCall, run_task_run

if TYPE_CHECKING:
    from flows_tui.tasks import Task

    from .flow_run import FlowRunEngine

logger = logging.getLogger("flows_tui.engine")


_NONE_ALLOWED: frozenset[int] = frozenset()  # no argument's failure allowed


class _Dependencies:
    """Collects the upstream futures of one task call and turns its arguments into a template."""

    def __init__(self, engine: "FlowRunEngine") -> None:
        self.engine = engine
        self.task_run_ids: list[str] = []
        self.futures: list[Any] = []
        self.strict: set[int] = set()  # indices passed at least once without allow_failure
        self._index: dict[str, int] = {}

    def ref(self, task_run_id: str, allowed: bool, item: int | None = None) -> Ref:
        index = self._index.get(task_run_id)
        if index is None:
            index = self._index[task_run_id] = len(self.task_run_ids)
            self.task_run_ids.append(task_run_id)
            self.futures.append(self.engine._tracking[task_run_id].future)
        if not allowed:
            self.strict.add(index)
        return Ref(index, item)

    def template(self, value: Any, allowed: bool = False) -> Any:
        kind = type(value)
        if kind is TaskFuture:
            if value.engine is not self.engine:
                raise ValueError(f"future {value.name!r} belongs to another flow run")
            return self.ref(value.task_run_id, allowed)
        if kind is allow_failure:
            return self.template(value.value, True)
        if kind is unmapped:
            return self.template(value.value, allowed)
        if kind is quote:  # as it is: nothing inside is resolved
            return value.value
        if kind is opaque:  # the future itself is resolved, what its value holds is not searched
            inner = value.value
            return self.template(inner, allowed) if type(inner) in (TaskFuture, State) else inner
        if kind is State and getattr(value, "_task_run_id", None):
            return self.ref(value._task_run_id, allowed)
        if isinstance(value, (list, set, frozenset)):
            items = [self.template(v, allowed) for v in value]
            return items if isinstance(value, list) else type(value)(items) if kind in (set, frozenset) else set(items)
        if isinstance(value, tuple):
            items = [self.template(v, allowed) for v in value]
            return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
        if isinstance(value, dict):
            return {k: self.template(v, allowed) for k, v in value.items()}
        return value

    @property
    def allowed(self) -> frozenset[int]:
        if len(self.strict) == len(self.task_run_ids):
            return _NONE_ALLOWED  # the common case, one object for every task call of a map (and its pickle)
        return frozenset(set(range(len(self.task_run_ids))) - self.strict)


class TaskCalls:
    """The engine's part that turns task calls into Dask futures (a mixin of FlowRunEngine)."""

    # Task calls from the body -------------------------------------------------------------------

    def _check_abort(self) -> None:
        if self._abort is not None:
            raise self._abort

    def submit(self, task: "Task", args: tuple, kwargs: dict, *, wait_for: Iterable[Any] | None = None) -> TaskFuture:
        self._check_abort()
        bound = task.signature.bind(*args, **kwargs)
        deps = _Dependencies(self)
        args_template = deps.template(bound.args)
        kwargs_template = deps.template(bound.kwargs)
        for upstream in wait_for or ():
            deps.template(upstream)
        name = self._run_name(task, bound, None)
        [future] = self._launch(task, [(name, None, args_template, kwargs_template, deps)])
        return future

    def map(self, task: "Task", args: tuple, kwargs: dict, *, wait_for: Iterable[Any] | None = None) -> TaskFutureList:
        self._check_abort()
        bound = task.signature.bind(*args, **kwargs)
        iterables: dict[str, Any] = {}
        static: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            wrapped = value.value if type(value) is allow_failure else value
            if type(wrapped) is unmapped:
                static[name] = value
            elif type(wrapped) is TaskFuture:
                # Mapping over one future: learn its length on the cluster, leave its data there.
                iterables[name] = ("future", value, self._remote_length(wrapped))
            elif _is_iterable(wrapped):
                iterables[name] = ("items", value, len(list(wrapped)) if not hasattr(wrapped, "__len__") else len(wrapped))
            else:
                static[name] = value
        if not iterables:
            from flows_tui.exceptions import MappingMissingIterable

            raise MappingMissingIterable(f"{task.name}.map() received no iterable parameters; "
                             "map needs at least one list-like argument (wrap whole values in unmapped())")
        lengths = {name: length for name, (_, _, length) in iterables.items()}
        if len(set(lengths.values())) > 1:
            from flows_tui.exceptions import MappingLengthMismatch

            raise MappingLengthMismatch(f"{task.name}.map() received iterables of different lengths: {lengths}; "
                             "every mapped parameter must have the same length")
        count = next(iter(lengths.values()))
        if count == 0:
            return TaskFutureList()
        materialized = {name: (list(v.value if type(v) is allow_failure else v) if kind == "items" else v)
                        for name, (kind, v, _) in iterables.items()}
        calls = []
        layout = _layout(task.signature, bound.arguments)
        for index in range(count):
            deps = _Dependencies(self)
            arguments: dict[str, Any] = {}
            for name in bound.arguments:
                if name in static:
                    arguments[name] = deps.template(static[name])
                    continue
                kind, original, _ = iterables[name]
                allowed = type(original) is allow_failure
                if kind == "future":
                    future = original.value if allowed else original
                    arguments[name] = deps.ref(future.task_run_id, allowed, item=index)
                else:
                    arguments[name] = deps.template(materialized[name][index], allowed)
            for upstream in wait_for or ():
                deps.template(upstream)
            if layout is None:
                element = task.signature.bind_partial()
                element.arguments.update(arguments)
                args, kwargs = element.args, element.kwargs
            else:
                positional, keyword = layout
                args = tuple([arguments[name] for name in positional])
                kwargs = {name: arguments[name] for name in keyword}
            calls.append((self._run_name(task, bound, index, arguments), index, args, kwargs, deps))
        return TaskFutureList(self._launch(task, calls))

    def _remote_length(self, future: TaskFuture) -> int:
        state = self.final_state(future, seen_by_body=False)
        if state.name not in SUCCESS_STATES:
            self._tracking[future.task_run_id].seen_by_body = True
            raise UpstreamFailed(f"cannot map over {future.name!r}: it ended {state.name}"
                                 + (f" ({state.message})" if state.message else ""))
        return self.client.submit(outcome_length, self._tracking[future.task_run_id].future, pure=False).result()

    def _run_name(self, task: "Task", bound: Any, map_index: int | None, arguments: dict | None = None) -> str:
        with self._lock:
            number = self._names[task.name]
            self._names[task.name] += 1
        fallback = f"{task.name}-{number}"
        if task.task_run_name is None:
            return fallback
        parameters = dict(bound.arguments if arguments is None else arguments)
        return task.format_run_name(parameters, fallback)

    @property
    def _cache_dir_text(self) -> str | None:
        return None if self.cache_dir is None else str(self.cache_dir)

    def _cache_spec(self, task: "Task") -> CacheSpec | None:
        """How `task` caches in this run; None, without any hashing, for a task without cache options."""
        policy = policy_of(task)
        if policy is None:
            return None
        if task in self._cache_specs:
            return self._cache_specs[task]
        spec = None
        if self.cache_dir is None:
            self.log(logging.WARNING, f"task {task.name!r} is not cached: this run has no state_dir to keep "
                                      "results in")
        else:
            try:
                # On the client, once per task: the workers only hash the inputs.
                source = task_source(task) if reads(policy, TaskSource) else None
            except Exception as error:  # code the walk cannot read must not stop the run
                self.log(logging.WARNING, f"task {task.name!r} is not cached: its source could not be read "
                                          f"({_describe(error)})")
            else:
                expiration = task.cache_expiration
                if isinstance(expiration, _dt.timedelta):
                    expiration = expiration.total_seconds()
                spec = CacheSpec(str(self.cache_dir), self.flow.name, source,
                                 self.parameters if reads(policy, FlowParameters) else None,
                                 bool(task.refresh_cache), expiration)
        self._cache_specs[task] = spec
        return spec

    def _launch(self, task: "Task", calls: list[tuple]) -> list[TaskFuture]:
        """Record and submit task runs; several calls (a map) go to Dask as one graph."""
        if self.intercept is not None:
            self.intercept(task, calls)
        log_prints = task.log_prints if task.log_prints is not None else self.log_prints
        cache = self._cache_spec(task)
        plan = self._session_plan(task, calls)
        created = _now()
        futures, submitted, keys, shared, elements, upstreams = [], [], [], [], [], []
        # 64 random bits per id, from one call for the whole batch: a call each (uuid4) costs a
        # system call per task run, and the driver gives up the GIL to the scheduler's loop at each.
        random_ids = os.urandom(8 * len(calls)).hex()
        keep_calls = self.session is not None  # `d` and the inputs screen read them from the session
        with self._lock:
            self._check_abort()
            # The map's events go to the bus as one batch: one hand-over to the journal, not one each.
            batch, self._batch = self._batch, []
            try:
                self._create_task_runs(task, calls, plan, random_ids, created, keep_calls, log_prints, cache,
                                       futures, submitted, keys, shared, elements, upstreams)
            finally:
                events, self._batch = self._batch, batch
                if batch is not None:
                    batch.extend(events)
                else:
                    self.bus.publish_many(events)
        if not elements:
            return futures
        self._subscribe_with_first_task()
        if len(elements) == 1:
            dask_futures = [self.client.submit(run_task_run, shared[0], elements[0], *upstreams[0], key=keys[0],
                                               pure=False)]
        else:
            # Dask maps over columns: each upstream position is one, padded with None where an
            # element has fewer upstreams (the worker drops the padding).
            width = max(map(len, upstreams))
            columns = [[row[i] if i < len(row) else None for row in upstreams] for i in range(width)]
            dask_futures = self.client.map(run_task_run, shared, elements, *columns, key=keys, pure=False)
        with self._lock:
            for task_run_id, dask_future in zip(submitted, dask_futures):
                self._tracking[task_run_id].future = dask_future
            if len(futures) > 1:  # a map: its elements' results are fetched together (engine.results)
                siblings = [future.task_run_id for future in futures]
                for (_, map_index, *_), task_run_id in zip(calls, siblings):
                    track = self._tracking[task_run_id]
                    # The map index is the element's place in its map: one int object for both.
                    track.siblings, track.position = siblings, map_index
        return futures

    def _create_task_runs(self, task: "Task", calls: list[tuple], plan: list, random_ids: str, created: Any,
                          keep_calls: bool, log_prints: bool, cache: CacheSpec | None, futures: list,
                          submitted: list, keys: list, shared: list, elements: list, upstreams: list) -> None:
        """Record each call's task run and what goes to Dask for it (lock held)."""
        # What every task run of this call shares goes to Dask once (one object in the graph the
        # scheduler keeps), one per set of upstreams whose failure is allowed (the same for every
        # element of a map, but for an odd `allow_failure` inside a mapped list).
        calls_by_allowed: dict[frozenset[int], Any] = {}
        if self._dropped:
            self._let_go_of_dropped()
        # Without a session nothing reads a task run's result but through its TaskFuture (or a State of
        # it): the run lets go of the result once the body no longer holds either (task_runs).
        watch_body = self.session is None
        for number, ((name, map_index, args_template, kwargs_template, deps), (lineage, held)) in enumerate(
                zip(calls, plan)):
            task_run_id = random_ids[16 * number:16 * number + 16]
            self._sequence += 1
            key = f"{task.name}-{self.run_id}-{self._sequence}"
            track = self._tracking[task_run_id] = _Tracking(key, lineage=lineage)
            self._by_sequence.append(task_run_id)
            upstream = tuple(deps.task_run_ids)
            allowed = deps.allowed
            for index, upstream_id in enumerate(upstream):
                used = self._tracking[upstream_id]
                if index in allowed:
                    used.consumed = used.consumed or ALLOWED
                else:
                    used.consumed = NEEDED
            self._open_ids.add(task_run_id)
            self._emit(ev.TaskRunCreated(self.run_id, task_run_id, task.name, name, created, map_index,
                                         upstream, self.flow_attempt))
            future = TaskFuture(self, task_run_id, name)
            futures.append(future)
            if watch_body:
                self._watch_body_ref(future, track)
            if held is not None:
                # Downstream calls take the held future as their upstream: its data stays on the workers.
                track.future, track.reused_from = held.future, held.run_id
                self._end_task_run(task_run_id, CACHED, f"reused from run {held.run_id}")
                continue
            call = calls_by_allowed.get(allowed)
            if call is None:
                call = TaskCall(self.run_id, "", "", None, self.topic, task, allowed, log_prints, self.log_level,
                                cache, self._cache_dir_text, self.flow.name)
                if self._same_process:  # shared, not copied, as in Prefect's thread pool
                    call = by_reference(self.run_id, call)
                calls_by_allowed[allowed] = call
            if keep_calls:  # as the body made it: `d` and the inputs screen look at it
                track.call = (task, args_template, kwargs_template, deps.futures, deps.allowed)
            default_name = map_index is not None and name == f"{task.name}-{map_index}"
            element = (task_run_id, None if default_name else name, map_index, args_template,
                       kwargs_template or None)
            if self._same_process:
                element = by_reference(self.run_id, element)
            shared.append(call)
            elements.append(element)
            upstreams.append(deps.futures)
            submitted.append(task_run_id)
            keys.append(key)

    # Reusing results of earlier runs (the session) ------------------------------------------------

    def _session_plan(self, task: "Task", calls: list[tuple]) -> list[tuple[str | None, Held | None]]:
        """Each call's lineage (None: not reusable) and the held result it reuses (None: it runs)."""
        if self.session is None:
            return [(None, None)] * len(calls)
        plan: list[tuple[str | None, Held | None]] = []
        for _, map_index, args_template, kwargs_template, deps in calls:
            # A value the body received from a task run and passes on is an upstream too, as a
            # future would be (Prefect tracks results by identity the same way): a path returned
            # by a task that ran again may name data that changed under the same name.
            received = [task_run_id for task_run_id in self._received_in((args_template, kwargs_template))
                        if task_run_id not in deps.task_run_ids]
            upstream = [self._tracking[task_run_id] for task_run_id in (*deps.task_run_ids, *received)]
            lineages = [track.lineage for track in upstream]
            if None in lineages:  # an input nobody can name: neither can this call's result
                plan.append((None, None))
                continue
            try:
                lineage = lineage_key(task, args_template, kwargs_template, lineages, map_index)
            except NotReusable as reason:
                if task.name not in self._not_reusable:
                    self._not_reusable.add(task.name)
                    self.log(logging.WARNING, f"task {task.name!r} runs every time, never reused: {reason}")
                plan.append((None, None))
                continue
            if lineage is None:  # NO_CACHE or refresh_cache: the user wants it computed every run
                plan.append((None, None))
                continue
            held = None
            # Only on reused inputs: an upstream that ran again (a failure retried, a task that always
            # runs) may have produced different data, even under the same lineage.
            if self.reuse and all(track.reused_from is not None for track in upstream):
                held = self.session.find(self.flow.name, lineage)
            plan.append((lineage, held))
        return plan

    def _remember_received(self, value: Any, task_run_id: str) -> None:
        """Note that the body got `value` (and its elements, which `.map()` hands on one by one) from a task run."""
        # Held with the value, so its id names this object until the run ends.
        self._received[id(value)] = (value, task_run_id)
        kind = type(value)
        if kind is list or kind is tuple:
            for item in value:
                self._received.setdefault(id(item), (item, task_run_id))
        elif kind is dict:
            for item in value.values():
                self._received.setdefault(id(item), (item, task_run_id))

    def _received_in(self, template: Any) -> list[str]:
        """The task runs whose values, as the body received them, appear in `template` (in order, once each)."""
        found: list[str] = []
        if not self._received:
            return found

        def walk(value: Any) -> None:
            if value is None or value is True or value is False:  # singletons: no one's in particular
                return
            entry = self._received.get(id(value))
            if entry is not None and entry[0] is value and entry[1] not in found:
                found.append(entry[1])
            kind = type(value)
            if kind is list or kind is tuple or kind is set or kind is frozenset:
                for item in value:
                    walk(item)
            elif kind is dict:
                for item in value.values():
                    walk(item)

        walk(template)
        return found

    def _keep_results(self) -> None:
        """Leave this run's successful results (computed or reused) in the session (lock held)."""
        task_runs = self.flow_run.task_runs
        results = {track.lineage: Held(track.future, track.reused_from or self.run_id)
                   for task_run_id, track in self._tracking.items()
                   if track.lineage is not None and track.future is not None
                   and task_runs[task_run_id].state in SUCCESS_STATES}
        held = {task_run_id: HeldCall(track.future, track.call, track.reused_from)
                for task_run_id, track in self._tracking.items() if track.future is not None}
        self.session.keep(self.flow.name, self.run_id, results, held)


def _layout(signature: inspect.Signature, arguments: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """Which of a map's parameters go to each element's call by position and which by name, as
    `BoundArguments.args`/`.kwargs` place them: the same for every element, found once per map
    (binding each element on its own took a third of the driver's time per task run). None for a
    signature with `*args` or `**kwargs`, whose elements are bound one by one."""
    if any(parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
           for parameter in signature.parameters.values()):
        return None
    names = inspect.BoundArguments(signature, {name: name for name in arguments})
    return tuple(names.args), tuple(names.kwargs)


def _is_iterable(value: Any) -> bool:
    """Prefect's rule: iterable, but not str, bytes or a file-like object."""
    import io

    if isinstance(value, (str, bytes, io.IOBase)):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True
