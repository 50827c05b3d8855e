"""A vault ready to use on each backend, and client identities to store in it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization

from mutls.pki.export import private_key_pem
from mutls.store.database import Database
from mutls.testing import Identity, TestCA
from mutls.vault.keysource import KeySource
from mutls.vault.masterkeys import ensure_registered
from tests.secretscan import register_secret

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def vault(db: Database, key_source: KeySource) -> tuple[Database, KeySource]:
    ensure_registered(db, key_source, now=NOW)
    return db, key_source


@pytest.fixture(scope="session")
def test_ca() -> TestCA:
    return TestCA(name="Vault Test CA", organization="mutls vault tests", now=NOW)


def client_fields(identity: Identity, passphrase: str | None = None) -> dict[str, object]:
    """The certificate secret fields for ``identity``, registered with the leak scanner."""
    key_pem = private_key_pem(identity.key, passphrase.encode() if passphrase else None).decode()
    plain = private_key_pem(identity.key, None).decode()
    register_secret(plain)
    register_secret(key_pem)
    if passphrase:
        register_secret(passphrase)
    fields: dict[str, object] = {
        "certificate_pem": identity.certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "private_key_pem": key_pem,
    }
    if passphrase:
        fields["passphrase"] = passphrase
    return fields
