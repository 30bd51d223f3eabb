"""Dask summary: statistics of a generated time series, and Dask inside a task.

`dask.datasets.timeseries` generates the data (no download): by default a week of
readings, one every 10 s, one partition per day. `summarize` computes overall
aggregations within its own task, `stats_per_name` shows the pattern for data
too big for one worker — `with get_dask_client() as client:` computes a Dask
DataFrame on every worker of the run's cluster and returns only the small pandas
result — and `log_summary` logs both.

    flows-tui run dask_summary
    flows-tui run dask_summary -p days=30 -p freq=1s
"""

import dask
import dask.datasets
import dask.dataframe as dd
import pandas as pd

from flows_tui import flow, get_dask_client, get_run_logger, task

START = pd.Timestamp("2024-01-01")


def readings(days: int, freq: str, seed: int) -> dd.DataFrame:
    """The time series as a lazy Dask DataFrame: nothing is generated until it is computed."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    return dask.datasets.timeseries(start=START, end=START + pd.Timedelta(days=days), freq=freq,
                                    partition_freq="1D", seed=seed)


@task
def summarize(days: int, freq: str, seed: int) -> dict:
    frame = readings(days, freq, seed)
    # One pass over the partitions for all aggregations. The threaded scheduler keeps the
    # work inside this task: a plain `.compute()` here would go to the cluster while this
    # task holds a worker thread, which is what get_dask_client() (below) is for.
    rows, names, x_mean, x_std, y_min, y_max = dask.compute(
        frame["x"].count(), frame["name"].nunique(), frame["x"].mean(), frame["x"].std(),
        frame["y"].min(), frame["y"].max(), scheduler="threads")
    return {"rows": int(rows), "days": days, "partitions": frame.npartitions, "names": int(names),
            "x_mean": float(x_mean), "x_std": float(x_std), "y_min": float(y_min), "y_max": float(y_max)}


@task
def stats_per_name(days: int, freq: str, seed: int) -> pd.DataFrame:
    frame = readings(days, freq, seed)
    per_name = frame.groupby("name").agg(readings=("x", "count"), x_mean=("x", "mean"), y_max=("y", "max"))
    # Dask inside a task: every worker generates and aggregates its partitions; only the
    # per-name table (a few dozen rows) comes back to this task.
    with get_dask_client() as client:
        table = client.compute(per_name).result()
        get_run_logger().info("per-name statistics computed on a cluster of %d workers", len(client.nthreads()))
    return table.sort_values("readings", ascending=False)


@task
def log_summary(summary: dict, per_name: pd.DataFrame, top: int) -> dict:
    logger = get_run_logger()
    logger.info("rows: %s over %d days in %d partitions, %d names", f"{summary['rows']:,}", summary["days"],
                summary["partitions"], summary["names"])
    logger.info("x: mean %.4f, std %.4f; y: min %.4f, max %.4f", summary["x_mean"], summary["x_std"],
                summary["y_min"], summary["y_max"])
    for name, row in per_name.head(top).iterrows():
        logger.info("most readings: %-8s %6d (x mean %+.4f)", name, row["readings"], row["x_mean"])
    return {**summary, "top_names": list(per_name.index[:top])}


@flow(name="dask_summary")
def dask_summary(days: int = 7, freq: str = "10s", seed: int = 42, top: int = 5) -> dict:
    # One after the other rather than submitted together: on Python < 3.12 two threads of one
    # process building Dask DataFrames at once can deadlock in functools.cached_property's lock
    # (CPython gh-87634), and a thread cluster or threads_per_worker > 1 puts both in one process.
    summary = summarize(days, freq, seed)
    per_name = stats_per_name(days, freq, seed)
    return log_summary(summary, per_name, top)


if __name__ == "__main__":
    print(dask_summary())
