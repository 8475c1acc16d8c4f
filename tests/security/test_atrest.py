"""Encryption at rest: the AES-GCM cipher and keyring, the key check, and a real node
whose data directory must never hold a written value in plaintext."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from accord.raft.types import Snapshot
from accord.security.atrest import at_rest_cipher
from accord.security.cipher import AesGcmCipher
from accord.security.errors import SecurityError, UnknownKey
from accord.security.keys import new_key_text, parse_keys
from accord.testing.cluster import http
from accord.testing.single import SingleNode

SECRET = b"plaintext-marker-7f3a9c"


def test_seal_open_round_trip_with_a_fresh_nonce_each_time() -> None:
    cipher = AesGcmCipher(parse_keys(new_key_text(), "test"))
    a, b = cipher.seal(SECRET, b"ad"), cipher.seal(SECRET, b"ad")
    assert a != b and SECRET not in a
    assert cipher.open(a, b"ad") == SECRET == cipher.open(b, b"ad")


def test_altered_ciphertext_or_position_fails_to_open() -> None:
    cipher = AesGcmCipher(parse_keys(new_key_text(), "test"))
    sealed = cipher.seal(SECRET, b"ad")
    with pytest.raises(InvalidTag):
        cipher.open(sealed, b"other position")
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(InvalidTag):
        cipher.open(flipped, b"ad")


def test_rotation_new_key_seals_old_keys_still_open() -> None:
    old, new = new_key_text(), new_key_text()
    sealed_old = AesGcmCipher(parse_keys(old, "old")).seal(SECRET, b"")
    rotated = AesGcmCipher(parse_keys(f"{new}\n{old}\n", "ring"))
    assert rotated.open(sealed_old, b"") == SECRET
    sealed_new = rotated.seal(SECRET, b"")
    with pytest.raises(UnknownKey):
        AesGcmCipher(parse_keys(old, "old")).open(sealed_new, b"")


@pytest.mark.parametrize(
    "text",
    ["", "not base64!", base64.b64encode(b"short").decode(), "# only a comment"],
)
def test_bad_key_text_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(SecurityError):
        parse_keys(text, "test")


def test_key_check_refuses_a_missing_or_wrong_key(tmp_path: Path) -> None:
    key = parse_keys(new_key_text(), "k")
    assert at_rest_cipher(tmp_path, None) is None  # unencrypted directory, no key: fine
    assert at_rest_cipher(tmp_path, key) is not None  # first encrypted start
    with pytest.raises(SecurityError, match="no encryption key"):
        at_rest_cipher(tmp_path, None)
    with pytest.raises(SecurityError, match="wrong encryption key"):
        at_rest_cipher(tmp_path, parse_keys(new_key_text(), "other"))
    assert at_rest_cipher(tmp_path, key) is not None


def test_snapshot_files_are_sealed(tmp_path: Path) -> None:
    from accord.raft.types import ConfState
    from accord.storage import FileStorage

    cipher = AesGcmCipher(parse_keys(new_key_text(), "k"))
    with FileStorage(tmp_path, cipher=cipher) as storage:
        storage.load()
        conf = ConfState(voters=frozenset({1}))
        storage.save(None, [], Snapshot(index=5, term=1, conf=conf, data=SECRET * 10))
    assert list((tmp_path / "snap").glob("*.snap"))
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or SECRET not in path.read_bytes(), path
    with FileStorage(tmp_path, cipher=cipher) as storage:
        snapshot = storage.load().snapshot
        assert snapshot is not None and snapshot.data == SECRET * 10


@pytest.fixture
def node(tmp_path: Path) -> Iterator[SingleNode]:
    n = SingleNode(tmp_path / "node")
    yield n
    n.stop()


def test_a_real_node_keeps_no_plaintext_and_needs_its_key(node: SingleNode) -> None:
    env = {"ACCORD_ENCRYPTION_KEY": new_key_text()}
    node.start(env)
    # snapshot_entries is 5: these writes also make the node take snapshots.
    for i in range(12):
        code, body, _ = http("PUT", f"{node.url}/v1/kv/secret{i}", SECRET + b"%d" % i)
        assert code == 200, body
    node.stop()
    files = [p for p in node.config.data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".snap" for p in files), files
    assert any(p.suffix == ".wal" for p in files), files
    for path in files:
        data = path.read_bytes()
        assert SECRET not in data and b"secret1" not in data, path

    code, output = node.run_to_exit({})
    assert code != 0 and "no encryption key is configured" in output, output
    assert "Traceback" not in output
    code, output = node.run_to_exit({"ACCORD_ENCRYPTION_KEY": new_key_text()})
    assert code != 0 and "wrong encryption key" in output, output
    assert "Traceback" not in output
    assert not list(node.config.data_dir.rglob("*.corrupt"))

    node.start(env)
    for i in range(12):
        code, body, _ = http("GET", f"{node.url}/v1/kv/secret{i}")
        assert (code, body) == (200, SECRET + b"%d" % i)
    code, body, _ = http("GET", f"{node.url}/v1/cluster/status")
    assert code == 200 and json.loads(body)["leader"] == 1


def test_rotation_on_a_real_node(node: SingleNode) -> None:
    old, new = new_key_text(), new_key_text()
    node.start({"ACCORD_ENCRYPTION_KEY": old})
    for i in range(8):  # snapshots sealed with the old key
        assert http("PUT", f"{node.url}/v1/kv/r{i}", b"old%d" % i)[0] == 200
    node.stop()
    node.start({"ACCORD_ENCRYPTION_KEY": f"{new},{old}"})  # new seals, old still opens
    assert http("GET", f"{node.url}/v1/kv/r3")[:2] == (200, b"old3")
    assert http("PUT", f"{node.url}/v1/kv/after", b"new")[0] == 200
    node.stop()
    # Dropping the old key while files still use it: refused, and nothing set aside.
    code, output = node.run_to_exit({"ACCORD_ENCRYPTION_KEY": new})
    assert code != 0 and "not among the configured keys" in output, output
    assert not list(node.config.data_dir.rglob("*.corrupt"))
    node.start({"ACCORD_ENCRYPTION_KEY": f"{new},{old}"})
    assert http("GET", f"{node.url}/v1/kv/after")[:2] == (200, b"new")
