"""Seed 003 from the command line against a real `mutls up`: opt in, CSR, issue, list."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e.conftest import Run
from tests.e2e.test_cli_platform import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One platform for this module (a real `mutls up`, CA created on first start)."""
    running = start_server(tmp_path_factory.mktemp("certificates"))
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, f"mutls up exited with {code} on Ctrl-C"
    assert running.leaked() == [], f"secret values in the server's debug log {running.log}"


def _csr(run: Run, cn: str) -> None:
    run(
        "csr", "new", "--cn", cn, "-C", "CA", "--org", "Acme", "--no-encrypt-key",
        check=True,
    )  # fmt: skip


def test_account_opts_in_and_gets_a_certificate_listed_live(
    run: Run, server: Server, tmp_path: Path
) -> None:
    """account create -> account mtls --enable -> csr new -> cert issue -> cert list: live."""
    env = server.env()
    run("account", "create", "acme", env=env, check=True)
    enabled = run("account", "mtls", "acme", "--enable", "--json", env=env, check=True).json()
    assert enabled["enabled"] is True
    _csr(run, "client.acme.example")
    issued = run(
        "cert", "issue", "acme", "--csr", "client.acme.example.csr.pem",
        "--out", "client.pem", "--ca-out", "ca.pem", "--json",
        env=env, check=True,
    ).json()  # fmt: skip
    pem = (tmp_path / "client.pem").read_bytes()
    certs = x509.load_pem_x509_certificates(pem)
    assert len(certs) == 2  # the leaf and the intermediate, no root
    assert certs[0].issuer == certs[1].subject
    assert stat.S_IMODE((tmp_path / "client.pem").stat().st_mode) == 0o644
    listed = run("cert", "list", "acme", "--status", "live", "--json", env=env, check=True).json()
    rows = listed["certificates"]
    assert isinstance(rows, list)
    assert [(r["serial"], r["status"]) for r in rows] == [(issued["serial"], "live")]
    table = run("cert", "list", "acme", env=env, check=True)
    assert str(issued["serial"]) in table.stdout
    # the local toolkit in the same group still works on the downloaded file
    run("cert", "verify", "client.pem", "--ca", "ca.pem", check=True)


def test_issuing_without_opt_in_is_account_mtls_disabled(
    run: Run, server: Server, tmp_path: Path
) -> None:
    """The rejection twin: no `account mtls --enable`, no certificate, nothing written."""
    env = server.env()
    run("account", "create", "bravo", env=env, check=True)
    _csr(run, "client.bravo.example")
    refused = run(
        "cert", "issue", "bravo", "--csr", "client.bravo.example.csr.pem",
        "--out", "client.pem", "--json", env=env,
    )  # fmt: skip
    assert refused.returncode != 0
    assert refused.error_code() == "account_mtls_disabled"
    assert not (tmp_path / "client.pem").exists()
    listed = run("cert", "list", "bravo", "--json", env=env, check=True).json()
    assert listed["certificates"] == []


def test_revoking_a_certificate_then_revoking_it_again_is_already_revoked(
    run: Run, server: Server, tmp_path: Path
) -> None:
    """cert issue -> cert revoke --reason key_compromise: revoked; a second revoke exits 1."""
    env = server.env()
    run("account", "create", "charlie", env=env, check=True)
    run("account", "mtls", "charlie", "--enable", env=env, check=True)
    _csr(run, "client.charlie.example")
    issued = run(
        "cert", "issue", "charlie", "--csr", "client.charlie.example.csr.pem", "--json",
        env=env, check=True,
    ).json()  # fmt: skip
    revoked = run(
        "cert", "revoke", str(issued["serial"]), "--reason", "key_compromise", "--json",
        env=env, check=True,
    ).json()  # fmt: skip
    assert (revoked["serial"], revoked["status"]) == (issued["serial"], "revoked")
    assert revoked["revocation_reason"] == "keyCompromise"
    listed = run("cert", "list", "charlie", "--json", env=env, check=True).json()
    rows = listed["certificates"]
    assert isinstance(rows, list)
    assert [r["status"] for r in rows] == ["revoked"]
    again = run("cert", "revoke", str(issued["id"]), env=env)
    assert again.returncode == 1
    assert "already_revoked" in again.stderr
    again_json = run("cert", "revoke", str(issued["id"]), "--json", env=env)
    assert again_json.returncode == 1
    assert again_json.error_code() == "already_revoked"
