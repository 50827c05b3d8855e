"""Secrets are encrypted at rest: the database file and a PostgreSQL dump hold no plaintext."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from mutls.accounts.principal import Principal
from mutls.store.database import Database
from mutls.testing import TestCA
from mutls.vault.keysource import KeySource
from mutls.vault.secrets import create_secret, delete_secret
from tests.loopback.vault.conftest import NOW, client_fields
from tests.secretscan import register_secret

ADMIN = Principal.system("test:admin")
PASSPHRASE = "at-rest-passphrase-7c1d"
CLIENT_SECRET = "at-rest-client-secret-93fa"
STRING_VALUE = "at-rest-string-value-55e0"


def encodings(value: str) -> list[bytes]:
    raw = value.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        raw.hex().encode(),
        raw.hex().upper().encode(),
    ]


def key_material_lines(pem: str) -> list[str]:
    """The base64 body lines of a PEM key: any one of them in storage would be a leak."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def dump(db: Database, tmp_path: Path) -> bytes:
    if db.backend == "sqlite":
        database = db.url.database
        assert database is not None
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        parts = [Path(database), Path(database + "-wal")]
        return b"".join(p.read_bytes() for p in parts if p.exists())
    pg_dump = shutil.which("pg_dump")
    assert pg_dump is not None, "pg_dump is needed for the PostgreSQL at-rest check"
    url = make_url(db.url).set(drivername="postgresql")
    out = subprocess.run(
        [pg_dump, "--data-only", url.render_as_string(hide_password=False)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return out.stdout


def store_everything(db: Database, keys: KeySource, test_ca: TestCA) -> list[str]:
    for value in (PASSPHRASE, CLIENT_SECRET, STRING_VALUE):
        register_secret(value)
    fields = client_fields(test_ca.issue("rest.client.example"), PASSPHRASE)
    plain_key = client_fields(test_ca.issue("plain.client.example"))
    create_secret(
        db,
        keys,
        ADMIN,
        name="cert",
        secret_type="certificate",
        values={"production": fields, "sandbox": plain_key},
        now=NOW,
    )
    create_secret(
        db,
        keys,
        ADMIN,
        name="oauth",
        secret_type="oauth2",
        values={
            "production": {
                "token_url": "https://auth.example/token",
                "client_id": "cid",
                "client_secret": CLIENT_SECRET,
                "auth_method": "client_secret_post",
            }
        },
        now=NOW,
    )
    create_secret(
        db,
        keys,
        ADMIN,
        name="str",
        secret_type="string",
        values={"production": {"value": STRING_VALUE}},
        now=NOW,
    )
    secrets = [PASSPHRASE, CLIENT_SECRET, STRING_VALUE]
    for pem in (str(fields["private_key_pem"]), str(plain_key["private_key_pem"])):
        secrets.extend(key_material_lines(pem))
    return secrets


def test_no_plaintext_secret_in_the_database(
    vault: tuple[Database, KeySource], test_ca: TestCA, tmp_path: Path
) -> None:
    db, keys = vault
    secrets = store_everything(db, keys, test_ca)
    stored = dump(db, tmp_path)
    assert b"rest.client.example" in stored  # the check can see plaintext metadata...
    for secret in secrets:  # ...and finds no secret in any encoding
        for form in encodings(secret):
            assert form not in stored, f"{secret[:6]}... found in the {db.backend} storage"


def test_master_key_is_not_in_the_database(
    vault: tuple[Database, KeySource], test_ca: TestCA, tmp_path: Path
) -> None:
    db, keys = vault
    store_everything(db, keys, test_ca)
    stored = dump(db, tmp_path)
    for key in keys.keys().values():
        for form in (
            key.key,
            base64.b64encode(key.key),
            base64.urlsafe_b64encode(key.key).rstrip(b"="),
            key.key.hex().encode(),
        ):
            assert form not in stored


def test_deleted_secret_leaves_no_ciphertext_behind(
    vault: tuple[Database, KeySource], test_ca: TestCA, tmp_path: Path
) -> None:
    db, keys = vault
    store_everything(db, keys, test_ca)
    with db.read() as session:
        from mutls.store.models import SecretValue

        blobs = [
            v.wrapped_key for v in session.query(SecretValue).all() if v.wrapped_key is not None
        ]
    for name in ("oauth", "cert", "str"):
        delete_secret(db, ADMIN, name, now=NOW)
    stored = dump(db, tmp_path)
    for blob in blobs:
        assert blob not in stored
        assert blob.hex().encode() not in stored
