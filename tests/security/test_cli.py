"""`accord certs` and the key file: what they write, with which permissions, and that
they never overwrite."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner
from cryptography import x509

from accord.cli.main import cli
from accord.security.keys import load_keyring


def test_certs_init_issue_and_key(tmp_path: Path) -> None:
    runner = CliRunner()
    pki = tmp_path / "pki"
    assert runner.invoke(cli, ["certs", "init", str(pki)]).exit_code == 0
    again = runner.invoke(cli, ["certs", "init", str(pki)])
    assert again.exit_code != 0 and "already holds a CA" in again.output
    result = runner.invoke(
        cli, ["certs", "issue", "--dir", str(pki), "--node", "n1", "--host", "10.1.2.3"]
    )
    assert result.exit_code == 0, result.output
    assert (
        runner.invoke(cli, ["certs", "issue", "--dir", str(pki), "--client", "bob"]).exit_code == 0
    )
    assert runner.invoke(cli, ["certs", "issue", "--dir", str(pki)]).exit_code != 0
    for name in ("ca.key", "node-n1.key", "client-bob.key"):
        assert stat.S_IMODE((pki / name).stat().st_mode) == 0o600, name
    cert = x509.load_pem_x509_certificate((pki / "node-n1.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    shown = {str(n.value) for n in names}
    assert {"n1", "localhost", "127.0.0.1", "10.1.2.3"} <= shown

    key = tmp_path / "encryption.key"
    assert runner.invoke(cli, ["certs", "key", str(key)]).exit_code == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert runner.invoke(cli, ["certs", "key", str(key)]).exit_code != 0
    keyring = load_keyring(key, None)
    assert keyring is not None and len(keyring.keys) == 1
