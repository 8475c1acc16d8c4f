"""Node configuration: file < environment < flags, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.node.config import ConfigError, Member, NodeConfig, load_config, render_config

BASE = """
name = "n1"
id = 1
data_dir = "/tmp/x"
client = "127.0.0.1:7001"
peer = "127.0.0.1:7101"

[members.1]
name = "n1"
peer = "127.0.0.1:7101"
client = "127.0.0.1:7001"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_file_is_read_and_members_parsed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE), env={})
    assert (config.name, config.id, config.client, config.peer) == (
        "n1",
        1,
        ("127.0.0.1", 7001),
        ("127.0.0.1", 7101),
    )
    assert config.members[1].client_url == "http://127.0.0.1:7001"


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    env = {"ACCORD_TICK_MS": "20", "ACCORD_CLIENT": "127.0.0.1:9001"}
    config = load_config(path, env=env, overrides={"client": "127.0.0.1:9002"})
    assert config.tick_ms == 20
    assert config.client == ("127.0.0.1", 9002)


def test_render_round_trips(tmp_path: Path) -> None:
    members = {
        i: Member(i, f"n{i}", ("127.0.0.1", 7100 + i), ("127.0.0.1", 7000 + i)) for i in (1, 2, 3)
    }
    members[3] = Member(3, "n3", ("127.0.0.1", 7103), ("127.0.0.1", 7003), ("127.0.0.1", 7203))
    config = NodeConfig(
        name="n2",
        id=2,
        data_dir=tmp_path / "d",
        client=("127.0.0.1", 7002),
        peer=("127.0.0.1", 7102),
        native=("127.0.0.1", 7202),
        members=members,
        tick_ms=25,
    )
    assert load_config(write(tmp_path, render_config(config)), env={}) == config


def test_dial_overrides_and_debug_switches_round_trip(tmp_path: Path) -> None:
    members = {
        i: Member(i, f"n{i}", ("127.0.0.1", 7100 + i), ("127.0.0.1", 7000 + i)) for i in (1, 2)
    }
    config = NodeConfig(
        name="n1",
        id=1,
        data_dir=tmp_path / "d",
        client=("127.0.0.1", 7001),
        peer=("127.0.0.1", 7101),
        members=members,
        dial={2: ("127.0.0.1", 9102)},
        debug_unsafe_local_reads=True,
        debug_ack_before_fsync=True,
    )
    loaded = load_config(write(tmp_path, render_config(config)), env={})
    assert loaded == config
    # The registry keeps the member's own address; only dialling goes elsewhere.
    assert loaded.members[2].peer == ("127.0.0.1", 7102)


def test_deliberate_bugs_are_off_by_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE), env={})
    assert not config.debug_unsafe_local_reads and not config.debug_ack_before_fsync
    assert config.dial == {}


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (
            BASE.replace('client = "127.0.0.1:7001"\n', "", 1),
            {},
            "missing required setting 'client'",
        ),
        (BASE, {"ACCORD_ID": "x"}, "id: expected a non-negative integer"),
        (BASE, {"ACCORD_ID": "\u00b2"}, "id: expected a non-negative integer"),
        (BASE, {"ACCORD_ID": "0"}, "id: must be a positive integer"),
        (BASE, {"ACCORD_CLIENT": "nohost"}, "client: expected HOST:PORT"),
        (BASE, {"ACCORD_CLIENT": "h:70000"}, "client: expected HOST:PORT"),
        (BASE, {"ACCORD_NATIVE": "h"}, "native: expected HOST:PORT"),
        (BASE, {"ACCORD_ID": "2"}, "not in [members]"),
        (BASE, {"ACCORD_JOIN": "maybe"}, "join: expected true or false"),
        ("bogus = 1\n" + BASE, {}, "unknown configuration keys: bogus"),
        ("name = ", {}, "not valid TOML"),
        (BASE + '[dial]\n2 = "nohost"\n', {}, "dial.2: expected HOST:PORT"),
        (BASE + '[dial]\nx = "h:1"\n', {}, "dial.x: member ids are positive"),
    ],
)
def test_bad_configuration_is_a_clear_error(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        load_config(write(tmp_path, text), env=env)
    assert message in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml", env={})


def test_joining_node_need_not_be_a_member(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE), env={"ACCORD_ID": "4", "ACCORD_JOIN": "true"})
    assert config.join and config.id == 4


def test_the_state_machine_read_bounds_are_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "response_bytes_max = 33554432\n" + BASE)
    config = load_config(path, env={"ACCORD_READ_KEYS_SCANNED_MAX": "5000"})
    assert (config.response_bytes_max, config.read_keys_scanned_max) == (32 << 20, 5000)
    assert load_config(write(tmp_path, render_config(config)), env={}) == config
    with pytest.raises(ConfigError, match="response_bytes_max"):
        load_config(path, env={"ACCORD_RESPONSE_BYTES_MAX": str(1 << 20)})
    with pytest.raises(ConfigError, match="read_keys_scanned_max"):
        load_config(path, env={"ACCORD_READ_KEYS_SCANNED_MAX": "0"})
