"""The egress snapshot from a real store (SQLite and PostgreSQL): targets per environment, errors
per environment, TLS contexts built once per certificate version, app tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mutls.accounts.principal import Principal
from mutls.accounts.service import create_token, revoke_token
from mutls.egress.snapshot import EgressLoader, PartnerTarget
from mutls.errors import EnvironmentValueMissing, MutlsError, SecretExpired
from mutls.routing.egress import create_egress_route
from mutls.routing.egress_fields import EgressRouteSpec
from mutls.store.database import Database
from mutls.testing import TestCA
from mutls.vault.keysource import KeySource
from mutls.vault.secrets import create_secret, set_value
from tests.loopback.vault.conftest import client_fields

ADMIN = Principal.system("test:egress")
NOW = datetime.now(UTC).replace(microsecond=0)


def _target(found: PartnerTarget | MutlsError) -> PartnerTarget:
    assert isinstance(found, PartnerTarget), found
    return found


@pytest.fixture
def store(vault: tuple[Database, KeySource], test_ca: TestCA) -> tuple[Database, KeySource]:
    db, keys = vault
    ca_pem = test_ca.root_pem.decode()
    create_secret(
        db,
        keys,
        ADMIN,
        name="bank_cert",
        secret_type="certificate",
        values={
            "production": {**client_fields(test_ca.issue("prod.example")), "ca_bundle_pem": ca_pem},
            "sandbox": {**client_fields(test_ca.issue("sbx.example")), "ca_bundle_pem": ca_pem},
        },
        strict_expiry_enforcement=True,
        now=NOW,
    )
    create_secret(
        db,
        keys,
        ADMIN,
        name="api_key",
        secret_type="string",
        values={"production": {"value": "k-prod"}},
        now=NOW,
    )
    create_egress_route(
        db,
        ADMIN,
        EgressRouteSpec(
            name="bank",
            target_url="https://bank.example/v1",
            certificate_secret="bank_cert",
            headers={"X-Api-Key": "{{secret:api_key}}", "X-Env": "{{environment}}"},
        ),
        now=NOW,
    )
    create_egress_route(
        db,
        ADMIN,
        EgressRouteSpec(
            name="plain",
            target_url="https://other.example:8443",
            certificate_secret="bank_cert",
            environments={"sandbox": {"target_url": "https://sandbox.other.example"}},  # type: ignore[dict-item]
        ),
        now=NOW,
    )
    return db, keys


def test_targets_per_environment_with_their_own_values(store: tuple[Database, KeySource]) -> None:
    """Each environment gets its own certificate, headers and overrides; none borrows another's."""
    snapshot = EgressLoader(*store).load(now=NOW)
    plain = snapshot.routes[("_platform", "plain")]
    production = _target(plain.target("production"))
    sandbox = _target(plain.target("sandbox"))
    assert (production.endpoint.host, production.endpoint.port) == ("other.example", 8443)
    assert production.authority == b"other.example:8443"
    assert (sandbox.endpoint.host, sandbox.authority) == (
        "sandbox.other.example",
        b"sandbox.other.example",
    )
    assert production.certificate is not None
    assert sandbox.certificate is not None
    assert production.certificate.serial != sandbox.certificate.serial
    bank = snapshot.routes[("_platform", "bank")]
    target = _target(bank.target("production"))
    assert target.base_path == b"/v1"
    assert target.headers == b"X-Api-Key: k-prod\r\nX-Env: production\r\n"
    assert target.header_names == {b"x-api-key", b"x-env"}


def test_missing_values_fail_in_their_environment_only(store: tuple[Database, KeySource]) -> None:
    """The header secret has no sandbox value: sandbox requests fail with the secret's name;
    production still works; an unknown environment names the environments that exist."""
    bank = EgressLoader(*store).load(now=NOW).routes[("_platform", "bank")]
    _target(bank.target("production"))
    sandbox = bank.target("sandbox")
    assert isinstance(sandbox, EnvironmentValueMissing)
    assert "api_key" in sandbox.message
    staging = bank.target("staging")
    assert isinstance(staging, EnvironmentValueMissing)
    assert "production" in staging.message
    assert "k-prod" not in staging.message


def test_contexts_are_built_once_and_replaced_on_rotation(
    store: tuple[Database, KeySource], test_ca: TestCA
) -> None:
    """A reload without changes reuses the TLS context (pools stay warm); a new certificate
    version gets a new context, and the other environment keeps its own."""
    db, keys = store
    loader = EgressLoader(db, keys)
    first = _target(loader.load(now=NOW).routes[("_platform", "plain")].target("production"))
    second = _target(loader.load(now=NOW).routes[("_platform", "plain")].target("production"))
    assert second.endpoint.context is first.endpoint.context
    sandbox_before = _target(loader.load(now=NOW).routes[("_platform", "plain")].target("sandbox"))
    set_value(
        db,
        keys,
        ADMIN,
        "bank_cert",
        environment="production",
        fields=client_fields(test_ca.issue("rotated.example")),
        now=NOW,
    )
    snapshot = loader.load(now=NOW)
    rotated = _target(snapshot.routes[("_platform", "plain")].target("production"))
    assert rotated.endpoint.context is not first.endpoint.context
    assert rotated.endpoint.pool_key != first.endpoint.pool_key
    assert rotated.certificate is not None
    assert rotated.certificate.version == 2
    sandbox_after = _target(snapshot.routes[("_platform", "plain")].target("sandbox"))
    assert sandbox_after.endpoint.context is sandbox_before.endpoint.context


def test_strict_expiry_refuses_an_expired_certificate(store: tuple[Database, KeySource]) -> None:
    """Past notAfter, a secret with strict expiry enforcement is secret_expired."""
    later = NOW + timedelta(days=400)
    found = EgressLoader(*store).load(now=later).routes[("_platform", "plain")].target("production")
    assert isinstance(found, SecretExpired)
    assert "bank_cert" in found.message


def test_only_active_app_tokens_with_their_environments(store: tuple[Database, KeySource]) -> None:
    db, keys = store
    app = create_token(db, ADMIN, name="sbx-app", role="app", environments=["sandbox"], now=NOW)
    gone = create_token(db, ADMIN, name="gone", role="app", now=NOW)
    create_token(db, ADMIN, name="an admin", role="admin", now=NOW)
    revoke_token(db, ADMIN, gone.record.id, now=NOW)
    tokens = EgressLoader(db, keys).load(now=NOW).tokens
    assert [t.name for t in tokens.values()] == ["sbx-app"]
    token = next(iter(tokens.values()))
    assert token.id == app.record.id
    assert token.default_environment == "sandbox"
    assert token.environments == {"sandbox"}
