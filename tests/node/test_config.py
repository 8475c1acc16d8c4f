"""Node configuration: file < environment < flags, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.node.address import ConfigError, Member
from accord.server.config import NodeConfig, load_config, render_config

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
        (BASE, {"ACCORD_LABELS": "zone"}, "labels: expected NAME=VALUE"),
        (BASE, {"ACCORD_LABELS": "zone=a,zone=b"}, "labels: a label is named twice"),
        (BASE, {"ACCORD_LABELS": "zone=" + "x" * 129}, "at most 128 bytes"),
        (BASE, {"ACCORD_NODE_DOWN_AFTER_S": "0.5"}, "node_down_after_s: must be in"),
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


def test_request_timeout_and_pending_reads_come_from_file_environment_and_flags(
    tmp_path: Path,
) -> None:
    defaults = load_config(write(tmp_path, BASE), env={})
    assert (defaults.request_timeout_s, defaults.pending_reads_max) == (5.0, 10_000)
    assert defaults.store_bytes_max == 1 << 30
    path = write(tmp_path, "request_timeout_s = 2\npending_reads_max = 50\n" + BASE)
    from_file = load_config(path, env={})
    assert (from_file.request_timeout_s, from_file.pending_reads_max) == (2.0, 50)
    assert isinstance(from_file.request_timeout_s, float)
    env = {"ACCORD_REQUEST_TIMEOUT_S": "0.75", "ACCORD_PENDING_READS_MAX": "60"}
    from_env = load_config(path, env=env)
    assert (from_env.request_timeout_s, from_env.pending_reads_max) == (0.75, 60)
    flags = {"request_timeout_s": 1.5, "pending_reads_max": 70, "store_bytes_max": 64 << 20}
    from_flags = load_config(path, env=env, overrides=flags)
    assert (from_flags.request_timeout_s, from_flags.pending_reads_max) == (1.5, 70)
    assert from_flags.store_bytes_max == 64 << 20
    assert load_config(write(tmp_path, render_config(from_flags)), env={}) == from_flags


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ACCORD_REQUEST_TIMEOUT_S": "0"}, "request_timeout_s: must be in 0.1..600.0, got 0.0"),
        ({"ACCORD_REQUEST_TIMEOUT_S": "601"}, "request_timeout_s: must be in 0.1..600.0"),
        ({"ACCORD_REQUEST_TIMEOUT_S": "-1"}, "request_timeout_s: expected a non-negative number"),
        ({"ACCORD_REQUEST_TIMEOUT_S": "inf"}, "request_timeout_s: expected a non-negative number"),
        ({"ACCORD_REQUEST_TIMEOUT_S": "1e3"}, "request_timeout_s: expected a non-negative number"),
        ({"ACCORD_PENDING_READS_MAX": "0"}, "pending_reads_max: must be in 1..1000000, got 0"),
        ({"ACCORD_PENDING_READS_MAX": "1000001"}, "pending_reads_max: must be in 1..1000000"),
        ({"ACCORD_PENDING_READS_MAX": "1.5"}, "pending_reads_max: expected a non-negative integer"),
        ({"ACCORD_STORE_BYTES_MAX": str((1 << 30) + 1)}, "store_bytes_max: must be in"),
        ({"ACCORD_STORE_BYTES_MAX": "1024"}, "store_bytes_max: must be in"),
        ({"ACCORD_RESPONSE_BYTES_MAX": str((32 << 20) + 1)}, "response_bytes_max: must be in"),
    ],
)
def test_bounded_settings_refuse_values_out_of_range(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, BASE), env=env)
    assert message in str(info.value)


@pytest.mark.parametrize("text", ['request_timeout_s = "soon"\n', "request_timeout_s = true\n"])
def test_a_timeout_that_is_not_a_number_is_a_clear_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="request_timeout_s: expected a n"):
        load_config(write(tmp_path, text + BASE), env={})


def test_labels_and_the_down_time_are_settings_that_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path, 'labels = "zone=eu-1, host=rack7"\n' + BASE)
    config = load_config(path, env={"ACCORD_NODE_DOWN_AFTER_S": "12.5"})
    assert config.labels == (("zone", "eu-1"), ("host", "rack7"))
    assert config.node_down_after_s == 12.5
    assert load_config(write(tmp_path, render_config(config)), env={}) == config
