"""GitHub archive ETL: GH Archive-style files → the commits of every push → Parquet.

GH Archive (https://www.gharchive.org) publishes each hour of public GitHub events
as a `.json.gz` file, one JSON event per line. This flow writes a few such files
under `data_dir` (generated, no download), lists them (`create_list`), reads them
with `dask.bag`, keeps the PushEvents, flattens their commits into a Dask DataFrame
with one row per commit, and writes it as Parquet.

It also shows "a big cluster only when the data is big": `cluster_for` gives the
ETL the run's whole cluster (the scheduler flows-tui is attached to, or its
embedded LocalCluster) when the input is over `big_input_bytes`, and a small
LocalCluster inside the task otherwise. Either way every worker reads `data_dir`,
so on a remote cluster point it at storage they share.

    flows-tui run github_etl
    flows-tui run github_etl -p hours=24 -p big_input_bytes=0 --address tcp://127.0.0.1:8786
"""

import contextlib
import datetime as _dt
import gzip
import json
import logging
import random
from pathlib import Path
from typing import Iterator

import dask.bag as db
import dask.dataframe as dd
import pandas as pd
from distributed import Client, LocalCluster

from flows_tui import flow, get_dask_client, get_run_logger, task

ARCHIVE_DAY = _dt.datetime(2024, 1, 1, tzinfo=_dt.timezone.utc)
EVENT_TYPES = {"PushEvent": 50, "WatchEvent": 15, "PullRequestEvent": 10, "IssuesEvent": 8,
               "IssueCommentEvent": 8, "CreateEvent": 6, "ForkEvent": 3}
COMMIT_COLUMNS = dict.fromkeys(["created_at", "repo", "actor", "ref", "sha", "author", "message"], "string")


# Generating the archive ---------------------------------------------------------------------

def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def _payload(kind: str, rng: random.Random) -> dict:
    if kind == "PushEvent":
        commits = [{"sha": _sha(rng), "author": {"name": f"dev{rng.randrange(500)}",
                                                  "email": f"dev{rng.randrange(500)}@example.com"},
                    "message": rng.choice(["fix typo", "add tests", "bump version", "refactor parser",
                                           "update docs", "handle empty input"]),
                    "distinct": True}
                   for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 5]))]
        return {"push_id": rng.randrange(10 ** 10), "size": len(commits), "distinct_size": len(commits),
                "ref": rng.choice(["refs/heads/main", "refs/heads/main", "refs/heads/dev"]),
                "head": commits[-1]["sha"], "before": _sha(rng), "commits": commits}
    if kind in ("IssuesEvent", "PullRequestEvent"):
        return {"action": rng.choice(["opened", "closed"]), "number": rng.randrange(1, 5000)}
    if kind == "IssueCommentEvent":
        return {"action": "created", "issue": {"number": rng.randrange(1, 5000)}}
    if kind == "CreateEvent":
        return {"ref": "main", "ref_type": "branch"}
    return {"action": "started"} if kind == "WatchEvent" else {}


def archive_events(hour: int, count: int, seed: int) -> Iterator[dict]:
    """One hour of public events in GH Archive's shape, the same for the same arguments."""
    rng = random.Random(seed * 100 + hour)
    kinds, weights = list(EVENT_TYPES), list(EVENT_TYPES.values())
    start = ARCHIVE_DAY + _dt.timedelta(hours=hour)
    for number in range(count):
        kind = rng.choices(kinds, weights)[0]
        repo = f"org{rng.randrange(40)}/project{rng.randrange(25)}"
        created = start + _dt.timedelta(seconds=3600 * number // count)
        yield {"id": str(hour * 10 ** 7 + number), "type": kind,
               "actor": {"id": rng.randrange(10 ** 6), "login": f"user{rng.randrange(2000)}"},
               "repo": {"id": rng.randrange(10 ** 6), "name": repo, "url": f"https://api.github.com/repos/{repo}"},
               "payload": _payload(kind, rng), "public": True,
               "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ")}


