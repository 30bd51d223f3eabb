"""flows.toml: the typed config, and errors that name the file, the key and the line."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from flows_tui.project.config import load_config, parse_config
from flows_tui.errors import ConfigError

SPEC_SAMPLE = """
[project]
flows_dir = "sample_flows"
state_dir = ".flows-tui"           # SQLite store, cached results

[cluster]
address = "tcp://10.0.0.5:8786"
n_workers = 2
threads_per_worker = 1
processes = true
dashboard_address = ":0"

[notify.slack]
webhook_url = "${SLACK_WEBHOOK_URL}"
on = ["Failed", "Crashed"]

[flows.hourly_etl]
cron = "0 * * * *"
timezone = "Europe/Berlin"
parameters = { path = "data/trips.csv" }
"""


def parse(text: str, tmp_path: Path, environ=None):
    return parse_config(textwrap.dedent(text), path=tmp_path / "flows.toml", environ=environ or {})


def test_the_spec_sample_parses_into_typed_values(tmp_path):
    config = parse(SPEC_SAMPLE, tmp_path, {"SLACK_WEBHOOK_URL": "https://hooks.example/x"})
    assert config.project.flows_dir == tmp_path / "sample_flows"
    assert config.cluster.address == "tcp://10.0.0.5:8786" and config.cluster.n_workers == 2
    assert config.notify.slack.webhook_url == "https://hooks.example/x"
    assert config.notify.slack.on == ("Failed", "Crashed")
    flow = config.flows["hourly_etl"]
    assert flow.cron == "0 * * * *" and flow.timezone == "Europe/Berlin"
    assert flow.parameters == {"path": "data/trips.csv"} and flow.line == 17


def test_no_file_gives_defaults_for_the_current_directory(tmp_path):
    (tmp_path / "flows").mkdir()
    config = load_config(None, cwd=tmp_path)
    assert config.path is None and config.project.flows_dir == tmp_path / "flows"
    assert config.cluster.address is None and config.cluster.processes is True


def test_a_notifier_whose_variable_is_unset_is_off_with_a_warning_naming_it(tmp_path):
    config = parse(SPEC_SAMPLE, tmp_path, {})
    assert config.notify.slack is None and config.notify.off == {"slack": ("SLACK_WEBHOOK_URL",)}
    [warning] = config.warnings
    assert warning.endswith("flows.toml:14: [notify.slack.webhook_url] environment variable SLACK_WEBHOOK_URL "
                            "is not set: the slack notifier is off")
    # The rest of the file is read as usual.
    assert config.flows["hourly_etl"].cron == "0 * * * *" and config.cluster.n_workers == 2


def test_a_webhook_header_variable_unset_turns_that_webhook_off_only(tmp_path):
    config = parse("""
        [notify.slack]
        webhook_url = "${SLACK_URL}"
        [notify.webhook]
        url = "https://hooks.example/run"
        headers = { Authorization = "Bearer ${HOOK_TOKEN}" }
    """, tmp_path, {"SLACK_URL": "https://hooks.example/slack"})
    assert config.notify.slack.webhook_url == "https://hooks.example/slack"
    assert config.notify.webhook is None and config.notify.off == {"webhook": ("HOOK_TOKEN",)}


def test_an_unset_variable_outside_notify_names_the_key_and_variable(tmp_path):
    with pytest.raises(ConfigError) as error:
        parse('[flows.etl]\ncron = "0 * * * *"\nparameters = { path = "${DATA_PATH}" }\n', tmp_path, {})
    assert "flows.etl.parameters.path" in str(error.value) and "DATA_PATH is not set" in str(error.value)
    assert error.value.line == 3 and "${DATA_PATH:-default}" in str(error.value)


def test_a_default_stands_in_for_an_unset_or_empty_variable(tmp_path):
    text = '[flows.etl]\ncron = "0 * * * *"\nparameters = { path = "${DATA_PATH:-data/trips.csv}", sep = "$${X}" }\n'
    assert parse(text, tmp_path, {}).flows["etl"].parameters == {"path": "data/trips.csv", "sep": "${X}"}
    assert parse(text, tmp_path, {"DATA_PATH": ""}).flows["etl"].parameters["path"] == "data/trips.csv"
    assert parse(text, tmp_path, {"DATA_PATH": "/srv/x.csv"}).flows["etl"].parameters["path"] == "/srv/x.csv"
    slack = parse('[notify.slack]\nwebhook_url = "${SLACK:-https://hooks.example/default}"\n', tmp_path, {})
    assert slack.notify.slack.webhook_url == "https://hooks.example/default" and not slack.warnings


def test_an_unknown_key_suggests_the_closest_and_names_its_line(tmp_path):
    with pytest.raises(ConfigError) as error:
        parse("[cluster]\nn_workers = 2\nthreads_per_workr = 1\n", tmp_path)
    message = str(error.value)
    assert "flows.toml:3" in message and "cluster.threads_per_workr" in message and "threads_per_worker" in message


def test_a_wrong_type_names_the_expected_type_and_the_value(tmp_path):
    with pytest.raises(ConfigError) as error:
        parse("[cluster]\nprocesses = true\nn_workers = \"two\"\n", tmp_path)
    assert error.value.line == 3 and "expected an integer, got 'two'" in str(error.value)


def test_invalid_toml_names_its_line(tmp_path):
    with pytest.raises(ConfigError) as error:
        parse("[project]\nflows_dir = \n", tmp_path)
    assert error.value.line == 2 and "invalid TOML" in str(error.value)


@pytest.mark.parametrize("line, key, words", [
    ('cron = "61 * * * *"', "cron", ["61 * * * *"]),
    ('interval = "5 minutes"', "interval", ["5 minutes"]),
    ('timezone = "Mars/Olympus"', "timezone", ["Mars/Olympus"]),
])
def test_bad_schedules_name_the_flow_key_and_value(tmp_path, line, key, words):
    with pytest.raises(ConfigError) as error:
        parse(f"[flows.etl]\n{line}\n", tmp_path)
    assert f"flows.etl.{key}" in str(error.value) and error.value.line == 2
    assert all(word in str(error.value) for word in words)


def test_intervals_accept_units_and_cron_and_interval_conflict(tmp_path):
    config = parse('[flows.a]\ninterval = "1h30m"\n[flows.b]\ninterval = 90\n', tmp_path)
    assert config.flows["a"].interval == dt.timedelta(minutes=90)
    assert config.flows["b"].interval == dt.timedelta(seconds=90)
    with pytest.raises(ConfigError, match="either cron or interval"):
        parse('[flows.a]\ncron = "* * * * *"\ninterval = "5m"\n', tmp_path)


def test_tls_paths_resolve_against_the_config_directory(tmp_path):
    config = parse('[cluster]\naddress = "tls://h:8786"\n[cluster.tls]\nca_file = "ca.pem"\ncert = "c.pem"\n'
                   'key = "c.key"\n', tmp_path)
    assert config.cluster.tls.ca_file == tmp_path / "ca.pem"


def test_a_bare_host_port_address_becomes_tcp(tmp_path):
    assert parse('[cluster]\naddress = "10.0.0.5:8786"\n', tmp_path).cluster.address == "tcp://10.0.0.5:8786"


@pytest.mark.parametrize("expression, says", [
    ("61 * * * *", "field 1 (minute) '61': 61 is outside 0-59"),
    ("0 25 * * *", "field 2 (hour) '25': 25 is outside 0-23"),
    ("0 0 32 * *", "field 3 (day of month) '32': 32 is outside 1-31"),
    ("0 0 * 13 *", "field 4 (month) '13': 13 is outside 1-12"),
    ("x * * * *", "field 1 (minute) 'x' is not valid"),
    ("*/5 * * *", "expected five fields (minute hour day-of-month month day-of-week), got 4"),
])
def test_a_bad_cron_expression_names_the_field_at_fault(tmp_path, expression, says):
    with pytest.raises(ConfigError) as error:
        parse(f'[flows.etl]\ncron = "{expression}"\n', tmp_path)
    assert error.value.line == 2 and says in str(error.value)


@pytest.mark.timeout(60)  # the line scanner was quadratic: 10 kB took 1.4 s, this would have taken hours
def test_a_megabyte_value_in_an_inline_table_is_read_whole(tmp_path):
    word = "a" * 1_000_000
    config = parse_config(f'[flows.big]\nparameters = {{ text = "{word}", n = 1 }}\n', path=tmp_path / "flows.toml",
                          environ={})
    assert config.flows["big"].parameters == {"text": word, "n": 1}
