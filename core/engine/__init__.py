"""One flow run on Dask.

Client side, in `FlowRunEngine` (`flow_run`): the flow-run lifecycle (driver thread, flow
retries, timeout, final state, hooks) in `flow_run`; the table of task runs and the waits
and results the body asks for in `task_runs`; task calls (submit, map, argument templates,
dependencies, cache spec, session reuse) in `task_calls`; worker reports becoming events in
`task_reports`; watching Dask (worker deaths, lost reports, scheduler loss) in `dask_watch`.

Worker side: the attempt loop, where retries are decided (`worker`); the envelope a task
run returns and its serializer (`outcome`); shipping reports (`reports`) in the format of
`wire`. Around them: reuse between runs (`session`) and the cluster (`cluster`).
"""
