"""The bundled sample flows, each run end to end through `flows-tui run` as a new user runs them.

They run on a copy of the repository's flows.toml and sample_flows/, with one change: a
LocalCluster of threads (starts in 0.02 s instead of 0.7 s), which keeps the suite fast.
Worker processes are covered by test_cli_run's runs of the bundled samples.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, cli


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory holding the sample flows and the repository's flows.toml on threads."""
    project = tmp_path_factory.mktemp("samples")
    shutil.copytree(ROOT / "sample_flows", project / "sample_flows", ignore=shutil.ignore_patterns("__pycache__"))
    config = (ROOT / "flows.toml").read_text(encoding="utf-8")
    threaded, count = re.subn(r"(?m)^processes\s*=\s*true", "processes = false", config)
    assert count == 1, "flows.toml no longer sets `processes = true` under [cluster]"
    (project / "flows.toml").write_text(threaded, encoding="utf-8")
    return project


def run_sample(project: Path, name: str, *params: str, exit_code: int = 0, config: str | None = None,
               env: dict | None = None) -> tuple[dict, str]:
    """`flows-tui run NAME -p ... --json`: the JSON document and the progress and logs (stderr)."""
    args = [arg for param in params for arg in ("-p", param)]
    if config is not None:
        args += ["--config", config]
    result = cli("run", name, *args, "--json", cwd=project, env=env)
    assert result.returncode == exit_code, result.stderr
    return json.loads(result.stdout), result.stderr


def tasks_named(document: dict, name: str) -> list[dict]:
    return [t for t in document["tasks"] if t["name"].rsplit("-", 1)[0] == name]


def test_every_sample_loads_and_flows_toml_checks_clean(samples):
    result = cli("check", cwd=samples)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: 5 flows in 5 files" in result.stdout


def test_map_reduce_sums_the_incremented_and_doubled_range(samples):
    document, logs = run_sample(samples, "map_reduce", "n=20")
    assert document["state"] == "Completed"
    assert len(document["tasks"]) == 3 * 20 + 1
    assert "sum of 20 values: 590" in logs  # sum(i + 1 + 2 * i for i in range(20))


def test_taxi_tips_logs_the_best_trip_of_every_hour(samples):
    document, logs = run_sample(samples, "taxi_tips", "rows=3000", "failure_rate=0")
    assert document["state"] == "Completed"
    assert len(tasks_named(document, "clean")) == len(tasks_named(document, "best")) == 24
    for hour in range(24):
        assert f"hour {hour:02d}: best tip" in logs
    assert "most generous hour" in logs


def test_dask_summary_logs_the_aggregations_and_the_per_name_table_computed_on_all_workers(samples):
    document, logs = run_sample(samples, "dask_summary", "days=2", "top=3")
    assert document["state"] == "Completed"
    assert "rows: 17,280 over 2 days in 2 partitions, 26 names" in logs  # one row every 10 s
    assert re.search(r"x: mean -?\d\.\d{4}, std \d\.\d{4}; y: min -?\d\.\d{4}, max -?\d\.\d{4}", logs)
    assert "per-name statistics computed on a cluster of 2 workers" in logs
    assert logs.count("most readings:") == 3


def push_commits_in(archive: Path) -> int:
    """What the Parquet output should hold, counted straight from the generated files."""
    count = 0
    for path in archive.glob("*.json.gz"):
        with gzip.open(path, "rt", encoding="utf-8") as file:
            events = [json.loads(line) for line in file]
        assert {event["type"] for event in events} > {"PushEvent", "WatchEvent", "IssuesEvent"}
        count += sum(len(event["payload"]["commits"]) for event in events if event["type"] == "PushEvent")
    return count


