"""[clusters.NAME] profiles and a flow's own DaskTaskRunner: where a run goes, and errors before anything starts."""

from __future__ import annotations

import json

import pytest

from conftest import cli, write_project
from flows_tui.engine.cluster import choose_cluster
from flows_tui.errors import ConfigError
from flows_tui.project.config import parse_config
from flows_tui.record.store import Store

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
    assert "on LocalCluster (profile small), from --cluster" in result.stderr.splitlines()[0]
    assert json.loads(result.stdout)["state"] == "Completed"
    [run] = Store.open(project / ".flows-tui", read_only_ok=True).runs()
    assert run.cluster == "small"  # what `runs` lists


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
    assert result.stderr.splitlines()[0].endswith(" on LocalCluster, from the task_runner of flow 'own'")


def test_profile_tables_are_checked_as_they_are_read(tmp_path):
    with pytest.raises(ConfigError) as raised:
        parse_config('[clusters.big]\nclass = "x.Y"\naddress = "tcp://h:1"\n', path=tmp_path / "flows.toml")
    assert "flows.toml:1" in str(raised.value) and "either `address`" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        parse_config('[clusters.big]\nclass = "x.Y"\nadapt = { minimum = 3, maximum = 1 }\n', path=tmp_path / "flows.toml")
    assert "flows.toml:3" in str(raised.value) and "minimum <= maximum" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        parse_config('[clusters.big]\nclass = "x.Y"\nkwargs = { account = "${NO_SUCH_ACCOUNT_VAR}" }\n',
                     path=tmp_path / "flows.toml", environ={})
    assert "flows.toml:3" in str(raised.value) and "clusters.big.kwargs.account" in str(raised.value)
    assert "NO_SUCH_ACCOUNT_VAR is not set" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        parse_config('[flows.a]\ncluster = "big"\n', path=tmp_path / "flows.toml")
    assert "flows.toml:2" in str(raised.value) and "no cluster profile named 'big'" in str(raised.value)


SIDE = """
[project]
flows_dir = "flows"
[clusters.kept]
class = "distributed.LocalCluster"
kwargs = { n_workers = 1, processes = false, dashboard_address = ":0" }
reuse = true
idle_timeout = 1
[clusters.once]
class = "distributed.LocalCluster"
kwargs = { n_workers = 1, processes = false, dashboard_address = ":0" }
[flows.kept_flow]
cluster = "kept"
[flows.once_flow]
cluster = "once"
"""

SIDE_FLOWS = {"side.py": """
    from flows_tui import flow, task

    @task
    def one():
        return 1

    @flow
    def kept_flow():
        return one()

    @flow
    def once_flow():
        return one()
"""}


def test_a_reused_profile_stays_up_between_runs_and_closes_when_idle_another_closes_after_its_run(tmp_path):
    from conftest import wait_until
    from flows_tui.engine.cluster import ClusterChoice
    from flows_tui.launch.launcher import RunLauncher
    from flows_tui.project.config import load_config
    from flows_tui.project.flow_files import load_flow_file
    from flows_tui.record.events import EventBus

    project = write_project(tmp_path, SIDE_FLOWS, SIDE)
    config = load_config(project / "flows.toml", cwd=project)
    flows = {f.fn.__name__: f for f in load_flow_file(project / "flows" / "side.py").flows.values()}
    default = ClusterChoice(processes=False, n_workers=1)
    with RunLauncher(default, config, EventBus(), keep_results=True) as launcher:
        first = launcher.launch(flows["kept_flow"], {})
        kept = launcher.flow_clusters.in_use()
        assert first.final.is_completed() and first.address == "LocalCluster (profile kept)"
        assert len(kept) == 1 and launcher.cluster is None  # the launcher's own cluster was not needed
        assert launcher.launch(flows["kept_flow"], {}).final.is_completed()
        assert launcher.flow_clusters.in_use() == kept  # the same cluster, kept between runs
        wait_until(lambda: kept[0].local.status.name == "closed", timeout=20, message="the idle profile to close")
        assert not launcher.flow_clusters.in_use()

        once = launcher.launch(flows["once_flow"], {})
        assert once.final.is_completed() and once.address == "LocalCluster (profile once)"
        assert not launcher.flow_clusters.in_use()  # closed as its run ended


