"""Master key versions: registration, the active keyring, rotation and revocation.

The database records each version's state (active, retired, revoked) and a check value that
proves the key given is the key that was used, without storing the key. Rotation is resumable by
construction: the new version becomes active first (new values use it at once), then data keys
are rewrapped in small committed batches. A row is either still wrapped by the old version or
already by the new one, so killing the process at any moment loses nothing; running the command
again finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mutls.accounts.principal import Principal
from mutls.audit.log import record
from mutls.errors import (
    InvalidArgument,
    MasterKeyMismatch,
    MasterKeyUnavailable,
    ResourceInUse,
)
from mutls.store.database import Database
from mutls.store.models import MasterKeyRecord, Secret, SecretValue
from mutls.vault.envelope import Binding, Sealed, rewrap
from mutls.vault.keyring import Keyring, KeyState
from mutls.vault.keysource import KeySource

__all__ = [
    "RotationReport",
    "active_keyring",
    "ensure_registered",
    "key_usage",
    "revoke",
    "rotate",
]

DEFAULT_BATCH = 200


def ensure_registered(db: Database, source: KeySource, *, now: datetime) -> int:
    """Check the keyring against the database; on an empty database register it. Returns the
    active version."""
    keys = source.keys()
    with db.write() as session:
        rows = {r.version: r for r in session.execute(select(MasterKeyRecord)).scalars()}
        for version, row in rows.items():
            key = keys.get(version)
            if key is not None and key.check_value != row.check_value:
                raise MasterKeyMismatch(
                    f"expected master key version {version} from {source.description} to match "
                    "the one this database was encrypted with; it does not"
                )
        if not rows:
            newest = max(keys)
            session.add(
                MasterKeyRecord(
                    version=newest,
                    state=KeyState.ACTIVE.value,
                    check_value=keys[newest].check_value,
                    created_at=now,
                )
            )
            record(
                session,
                principal=Principal.system("system:vault"),
                action="vault.master_key.register",
                resource_type="master_key",
                resource_id=str(newest),
                now=now,
            )
            return newest
        active = _active_version(session)
        if active not in keys:
            raise MasterKeyUnavailable(
                f"expected the active master key version {active} in {source.description}; "
                f"it has versions {', '.join(str(v) for v in sorted(keys)) or 'none'}"
            )
        return active


def _active_version(session: Session) -> int:
    version = session.execute(
        select(MasterKeyRecord.version).where(MasterKeyRecord.state == KeyState.ACTIVE.value)
    ).scalar()
    if version is None:
        raise MasterKeyUnavailable("expected one active master key version; the database has none")
    return version


def active_keyring(session: Session, source: KeySource, *needed: int) -> Keyring:
    """The keyring for one operation: the active version from the database, plus ``needed``."""
    active = _active_version(session)
    keys = {active: source.get(active)}
    for version in needed:
        keys[version] = source.get(version)
    return Keyring(keys, active)


def key_usage(db: Database) -> list[tuple[MasterKeyRecord, int]]:
    """Every version with the number of data keys it still wraps."""
    with db.read() as session:
        counts = dict(
            session.execute(
                select(SecretValue.key_version, func.count())
                .where(SecretValue.wrapped_key.is_not(None))
                .group_by(SecretValue.key_version)
            ).all()
        )
        rows = session.execute(select(MasterKeyRecord).order_by(MasterKeyRecord.version)).scalars()
        return [(row, int(counts.get(row.version, 0))) for row in rows]


@dataclass(frozen=True, kw_only=True)
class RotationReport:
    active_version: int
    rewrapped: int
    remaining: int
    resumed: bool


def rotate(
    db: Database,
    source: KeySource,
    *,
    now: datetime,
    to_version: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> RotationReport:
    """Make a new version active and rewrap every data key under it, batch by batch.

    With no ``to_version``: resume if a rotation is unfinished, otherwise add a version to the key
    file (or use a newer version already present in ``MUTLS_MASTER_KEY``).
    """
    if batch_size < 1:
        raise InvalidArgument(f"expected a batch size of at least 1; found {batch_size}")
    system = Principal.system("cli:vault")
    with db.write() as session:
        active = _active_version(session)
        known = {r.version for r in session.execute(select(MasterKeyRecord)).scalars()}
        pending = _pending(session, active)
    resumed = to_version is None and pending > 0
    if not resumed:
        target = to_version or _next_version(source, known)
        if target in known and target != active:
            raise InvalidArgument(
                f"expected a new master key version; version {target} was used before"
            )
        if target != active:
            key = source.get(target)
            with db.write() as session:
                old = session.get(MasterKeyRecord, active)
                assert old is not None
                old.state, old.retired_at = KeyState.RETIRED.value, now
                session.add(
                    MasterKeyRecord(
                        version=target,
                        state=KeyState.ACTIVE.value,
                        check_value=key.check_value,
                        created_at=now,
                    )
                )
                record(
                    session,
                    principal=system,
                    action="vault.master_key.rotate",
                    resource_type="master_key",
                    resource_id=str(target),
                    details={"from_version": active, "to_version": target},
                    now=now,
                )
            active = target
    total = _count_pending(db, active)
    done = 0
    if progress:
        progress(done, total)
    while True:
        with db.write() as session:
            rows = session.execute(
                select(SecretValue, Secret.secret_type)
                .join(Secret, Secret.id == SecretValue.secret_id)
                .where(SecretValue.wrapped_key.is_not(None), SecretValue.key_version != active)
                .order_by(SecretValue.id)
                .limit(batch_size)
            ).all()
            if not rows:
                break
            for value, secret_type in rows:
                assert value.ciphertext is not None
                assert value.wrapped_key is not None
                assert value.key_version is not None
                keyring = active_keyring(session, source, value.key_version)
                resealed = rewrap(
                    Sealed(
                        ciphertext=value.ciphertext,
                        wrapped_key=value.wrapped_key,
                        key_version=value.key_version,
                    ),
                    binding=binding_of(value, secret_type),
                    keyring=keyring,
                )
                value.wrapped_key, value.key_version = resealed.wrapped_key, resealed.key_version
        done += len(rows)
        if progress:
            progress(done, max(total, done))
    with db.write() as session:
        record(
            session,
            principal=system,
            action="vault.master_key.rewrap_done",
            resource_type="master_key",
            resource_id=str(active),
            details={"rewrapped": done, "resumed": resumed},
            now=now,
        )
    return RotationReport(active_version=active, rewrapped=done, remaining=0, resumed=resumed)


def _next_version(source: KeySource, known: set[int]) -> int:
    newer = [v for v in source.keys(reload=True) if v not in known and v > max(known)]
    if newer:
        return min(newer)
    return source.add_version().version


def _pending(session: Session, active: int) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(SecretValue)
            .where(SecretValue.wrapped_key.is_not(None), SecretValue.key_version != active)
        ).scalar_one()
    )


def _count_pending(db: Database, active: int) -> int:
    with db.read() as session:
        return _pending(session, active)


def binding_of(value: SecretValue, secret_type: str) -> Binding:
    return Binding(
        secret_id=value.secret_id,
        environment=value.environment,
        version=value.version,
        secret_type=secret_type,
    )


def revoke(
    db: Database, source: KeySource, version: int, *, now: datetime, force: bool = False
) -> int:
    """Revoke a retired version and drop it from the key file. Returns data keys destroyed.

    Values it still wraps become unreadable (crypto-erasure), so this refuses while any exist
    unless ``force`` is given.
    """
    system = Principal.system("cli:vault")
    with db.write() as session:
        row = session.get(MasterKeyRecord, version)
        if row is None:
            raise InvalidArgument(f"expected a known master key version; {version} is not one")
        if row.state == KeyState.ACTIVE.value:
            raise InvalidArgument(
                f"expected a retired version; version {version} is active",
                hint="rotate to a new version first with `mutls vault rotate-master-key`",
            )
        still = _wrapped_by(session, version)
        if still and not force:
            raise ResourceInUse(
                f"expected no data keys under version {version}; {still} still use it",
                hint="finish the rotation with `mutls vault rotate-master-key`, or pass --force "
                "to destroy those values",
            )
        if still:
            session.execute(
                update(SecretValue)
                .where(SecretValue.key_version == version)
                .values(ciphertext=None, wrapped_key=None, destroyed_at=now)
            )
        row.state, row.revoked_at = KeyState.REVOKED.value, now
        record(
            session,
            principal=system,
            action="vault.master_key.revoke",
            resource_type="master_key",
            resource_id=str(version),
            details={"destroyed_values": still},
            now=now,
        )
    source.remove_version(version)
    return still


def _wrapped_by(session: Session, version: int) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(SecretValue)
            .where(SecretValue.wrapped_key.is_not(None), SecretValue.key_version == version)
        ).scalar_one()
    )
