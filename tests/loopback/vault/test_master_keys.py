"""Master key versions: checks, rotation, revocation, and a rotation killed half-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mutls.accounts.principal import Principal
from mutls.errors import InvalidArgument, MasterKeyMismatch, MasterKeyUnavailable, ResourceInUse
from mutls.store.database import Database
from mutls.store.ids import new_id
from mutls.store.models import PLATFORM, MasterKeyRecord, Secret, SecretValue
from mutls.testing import TestCA
from mutls.vault.envelope import Binding, seal
from mutls.vault.keyring import Keyring
from mutls.vault.keysource import KeySource
from mutls.vault.masterkeys import ensure_registered, key_usage, revoke, rotate
from mutls.vault.secrets import create_secret, reveal_secret
from tests.loopback.vault.conftest import NOW, client_fields
from tests.secretscan import register_secret

ADMIN = Principal.system("test:admin")
MUTLS = Path(sys.executable).parent / "mutls"


def test_a_different_master_key_is_refused(
    db: Database, key_source: KeySource, tmp_path: Path
) -> None:
    ensure_registered(db, key_source, now=NOW)
    other = KeySource(path=tmp_path / "other.key")
    other.create()
    with pytest.raises(MasterKeyMismatch):
        ensure_registered(db, other, now=NOW)


def test_rotation_rewraps_everything_and_old_version_can_be_revoked(
    vault: tuple[Database, KeySource], test_ca: TestCA
) -> None:
    db, keys = vault
    view = create_secret(
        db,
        keys,
        ADMIN,
        name="c",
        secret_type="certificate",
        values={"production": client_fields(test_ca.issue("c.example"))},
        now=NOW,
    )
    with pytest.raises(InvalidArgument, match="is active"):
        revoke(db, keys, 1, now=NOW)
    report = rotate(db, keys, now=NOW)
    assert (report.active_version, report.rewrapped, report.resumed) == (2, 1, False)
    assert [(r.version, r.state, n) for r, n in key_usage(db)] == [
        (1, "retired", 0),
        (2, "active", 1),
    ]
    assert revoke(db, keys, 1, now=NOW) == 0
    assert sorted(keys.keys(reload=True)) == [2]
    assert reveal_secret(db, keys, ADMIN, view.id, "production", purpose="t", now=NOW).version == 1


def test_revoking_a_version_still_in_use_needs_force_and_erases(
    vault: tuple[Database, KeySource], test_ca: TestCA
) -> None:
    db, keys = vault
    view = create_secret(
        db,
        keys,
        ADMIN,
        name="c",
        secret_type="certificate",
        values={"production": client_fields(test_ca.issue("c.example"))},
        now=NOW,
    )
    keys.add_version()
    with db.write() as session:  # make v2 active without rewrapping (a rotation cut short)
        session.get(MasterKeyRecord, 1).state = "retired"  # type: ignore[union-attr]
        session.add(
            MasterKeyRecord(
                version=2, state="active", check_value=keys.get(2).check_value, created_at=NOW
            )
        )
    with pytest.raises(ResourceInUse):
        revoke(db, keys, 1, now=NOW)
    assert revoke(db, keys, 1, now=NOW, force=True) == 1
    with pytest.raises(Exception, match="production"):
        reveal_secret(db, keys, ADMIN, view.id, "production", purpose="t", now=NOW)


def test_missing_active_version_is_master_key_unavailable(
    vault: tuple[Database, KeySource], tmp_path: Path
) -> None:
    db, keys = vault
    rotate(db, keys, now=NOW)
    only_v1 = KeySource(path=tmp_path / "v1.key")
    only_v1.path.write_text(  # type: ignore[union-attr]
        (tmp_path / "master.key").read_text().split("mutls-master-key v2")[0]
    )
    only_v1.path.chmod(0o600)  # type: ignore[union-attr]
    with pytest.raises(MasterKeyUnavailable, match="version 2"):
        ensure_registered(db, only_v1, now=NOW)


def bulk_values(db: Database, keys: KeySource, n: int) -> list[str]:
    """n string secrets sealed directly, in one transaction (fast set-up for the kill test)."""
    ids: list[str] = []
    keyring = Keyring(keys.keys(), 1)
    with db.write() as session:
        for i in range(n):
            sid = new_id("sec")
            ids.append(sid)
            session.add(
                Secret(
                    id=sid,
                    namespace=PLATFORM,
                    name=f"bulk{i}",
                    secret_type="string",
                    description="",
                    internal=False,
                    created_at=NOW,
                    created_by="t",
                    updated_at=NOW,
                )
            )
            plaintext = f'{{"value": "bulk-value-{i:05d}"}}'.encode()
            sealed = seal(
                plaintext,
                binding=Binding(
                    secret_id=sid, environment="production", version=1, secret_type="string"
                ),
                keyring=keyring,
            )
            session.add(
                SecretValue(
                    secret_id=sid,
                    environment="production",
                    version=1,
                    current=True,
                    ciphertext=sealed.ciphertext,
                    wrapped_key=sealed.wrapped_key,
                    key_version=sealed.key_version,
                    meta={"has_value": True},
                    created_at=NOW,
                    created_by="t",
                )
            )
    return ids


def on_version(db: Database, version: int) -> int:
    with db.read() as session:
        return int(
            session.execute(
                select(func.count())
                .select_from(SecretValue)
                .where(SecretValue.key_version == version)
            ).scalar_one()
        )


def test_rotation_killed_half_way_resumes_and_loses_nothing(
    vault: tuple[Database, KeySource], database_url: str, tmp_path: Path
) -> None:
    db, keys = vault
    n = 1500
    ids = bulk_values(db, keys, n)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTLS_")}
    env.update(
        MUTLS_DATA_DIR=str(tmp_path),
        MUTLS_DATABASE_URL=database_url,
        MUTLS_MASTER_KEY_FILE=str(keys.path),
    )
    proc = subprocess.Popen(
        [str(MUTLS), "vault", "rotate-master-key", "--batch-size", "1", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while on_version(db, 2) < 100 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    moved = on_version(db, 2)
    assert 0 < moved < n, f"expected the kill to land mid-rotation; {moved} of {n} rewrapped"
    # Mid-rotation, every value still decrypts: old ones under v1, new ones under v2.
    for sid in (ids[0], ids[-1]):
        assert reveal_secret(db, keys, ADMIN, sid, "production", purpose="t", now=NOW).fields
    done = subprocess.run(
        [str(MUTLS), "vault", "rotate-master-key", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"resumed": true' in done.stdout
    assert (on_version(db, 1), on_version(db, 2)) == (0, n)
    for i in (0, n // 2, n - 1):
        value = reveal_secret(db, keys, ADMIN, ids[i], "production", purpose="t", now=NOW)
        assert value.fields == {"value": f"bulk-value-{i:05d}"}
    register_secret("bulk-value-00000")


def test_the_cli_default_batch_size_is_the_services() -> None:
    from mutls.cli import vault as cli_vault
    from mutls.vault import masterkeys

    assert cli_vault.DEFAULT_BATCH == masterkeys.DEFAULT_BATCH
