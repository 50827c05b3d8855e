"""The vault service on SQLite and PostgreSQL: environments, versions, erasure, and binding."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from mutls.accounts.principal import Principal
from mutls.audit.log import AuditQuery, query
from mutls.errors import (
    DecryptionFailed,
    EnvironmentValueMissing,
    InvalidArgument,
    KeyMismatch,
    MissingPrivateKey,
    NameTaken,
    ResourceInUse,
    SecretNotFound,
    WrongPassphrase,
)
from mutls.store.database import Database
from mutls.store.models import AuditEvent, Secret, SecretValue
from mutls.testing import TestCA
from mutls.vault.keysource import KeySource
from mutls.vault.secrets import (
    create_secret,
    delete_secret,
    delete_value,
    get_secret,
    list_secrets,
    reveal_secret,
    set_value,
)
from tests.loopback.vault.conftest import NOW, client_fields
from tests.secretscan import register_secret

ADMIN = Principal.system("test:admin")
Vault = tuple[Database, KeySource]


def make_cert_secret(vault: Vault, test_ca: TestCA, name: str = "bank_api_certificate") -> str:
    db, keys = vault
    view = create_secret(
        db,
        keys,
        ADMIN,
        name=name,
        secret_type="certificate",
        values={
            "production": client_fields(test_ca.issue("prod.client.example"), "prod-passphrase"),
            "sandbox": client_fields(test_ca.issue("sandbox.client.example")),
        },
        now=NOW,
    )
    return view.id


def audit_count(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


def test_each_environment_has_its_own_value_and_metadata(vault: Vault, test_ca: TestCA) -> None:
    db, keys = vault
    secret_id = make_cert_secret(vault, test_ca)
    view = get_secret(db, ADMIN, "bank_api_certificate", now=NOW)
    assert view.id == secret_id
    prod, sandbox = view.environments["production"], view.environments["sandbox"]
    assert "prod.client.example" in str(prod.metadata["subject"])
    assert prod.metadata["has_passphrase"] is True
    assert sandbox.metadata["has_passphrase"] is False
    assert prod.metadata["days_remaining"] in (364, 365)
    revealed = reveal_secret(db, keys, ADMIN, secret_id, "sandbox", purpose="test", now=NOW)
    assert "sandbox" not in str(revealed.fields.get("passphrase"))
    assert (
        revealed.fields["private_key_pem"]
        != reveal_secret(db, keys, ADMIN, secret_id, "production", purpose="test", now=NOW).fields[
            "private_key_pem"
        ]
    )


def test_a_missing_environment_is_a_hard_error_never_a_fallback(
    vault: Vault, test_ca: TestCA
) -> None:
    db, keys = vault
    secret_id = make_cert_secret(vault, test_ca)
    with pytest.raises(EnvironmentValueMissing) as caught:
        reveal_secret(db, keys, ADMIN, secret_id, "staging", purpose="test", now=NOW)
    assert caught.value.code == "environment_value_missing"
    assert "production, sandbox" in caught.value.message


def test_reveal_is_audited_without_the_value(vault: Vault, test_ca: TestCA) -> None:
    db, keys = vault
    secret_id = make_cert_secret(vault, test_ca)
    reveal_secret(db, keys, ADMIN, secret_id, "production", purpose="egress", now=NOW)
    with db.read() as session:
        (event,) = query(session, ADMIN, AuditQuery(action="secret.access"))
    assert (event.resource_id, event.environment) == (secret_id, "production")
    assert event.details == {"name": "bank_api_certificate", "version": 1, "purpose": "egress"}


def test_replacing_a_value_destroys_the_previous_version(vault: Vault, test_ca: TestCA) -> None:
    db, keys = vault
    secret_id = make_cert_secret(vault, test_ca)
    new = client_fields(test_ca.issue("sandbox2.client.example"))
    view = set_value(db, keys, ADMIN, secret_id, environment="sandbox", fields=new, now=NOW)
    assert view.environments["sandbox"].version == 2
    with db.read() as session:
        rows = (
            session.execute(
                select(SecretValue)
                .where(SecretValue.environment == "sandbox")
                .order_by(SecretValue.version)
            )
            .scalars()
            .all()
        )
    assert [(r.version, r.current, r.ciphertext is None, r.wrapped_key is None) for r in rows] == [
        (1, False, True, True),
        (2, True, False, False),
    ]
    revealed = reveal_secret(db, keys, ADMIN, secret_id, "sandbox", purpose="t", now=NOW)
    assert revealed.version == 2
    assert revealed.fields["private_key_pem"] == new["private_key_pem"]


def test_deleting_a_value_then_the_secret(vault: Vault, test_ca: TestCA) -> None:
    db, keys = vault
    secret_id = make_cert_secret(vault, test_ca)
    view = delete_value(db, ADMIN, secret_id, "sandbox", now=NOW)
    assert list(view.environments) == ["production"]
    with pytest.raises(EnvironmentValueMissing):
        reveal_secret(db, keys, ADMIN, secret_id, "sandbox", purpose="t", now=NOW)
    with pytest.raises(EnvironmentValueMissing):
        delete_value(db, ADMIN, secret_id, "sandbox", now=NOW)
    delete_secret(db, ADMIN, secret_id, now=NOW)
    with db.read() as session:
        assert session.execute(select(func.count()).select_from(SecretValue)).scalar_one() == 0
    with pytest.raises(SecretNotFound):
        get_secret(db, ADMIN, secret_id, now=NOW)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda f, other: {**f, "private_key_pem": other["private_key_pem"]}, KeyMismatch),
        (lambda f, other: {"certificate_pem": f["certificate_pem"]}, MissingPrivateKey),
        (lambda f, other: {**f, "passphrase": "wrong-passphrase"}, WrongPassphrase),
    ],
)
def test_a_bad_upload_writes_nothing(
    vault: Vault, test_ca: TestCA, mutate: object, error: type[Exception]
) -> None:
    db, keys = vault
    good = client_fields(test_ca.issue("a.client.example"), "right-passphrase")
    other = client_fields(test_ca.issue("b.client.example"))
    before = audit_count(db)
    assert callable(mutate)
    with pytest.raises(error):
        create_secret(
            db,
            keys,
            ADMIN,
            name="x",
            secret_type="certificate",
            values={"production": good, "sandbox": mutate(good, other)},
            now=NOW,
        )
    with db.read() as session:
        assert session.execute(select(func.count()).select_from(Secret)).scalar_one() == 0
    assert audit_count(db) == before


def test_descriptions_with_control_characters_are_refused(vault: Vault, test_ca: TestCA) -> None:
    db, keys = vault
    with pytest.raises(InvalidArgument, match="control characters"):
        create_secret(
            db,
            keys,
            ADMIN,
            name="s",
            secret_type="string",
            description="a\x00b",
            values={"production": {"value": "description-test-value"}},
            now=NOW,
        )


def test_names_are_unique_per_owner(vault: Vault, test_ca: TestCA) -> None:
    make_cert_secret(vault, test_ca, "dup")
    with pytest.raises(NameTaken):
        make_cert_secret(vault, test_ca, "dup")
    with pytest.raises(InvalidArgument):
        make_cert_secret(vault, test_ca, "bad name")


@pytest.mark.parametrize("column", ["secret_id", "environment", "version"])
def test_a_ciphertext_moved_to_another_binding_does_not_decrypt(
    vault: Vault, test_ca: TestCA, column: str
) -> None:
    """Copying a value's ciphertext and wrapped key to another id, environment or version
    fails: the additional data binds them to where they were written."""
    db, keys = vault
    a = make_cert_secret(vault, test_ca, "a")
    b = make_cert_secret(vault, test_ca, "b")
    with db.write() as session:
        source = session.execute(
            select(SecretValue).where(
                SecretValue.secret_id == a, SecretValue.environment == "production"
            )
        ).scalar_one()
        if column == "secret_id":
            target = (b, "production")
        elif column == "environment":
            target = (a, "sandbox")
        else:
            target = (a, "production")
        if column == "version":
            source.version = 7  # the same bytes, relabelled as another version
        else:
            session.execute(
                update(SecretValue)
                .where(SecretValue.secret_id == target[0], SecretValue.environment == target[1])
                .values(ciphertext=source.ciphertext, wrapped_key=source.wrapped_key)
            )
    with pytest.raises(DecryptionFailed):
        reveal_secret(db, keys, ADMIN, target[0], target[1], purpose="t", now=NOW)


def test_oauth2_secret_names_a_certificate_secret_which_cannot_then_be_deleted(
    vault: Vault, test_ca: TestCA
) -> None:
    db, keys = vault
    cert_id = make_cert_secret(vault, test_ca, "bank_cert")
    register_secret("oauth-client-secret-1")
    create_secret(
        db,
        keys,
        ADMIN,
        name="bank_oauth",
        secret_type="oauth2",
        values={
            "production": {
                "token_url": "https://auth.bank.example/token",
                "client_id": "client-1",
                "auth_method": "tls_client_auth",
                "certificate_secret": "bank_cert",
                "scopes": ["accounts"],
            }
        },
        now=NOW,
    )
    view = get_secret(db, ADMIN, "bank_oauth", now=NOW)
    assert view.environments["production"].metadata["certificate_secret_id"] == cert_id
    with pytest.raises(ResourceInUse, match="bank_oauth"):
        delete_secret(db, ADMIN, cert_id, now=NOW)
    with pytest.raises(InvalidArgument, match="certificate secret"):
        create_secret(
            db,
            keys,
            ADMIN,
            name="bad_oauth",
            secret_type="oauth2",
            values={
                "production": {
                    "token_url": "https://auth.bank.example/token",
                    "client_id": "c",
                    "auth_method": "tls_client_auth",
                    "certificate_secret": "nope",
                }
            },
            now=NOW,
        )


def test_list_filters(vault: Vault, test_ca: TestCA) -> None:
    db, keys = vault
    make_cert_secret(vault, test_ca, "long_lived")
    create_secret(
        db,
        keys,
        ADMIN,
        name="short_lived",
        secret_type="certificate",
        values={
            "production": client_fields(test_ca.issue("short.example", validity=timedelta(days=10)))
        },
        now=NOW,
    )
    register_secret("a-string-secret-value")
    create_secret(
        db,
        keys,
        ADMIN,
        name="api_key",
        secret_type="string",
        values={"sandbox": {"value": "a-string-secret-value"}},
        now=NOW,
    )

    def names(**filters: object) -> list[str]:
        return [s.name for s in list_secrets(db, ADMIN, now=NOW, **filters)]  # type: ignore[arg-type]

    assert names() == ["api_key", "long_lived", "short_lived"]
    assert names(secret_type="string") == ["api_key"]
    assert names(name="LIVED") == ["long_lived", "short_lived"]
    assert names(expiring_within_days=30) == ["short_lived"]
    assert names(environment="sandbox") == ["api_key", "long_lived"]
    with pytest.raises(InvalidArgument):
        names(secret_type="password")


def test_account_scoped_callers_see_only_their_secrets(vault: Vault, test_ca: TestCA) -> None:
    from mutls.accounts.roles import Role
    from mutls.accounts.service import create_account

    db, keys = vault
    one = create_account(db, ADMIN, name="one", display_name=None, now=NOW)
    two = create_account(db, ADMIN, name="two", display_name=None, now=NOW)
    p1 = Principal(actor="token:tok_1", role=Role.ADMIN, account_id=one.id)
    p2 = Principal(actor="token:tok_2", role=Role.ADMIN, account_id=two.id)
    fields = client_fields(test_ca.issue("one.example"))
    mine = create_secret(
        db,
        keys,
        p1,
        name="shared_name",
        secret_type="certificate",
        values={"production": fields},
        now=NOW,
    )
    theirs = create_secret(
        db,
        keys,
        p2,
        name="shared_name",
        secret_type="certificate",
        values={"production": fields},
        now=NOW,
    )
    assert [s.id for s in list_secrets(db, p1, now=NOW)] == [mine.id]
    assert get_secret(db, p1, "shared_name", now=NOW).id == mine.id
    with pytest.raises(SecretNotFound):
        get_secret(db, p1, theirs.id, now=NOW)
    with pytest.raises(SecretNotFound):
        delete_secret(db, p1, theirs.id, now=NOW)
    assert {s.id for s in list_secrets(db, ADMIN, now=NOW)} == {mine.id, theirs.id}