@pytest.mark.parametrize("big_input_bytes, chosen", [
    (50_000_000, "is within the 50.0 MB threshold: computing on a LocalCluster inside this task"),
    (0, "is over the 0.0 MB threshold: computing on the run's cluster at "),
], ids=["small-input-on-a-cluster-in-the-task", "big-input-on-the-runs-cluster"])
def test_github_etl_writes_one_parquet_row_per_pushed_commit_on_the_cluster_the_input_size_picks(
        samples, tmp_path, big_input_bytes, chosen):
    document, logs = run_sample(samples, "github_etl", "hours=2", "events_per_hour=500",
                                f"big_input_bytes={big_input_bytes}", f"data_dir={tmp_path}")
    assert document["state"] == "Completed"
    assert chosen in logs
    archive = tmp_path / "github_etl" / "archive"
    assert sorted(p.name for p in archive.iterdir()) == ["2024-01-01-0.json.gz", "2024-01-01-1.json.gz"]
    table = pq.read_table(tmp_path / "github_etl" / "push_commits.parquet")
    assert table.num_rows == push_commits_in(archive) > 0
    assert {"created_at", "repo", "actor", "sha", "author", "message"} <= set(table.column_names)
    assert f"{table.num_rows} commits from" in logs


def test_hourly_report_is_scheduled_every_hour_with_its_parameters_from_flows_toml(samples):
    result = cli("list", "--json", cwd=samples)
    assert result.returncode == 0, result.stderr
    entry = next(e for e in map(json.loads, result.stdout.splitlines()) if e["name"] == "hourly_report")
    assert entry["schedule"].startswith("cron 0 * * * *") and entry["next_run"] is not None
    assert entry["parameters"]["source"] == "orders" and entry["parameters"]["min_rows"] == 1000


def test_hourly_report_writes_the_report_of_the_hour_it_is_given(samples, tmp_path):
    document, _ = run_sample(samples, "hourly_report", "source=payments", "hour=2024-05-01T13:30",
                             f"data_dir={tmp_path}")
    assert document["state"] == "Completed"
    assert document["parameters"]["min_rows"] == 1000  # from flows.toml
    report = json.loads((tmp_path / "hourly_report" / "payments-2024-05-01T13.json").read_text())
    assert report["source"] == "payments" and report["hour"] == "2024-05-01T13:00:00+00:00"
    assert report["rows"] >= 1000 and 0 <= report["failed_share"] < 1


def test_hourly_report_rejects_an_unknown_source_before_anything_runs(samples):
    result = cli("run", "hourly_report", "-p", "source=clicks", cwd=samples)
    assert result.returncode == 2
    assert "'source'" in result.stderr and "'clicks'" in result.stderr and "'orders'" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


class SlackWebhook:
    """A real HTTP server on 127.0.0.1 standing in for a Slack incoming webhook."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        messages = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                messages.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/secret"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack() -> Iterator[SlackWebhook]:
    webhook = SlackWebhook()
    yield webhook
    webhook.close()


def test_hourly_report_fails_on_a_negative_min_rows_naming_it_and_pings_slack(samples, slack):
    # The commented [notify.slack] example of flows.toml, uncommented as its comment says to.
    config = (samples / "flows.toml").read_text(encoding="utf-8")
    with_slack, count = re.subn(r"(?m)^# (\[notify\.slack\]|webhook_url =|on =)", r"\1", config)
    assert count == 3, "flows.toml no longer has the commented [notify.slack] example"
    (samples / "flows-slack.toml").write_text(with_slack, encoding="utf-8")

    document, logs = run_sample(samples, "hourly_report", "min_rows=-1", exit_code=1, config="flows-slack.toml",
                                env={"SLACK_WEBHOOK_URL": slack.url})
    assert document["state"] == "Failed"
    [check] = tasks_named(document, "check_row_count")
    assert check["error"] == "ValueError: parameter min_rows must be 0 or more, got -1"
    assert "flow body raised ValueError: parameter min_rows must be 0 or more, got -1" in logs
    [message] = slack.messages
    assert "hourly_report" in message["text"] and "Failed" in message["text"]
    assert "min_rows must be 0 or more" in message["text"]
