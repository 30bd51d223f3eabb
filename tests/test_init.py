"""`flows-tui init`: a first project that runs as written, and an unset Slack secret that does not stop it."""

from __future__ import annotations

import json

from conftest import cli


def test_init_writes_a_project_whose_flow_runs(tmp_path):
    result = cli("init", "first", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    project = tmp_path / "first"
    assert (project / "flows" / "riders.py").is_file() and (project / "flows.toml").is_file()
    assert ".flows-tui/" in (project / ".gitignore").read_text()
    assert "cd first" in result.stdout and "flows-tui run riders" in result.stdout
    assert cli("check", cwd=project).stdout.startswith("ok: 1 flow in 1 file")
    ran = cli("run", "riders", "-p", "chunks=3", "--json", cwd=project)
    assert ran.returncode == 0, ran.stderr
    document = json.loads(ran.stdout)
    assert document["state"] == "Completed" and len(document["tasks"]) == 6


def test_init_never_overwrites(tmp_path):
    assert cli("init", cwd=tmp_path).returncode == 0
    (tmp_path / "flows" / "riders.py").write_text("# mine\n")
    again = cli("init", cwd=tmp_path)
    assert again.returncode == 2
    assert "flows/riders.py" in again.stderr and "flows.toml" in again.stderr and "nothing was written" in again.stderr
    assert (tmp_path / "flows" / "riders.py").read_text() == "# mine\n"


def test_the_commented_slack_table_uncommented_without_its_secret_warns_and_runs(tmp_path, monkeypatch):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    assert cli("init", cwd=tmp_path).returncode == 0
    config = tmp_path / "flows.toml"
    text = config.read_text()
    for line in ("# [notify.slack]", '# webhook_url = "${SLACK_WEBHOOK_URL}"'):
        text = text.replace(line, line[2:])
    config.write_text(text)
    ran = cli("run", "riders", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    warnings = [line for line in ran.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "SLACK_WEBHOOK_URL is not set: the slack notifier is off" in warnings[0]


def test_the_readmes_first_flow_is_the_one_init_writes():
    from conftest import ROOT
    from flows_tui.project.scaffold import FIRST_FLOW

    readme = (ROOT / "README.md").read_text()
    block = readme.split("```python\n# flows/riders.py\n", 1)[1].split("```", 1)[0]
    code = [line for line in block.splitlines() if line.strip()]
    written = [line for line in FIRST_FLOW.split('"""', 2)[2].splitlines() if line.strip()]
    assert code == written


def test_runs_in_a_folder_with_no_runs_says_so_and_exits_0(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from flows_tui.cli import main

    monkeypatch.chdir(tmp_path)  # an empty folder: no flows.toml, nothing recorded
    for args in (["runs"], ["runs", "riders"]):
        table = CliRunner().invoke(main, args)
        assert table.exit_code == 0, table.output
        assert table.stdout == "" and "no runs recorded yet in .flows-tui" in table.stderr
        assert "`flows-tui run FLOW` records one" in table.stderr
    as_json = CliRunner().invoke(main, ["runs", "--json"])
    assert as_json.exit_code == 0
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == []  # JSON lines: none
    assert list(tmp_path.iterdir()) == []  # and nothing created
