"""Seed 004 from the command line against a real `mutls up`: add, list, remove an account's CA."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mutls.testing import TestCA
from tests.e2e.conftest import Run
from tests.e2e.test_cli_platform import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("trust"))
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, f"mutls up exited with {code} on Ctrl-C"
    assert running.leaked() == [], f"secret values in the server's debug log {running.log}"


def test_account_ca_add_list_remove(run: Run, server: Server, tmp_path: Path) -> None:
    """account ca add (root + intermediate, root first) -> list shows it -> remove -> empty;
    a leaf given as the chain is refused with not_a_ca."""
    env = server.env()
    run("account", "create", "acme", env=env, check=True)
    ca = TestCA(name="Acme CLI Root", organization="Acme")
    assert ca.intermediate is not None
    (tmp_path / "chain.pem").write_bytes(
        ca.root_pem + ca.intermediate.public_bytes(serialization.Encoding.PEM)
    )
    (tmp_path / "leaf.pem").write_bytes(ca.issue("client.acme.example").cert_pem)
    added = run(
        "account", "ca", "add", "acme", "--chain", "chain.pem", "--name", "acme-ca",
        "--pattern", "*.acme.example", "--json", env=env, check=True,
    ).json()  # fmt: skip
    assert added["subject_patterns"] == ["*.acme.example"]
    listed = run("account", "ca", "list", "acme", "--json", env=env, check=True).json()
    cas = listed["cas"]
    assert isinstance(cas, list)
    assert [c["name"] for c in cas] == ["acme-ca"]
    table = run("account", "ca", "list", "acme", env=env, check=True)
    assert "acme-ca" in table.stdout
    refused = run("account", "ca", "add", "acme", "--chain", "leaf.pem", "--json", env=env)
    assert refused.returncode != 0
    assert refused.error_code() == "not_a_ca"
    run("account", "ca", "remove", "acme", "acme-ca", env=env, check=True)
    after = run("account", "ca", "list", "acme", "--json", env=env, check=True).json()
    assert after["cas"] == []
