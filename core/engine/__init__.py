"""One flow run on Dask: the driver (`flow_run`), the task wrapper that runs on workers
(`worker`), reuse between runs (`session`), and the cluster it runs on (`cluster`)."""
