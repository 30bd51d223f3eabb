"""[clusters.NAME] profiles and a flow's own DaskTaskRunner: where a run goes, and errors before anything starts."""

from __future__ import annotations

import json

import pytest

from conftest import cli, write_project
from flows_tui.engine.cluster import choose_cluster
from flows_tui.errors import ConfigError
from flows_tui.project.config import parse_config

FLOWS = {"tiny.py": """
    from flows_tui import DaskTaskRunner, flow, task

    @task
    def one():
        return 1

    @flow
    def tiny():
        return one()

    @flow(task_runner=DaskTaskRunner(cluster_class="distributed.LocalCluster",
                                     cluster_kwargs={"n_workers": 1, "processes": False, "dashboard_address": ":0"}))
    def own():
        return one()
"""}

PROFILES = """
[project]
flows_dir = "flows"
[cluster]
processes = false
n_workers = 1
[clusters.small]
class = "distributed.LocalCluster"
kwargs = { n_workers = 1, threads_per_worker = 1, processes = false, dashboard_address = ":0" }
scale = 2
[clusters.typo]
class = "distributed.LocalCluster"
kwargs = { n_worker = 1 }
[clusters.missing]
class = "no_such_package.Cluster"
[flows.tiny]
cluster = "small"
"""


def test_a_flow_runs_on_its_profiles_cluster_class_scaled_as_said(tmp_path):
    project = write_project(tmp_path, FLOWS, PROFILES.replace("[clusters.typo]", "[clusters.typo_]"))
    result = cli("run", "tiny", "--cluster", "small", "--json", cwd=project, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "cluster: LocalCluster (profile 'small', from --cluster)" in result.stderr
    assert json.loads(result.stdout)["state"] == "Completed"


def test_profile_errors_name_the_key_and_line_and_check_reports_them_without_starting(tmp_path):
    project = write_project(tmp_path, FLOWS, PROFILES)
    typo = cli("run", "tiny", "--cluster", "typo", cwd=project)
    assert typo.returncode == 2
    assert typo.stderr.strip() == ("error: flows.toml:13: [clusters.typo.kwargs.n_worker] LocalCluster has no "
                                   "parameter 'n_worker'; did you mean 'n_workers'?")
    missing = cli("run", "tiny", "--cluster", "missing", cwd=project)
    assert missing.returncode == 2 and "flows.toml:15: [clusters.missing.class] cannot import no_such_package" \
        in missing.stderr
    check = cli("check", cwd=project)
    assert check.returncode == 2
    assert "flows.toml:13: [clusters.typo.kwargs.n_worker]" in check.stdout
    assert "flows.toml:15: [clusters.missing.class]" in check.stdout


def test_precedence_address_then_cluster_then_task_runner_then_flows_table_then_environment(tmp_path):
    from flows_tui.project.flow_files import load_flow_file
    import textwrap

    (tmp_path / "tiny.py").write_text(textwrap.dedent(FLOWS["tiny.py"]))
    flows = load_flow_file(tmp_path / "tiny.py").flows
    config = parse_config(PROFILES.replace("[clusters.typo]", "[clusters.other]").replace("n_worker =", "n_workers =").replace(
        "no_such_package.Cluster", "distributed.LocalCluster"), path=tmp_path / "flows.toml")
    env = {"DASK_SCHEDULER_ADDRESS": "tcp://10.0.0.9:8786"}
    tiny, own = flows["tiny"], flows["own"]
    assert choose_cluster("tcp://h:1", config, env, profile="small", flow=own).source == "--address"
    assert choose_cluster(None, config, env, profile="other", flow=own).profile == "other"
    assert choose_cluster(None, config, env, flow=own).source == "the task_runner of flow 'own'"
    assert choose_cluster(None, config, env, flow=tiny).source == "flows.toml [flows.tiny] cluster"
    assert choose_cluster(None, config, env).address == "tcp://10.0.0.9:8786"
    assert choose_cluster(None, config, {}).address is None


def test_a_flows_own_dask_task_runner_is_honoured(tmp_path):
    project = write_project(tmp_path, FLOWS, '[project]\nflows_dir = "flows"\n')
    result = cli("run", "own", "--json", cwd=project, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "cluster: LocalCluster (from the task_runner of flow 'own')" in result.stderr


def test_profile_tables_are_checked_as_they_are_read(tmp_path):
    with pytest.raises(ConfigError) as raised:
        parse_config('[clusters.big]\nclass = "x.Y"\naddress = "tcp://h:1"\n', path=tmp_path / "flows.toml")
    assert "flows.toml:1" in str(raised.value) and "either `address`" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        parse_config('[clusters.big]\nclass = "x.Y"\nadapt = { minimum = 3, maximum = 1 }\n', path=tmp_path / "flows.toml")
    assert "flows.toml:3" in str(raised.value) and "minimum <= maximum" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        parse_config('[flows.a]\ncluster = "big"\n', path=tmp_path / "flows.toml")
    assert "flows.toml:2" in str(raised.value) and "no cluster profile named 'big'" in str(raised.value)
