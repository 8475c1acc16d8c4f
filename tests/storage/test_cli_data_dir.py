"""`accord storage check` on a node's data_dir as node.toml names it, encrypted or not:
`--key-file`, `--config node.toml`, and clear errors for a missing directory, a
missing key and a wrong key."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from accord.cli.storage import storage as storage_group
from accord.raft.types import HardState
from accord.security.atrest import at_rest_cipher
from accord.security.keys import new_key_text, parse_keys
from accord.storage import FileStorage

from .helpers import entries

NODE_TOML = """
name = "n1"
id = 1
data_dir = "{data_dir}"
client = "127.0.0.1:7001"
peer = "127.0.0.1:7101"
[members.1]
name = "n1"
peer = "127.0.0.1:7101"
client = "127.0.0.1:7001"
[security]
encryption_key_file = "{key_file}"
"""


def _fill(data_dir: Path, key_text: str | None) -> None:
    """A data_dir laid out as a node lays it out: raft/ (and keycheck if encrypted)."""
    data_dir.mkdir()
    keyring = parse_keys(key_text, "test") if key_text else None
    cipher = at_rest_cipher(data_dir, keyring)
    with FileStorage(data_dir / "raft", cipher=cipher) as storage:
        storage.load()
        storage.save(HardState(3, 1, 20), entries(1, 20, term=3, size=40))


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(storage_group, list(args), env={"ACCORD_ENCRYPTION_KEY": ""})
    return result.exit_code, result.output


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_text(new_key_text() + "\n")
    return path


@pytest.fixture
def encrypted(tmp_path: Path, key_file: Path) -> Path:
    data_dir = tmp_path / "data"
    _fill(data_dir, key_file.read_text())
    return data_dir


def test_check_takes_the_data_dir_as_node_toml_names_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _fill(data_dir, None)
    code, out = invoke("check", str(data_dir))
    assert code == 0, out
    assert "result: OK" in out and "hard state: term 3" in out
    assert invoke("check", str(data_dir / "raft"))[0] == 0  # the inner directory too


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    code, out = invoke("check", str(tmp_path / "absent"))
    assert code == 1 and "no such directory" in out and "Errno" not in out
    (tmp_path / "empty").mkdir()
    code, out = invoke("check", str(tmp_path / "empty"))
    assert code == 1 and "not a node's data directory" in out and "Errno" not in out


def test_an_encrypted_directory_is_checked_with_its_key_file(
    encrypted: Path, key_file: Path
) -> None:
    code, out = invoke("check", str(encrypted), "--key-file", str(key_file))
    assert code == 0, out
    assert "result: OK" in out and "entries 1-20" in out


def test_without_the_key_it_says_the_data_is_encrypted(encrypted: Path) -> None:
    code, out = invoke("check", str(encrypted))
    assert code == 1 and "encrypted" in out and "--key-file" in out
    assert "CORRUPT" not in out


def test_a_wrong_key_is_one_clear_error(encrypted: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-key"
    other.write_text(new_key_text() + "\n")
    code, out = invoke("check", str(encrypted), "--key-file", str(other))
    assert code == 1 and "wrong encryption key" in out
    assert "CORRUPT" not in out


def test_config_gives_the_data_dir_and_the_key(
    encrypted: Path, key_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "node.toml"
    config.write_text(NODE_TOML.format(data_dir=encrypted, key_file=key_file))
    code, out = invoke("check", "--config", str(config))
    assert code == 0, out
    assert "result: OK" in out and "entries 1-20" in out


def test_repair_takes_the_key_too(encrypted: Path, key_file: Path) -> None:
    code, out = invoke("repair", str(encrypted), "--key-file", str(key_file), "--yes")
    assert code == 0 and "nothing to repair" in out, out
    code, out = invoke("repair", str(encrypted), "--yes")  # no key: nothing is touched
    assert code == 1 and "encrypted" in out