@task
def write_archive(directory: str, hours: int, events_per_hour: int, seed: int) -> str:
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json.gz"):  # a previous run may have written more hours
        stale.unlink()
    for hour in range(hours):
        path = folder / f"{ARCHIVE_DAY:%Y-%m-%d}-{hour}.json.gz"  # GH Archive's file names
        with gzip.open(path, "wt", encoding="utf-8") as file:
            for event in archive_events(hour, events_per_hour, seed):
                file.write(json.dumps(event) + "\n")
    get_run_logger().info("wrote %d hours of %d events to %s", hours, events_per_hour, folder)
    return str(folder)


@task
def create_list(directory: str) -> list[str]:
    files = sorted(str(path) for path in Path(directory).glob("*.json.gz"))
    if not files:
        raise FileNotFoundError(f"no .json.gz files in {directory}")
    return files


# The ETL ------------------------------------------------------------------------------------

def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@contextlib.contextmanager
def cluster_for(size_bytes: int, threshold_bytes: int) -> Iterator[Client]:
    """A Dask client sized for the input: the run's cluster when it is big, a LocalCluster here when not.

    The run's cluster is the scheduler flows-tui attached to (`--address`,
    `DASK_SCHEDULER_ADDRESS`, `[cluster] address`), else its embedded LocalCluster.
    A small input is not worth the trip: a LocalCluster of threads starts here in a
    fraction of a second and reads the files where they are.
    """
    logger = get_run_logger()
    if size_bytes > threshold_bytes:
        with get_dask_client() as client:
            logger.info("input %s is over the %s threshold: computing on the run's cluster at %s (%d workers)",
                        _megabytes(size_bytes), _megabytes(threshold_bytes), client.scheduler.address,
                        len(client.nthreads()))
            yield client
        return
    logger.info("input %s is within the %s threshold: computing on a LocalCluster inside this task",
                _megabytes(size_bytes), _megabytes(threshold_bytes))
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster, set_as_default=False) as client:
        yield client


def commit_rows(event: dict) -> list[dict]:
    return [{"created_at": event["created_at"], "repo": event["repo"]["name"], "actor": event["actor"]["login"],
             "ref": event["payload"]["ref"], "sha": commit["sha"], "author": commit["author"]["name"],
             "message": commit["message"]}
            for commit in event["payload"]["commits"]]


def push_commits(files: list[str]) -> dd.DataFrame:
    """One row per commit of every PushEvent in `files` (lazy: nothing is read yet)."""
    events = db.read_text(files).map(json.loads)  # gzip is inferred from the suffix; one partition per file
    pushes = events.filter(lambda event: event["type"] == "PushEvent")
    commits = pushes.map(commit_rows).flatten().to_dataframe(meta=COMMIT_COLUMNS)
    return commits.assign(created_at=dd.to_datetime(commits["created_at"], utc=True))


@task
def write_commits_parquet(files: list[str], output: str, big_input_bytes: int) -> str:
    size = sum(Path(file).stat().st_size for file in files)
    with cluster_for(size, big_input_bytes) as client:
        client.compute(push_commits(files).to_parquet(output, write_index=False, overwrite=True,
                                                      compute=False)).result()
    return output


@task
def summarize_commits(path: str) -> dict:
    commits = pd.read_parquet(path)
    busiest = commits["repo"].value_counts().head(3)
    logger = get_run_logger()
    logger.info("%d commits from %d repositories written to %s", len(commits), commits["repo"].nunique(), path)
    for repo, count in busiest.items():
        logger.info("most commits: %s (%d)", repo, count)
    return {"path": path, "rows": len(commits), "repos": int(commits["repo"].nunique())}


@flow(name="github_etl")
def github_etl(hours: int = 4, events_per_hour: int = 3000, seed: int = 1,
               data_dir: str = ".flows-tui/data", big_input_bytes: int = 50_000_000) -> dict:
    # Resolved here, in the process driving the flow, so every task sees the same absolute path.
    root = Path(data_dir).resolve() / "github_etl"
    archive = write_archive(str(root / "archive"), hours, events_per_hour, seed)
    files = create_list(archive)
    output = write_commits_parquet(files, str(root / "push_commits.parquet"), big_input_bytes)
    return summarize_commits(output)


if __name__ == "__main__":
    print(github_etl())