def test_a_cluster_class_that_does_not_start_is_one_error_at_its_connect_timeout(tmp_path, monkeypatch):
    from flows_tui.errors import ClusterError
    from flows_tui.launch.launcher import RunLauncher
    from flows_tui.record.events import EventBus

    (tmp_path / "stuck_cluster.py").write_text(
        "import threading\nRELEASE = threading.Event()\n\n"
        "class StuckCluster:\n    def __init__(self, jobs=1):\n        RELEASE.wait(60)  # a queue that never runs the job\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = parse_config('[clusters.stuck]\nclass = "stuck_cluster.StuckCluster"\nkwargs = { jobs = 2 }\n'
                          'connect_timeout = 1\n', path=tmp_path / "flows.toml")
    launcher = RunLauncher(choose_cluster(None, config, {}, profile="stuck"), config, EventBus())
    try:
        with pytest.raises(ClusterError) as raised:
            launcher.connect()
        assert str(raised.value).startswith("cluster StuckCluster (profile 'stuck', from --cluster) did not start "
                                            "within 1 s")
    finally:
        import stuck_cluster

        stuck_cluster.RELEASE.set()
        launcher.close()


async def test_the_ui_lists_a_flows_own_cluster_with_its_workers_and_runs_there(tmp_path):
    from test_tui import app_for, flow_keys, select, wait_for
    from flows_tui.tui.flow_list import FlowList
    from flows_tui.tui.status_bar import StatusBar

    project = write_project(tmp_path, SIDE_FLOWS, SIDE.replace("idle_timeout = 1", "idle_timeout = 600")
                            + "[cluster]\nprocesses = false\nn_workers = 1\n")
    app = app_for(project, watch=False)
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_for(pilot, lambda: app.cluster is not None and "kept-flow" in flow_keys(app), message="the flows")
        select(app, "kept-flow")
        await pilot.press("r")
        flows = app.query_one(FlowList)
        await wait_for(pilot, lambda: flows.last_states.get("kept-flow") == "Completed", message="the run")
        status = app.query_one(StatusBar)
        await wait_for(pilot, lambda: str(status.flow_clusters or "").startswith("kept: LocalCluster · 1/1 workers · "),
                       message="the status bar to list the profile's cluster")
        assert "also kept: LocalCluster" in str(status.render())


def test_a_task_computes_on_a_profiles_cluster_inside_with_cluster_and_gives_it_back(tmp_path, monkeypatch, run):
    import dask

    from conftest import load_flows
    from flows_tui.launch import task_clusters

    (tmp_path / "flows.toml").write_text(
        '[clusters.big]\nclass = "distributed.LocalCluster"\n'
        'kwargs = { n_workers = 1, threads_per_worker = 1, processes = false, dashboard_address = ":0" }\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLOWS_TUI_CONFIG", raising=False)
    loaded = load_flows(tmp_path, """
        import dask
        import distributed
        from flows_tui import cluster, flow, get_dask_client, task

        @task
        def big_sum(n):
            with cluster("big") as client:
                total = dask.delayed(sum)(list(range(n))).compute(scheduler=client)
                ran_on = client.compute(dask.delayed(lambda: distributed.get_worker().scheduler.address)()).result()
                return total, client.scheduler.address, ran_on

        @task
        def small():
            with get_dask_client(cluster="big") as client:
                return client.submit(lambda: 42).result()

        @flow
        def conditional(n: int = 10):
            return big_sum(n), small()
    """)
    engine, recorded = run(loaded.flows["conditional"])
    (total, used, ran_on), answer = engine.final.result()
    assert total == 45 and answer == 42
    assert ran_on == used  # a collection computed inside the `with` ran on the profile's cluster
    assert any(line.startswith("computing on cluster 'big': LocalCluster (profile big)")
               for line in recorded.log_messages())
    assert not task_clusters._clusters.in_use()  # not reused: closed as each `with` ended
