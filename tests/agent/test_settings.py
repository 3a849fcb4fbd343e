"""Agent settings: flags over config file over defaults; bad files are one-line errors."""

import pytest

from agent.errors import ConfigError
from agent.settings import AgentSettings, default_name, resolve


def test_defaults_are_sensible():
    s = AgentSettings()
    assert s.broker == "mqtt://localhost:1883" and s.heartbeat_s == 5.0
    assert s.name == default_name()


def test_flags_win_over_the_file(tmp_path):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("name: from-file\ntags: [lab]\nheartbeat_s: 2\n")
    s = resolve({"name": "from-flag", "tags": None, "heartbeat_s": None}, cfg)
    assert (s.name, s.tags, s.heartbeat_s) == ("from-flag", ["lab"], 2)


@pytest.mark.parametrize("text, complaint", [
    ("nmae: x\n", "unknown setting"),
    ("- a\n- b\n", "mapping"),
    ("name: [unclosed\n", "config file"),
    ("name: bad/name\n", "agent name"),
    ("heartbeat_s: -1\n", "heartbeat_s"),
])
def test_bad_config_files_say_what_is_wrong(tmp_path, text, complaint):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=complaint):
        resolve({}, cfg)


def test_an_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve({}, tmp_path / "nope.yaml")


def test_credential_paths_in_a_config_file_are_relative_to_it(tmp_path):
    """A folder from `mlperf-controller broker-config` is copied to a device as it is."""
    bundle = tmp_path / "pi-5"
    bundle.mkdir()
    for name in ("ca.crt", "client.crt", "client.key"):
        (bundle / name).write_text("x")
    (bundle / "agent.yaml").write_text("broker: mqtts://lab:8883\ntls_ca: ca.crt\n"
                                       "tls_cert: client.crt\ntls_key: client.key\n")
    s = resolve({}, bundle / "agent.yaml")
    assert s.tls_ca == bundle / "ca.crt" and s.tls_key == bundle / "client.key"
    broker = s.broker_connection()
    assert broker.url.tls and broker.tls_cert == bundle / "client.crt"


@pytest.mark.parametrize("settings, complaint", [
    (dict(broker="mqtt://lab", tls_ca="ca.crt"), "use an mqtts:// URL"),
    (dict(broker="mqtts://lab", tls_cert="client.crt"), "go together"),
    (dict(broker="mqtts://lab", tls_ca="missing.crt"), "no such file"),
    (dict(broker="mqtt://lab", broker_password_file="missing"), "broker password file"),
    (dict(broker="mqtt://lab", enrol_token_file="missing"), "enrolment token file"),
])
def test_login_mistakes_are_one_line(tmp_path, monkeypatch, settings, complaint):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ca.crt").write_text("x")
    (tmp_path / "client.crt").write_text("x")
    s = AgentSettings(**settings)
    with pytest.raises(ConfigError, match=complaint):
        s.broker_connection()
        s.enrol_token()


def test_the_password_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    pw = tmp_path / "password"
    pw.write_text("s3cret\n")
    broker = AgentSettings(broker="mqtt://lab", broker_user="pi-5",
                           broker_password_file=pw).broker_connection()
    assert (broker.username, broker.password) == ("pi-5", "s3cret")
    assert "s3cret" not in str(broker)
    monkeypatch.setenv("MLPERF_BROKER_PASSWORD", "from-env")
    monkeypatch.setenv("MLPERF_BROKER_USERNAME", "pi-6")
    broker = AgentSettings(broker="mqtt://lab").broker_connection()
    assert (broker.username, broker.password) == ("pi-6", "from-env")


def test_a_short_enrolment_token_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPERF_ENROL_TOKEN", "short")
    with pytest.raises(ConfigError, match="at least 16"):
        AgentSettings().enrol_token()


@pytest.mark.parametrize("bad", [dict(heartbeat_s=1e9), dict(max_queued_jobs=0),
                                 dict(allow_images="mlperf-edge/*")])
def test_agent_limits_are_checked(bad):
    with pytest.raises(ConfigError):
        AgentSettings(**bad)
