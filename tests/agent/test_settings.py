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
