"""The vault's business operations: create, update per environment, read metadata, reveal, delete.

Every value is validated and parsed before the transaction opens (a bad upload touches nothing),
then sealed with its own data key and written together with its audit row. Replacing or deleting
a value destroys its ciphertext and wrapped data key in the same transaction (crypto-erasure); the
public metadata stays as history. No function here returns a secret field except ``reveal``, which
the data planes use and which is audited on every call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.accounts.service import find_account
from mutls.audit.log import record
from mutls.errors import (
    AccountNotFound,
    EnvironmentValueMissing,
    InvalidArgument,
    NameTaken,
    ResourceInUse,
    SecretNotFound,
)
from mutls.policy.templates import parse_template
from mutls.store.database import Database
from mutls.store.ids import new_id
from mutls.store.models import PLATFORM, SYSTEM, EgressRoute, Secret, SecretValue
from mutls.vault.envelope import Sealed, open_sealed, seal
from mutls.vault.keysource import KeySource
from mutls.vault.masterkeys import active_keyring, binding_of
from mutls.vault.payloads import Prepared, SecretType, expiry_view, prepare, reveal

__all__ = [
    "DEFAULT_ENVIRONMENT",
    "EnvironmentView",
    "RevealedSecret",
    "SecretView",
    "create_secret",
    "delete_secret",
    "delete_value",
    "get_secret",
    "list_secrets",
    "owner_namespace",
    "reveal_secret",
    "secret_in_namespace",
    "set_value",
    "update_secret",
]

DEFAULT_ENVIRONMENT = "production"
SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ENVIRONMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_ENVIRONMENTS = 32
MAX_DESCRIPTION = 2000


@dataclass(frozen=True, kw_only=True)
class EnvironmentView:
    """The current value of one environment: public metadata only."""

    environment: str
    version: int
    created_at: datetime
    created_by: str
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "metadata": self.metadata,
        }


@dataclass(frozen=True, kw_only=True)
class SecretView:
    id: str
    name: str
    secret_type: SecretType
    account_id: str | None
    description: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    environments: dict[str, EnvironmentView] = field(default_factory=dict)
    strict_expiry_enforcement: bool = False

    @property
    def default_environment(self) -> str | None:
        """``production`` when it has a value, else the first environment by name."""
        if DEFAULT_ENVIRONMENT in self.environments:
            return DEFAULT_ENVIRONMENT
        return min(self.environments) if self.environments else None


@dataclass(frozen=True, kw_only=True)
class RevealedSecret:
    """Decrypted fields of one value. Never logged, never returned by the admin API."""

    secret_id: str
    name: str
    secret_type: SecretType
    environment: str
    version: int
    fields: dict[str, object] = field(repr=False)


# --- validation ----------------------------------------------------------------------------


def check_environment(environment: str) -> str:
    if not ENVIRONMENT_NAME.fullmatch(environment):
        raise InvalidArgument(
            "expected an environment name of lowercase letters, digits, '-' and '_' (up to 64), "
            f"like production or sandbox; found {environment!r}"
        )
    return environment


def _secret_type(value: str) -> SecretType:
    try:
        return SecretType(value)
    except ValueError:
        raise InvalidArgument(
            f"expected secret_type to be one of {', '.join(t.value for t in SecretType)}; "
            f"found {value!r}"
        ) from None


def _prepare_all(
    secret_type: SecretType, values: Mapping[str, Mapping[str, object]], now: datetime
) -> dict[str, Prepared]:
    if len(values) > MAX_ENVIRONMENTS:
        raise InvalidArgument(
            f"expected at most {MAX_ENVIRONMENTS} environments; found {len(values)}"
        )
    return {
        check_environment(env): prepare(secret_type, fields, now=now)
        for env, fields in values.items()
    }


# --- lookups -------------------------------------------------------------------------------


def _namespace(session: Session, principal: Principal, account_id: str | None) -> str:
    if principal.account_id is not None:
        if account_id not in (None, principal.account_id):
            raise AccountNotFound(f"expected an account with id {account_id!r}; there is none")
        return principal.account_id
    if account_id is None:
        return PLATFORM
    return find_account(session, principal, account_id).id


def owner_namespace(session: Session, principal: Principal, account_id: str | None) -> str:
    """The namespace a caller's new resource goes to: its own account's, or (for platform-wide
    callers) the named account's or the platform's. Egress routes live beside their secrets."""
    return _namespace(session, principal, account_id)


def secret_in_namespace(session: Session, namespace: str, ref: str) -> Secret | None:
    """A non-internal secret of ``namespace`` by id or name, or None."""
    secret = session.get(Secret, ref)
    if secret is not None:
        return secret if secret.namespace == namespace and not secret.internal else None
    return session.execute(
        select(Secret).where(
            Secret.namespace == namespace, Secret.name == ref, Secret.internal.is_(False)
        )
    ).scalar()


def _find(
    session: Session,
    principal: Principal,
    ref: str,
    *,
    account_id: str | None = None,
    internal: bool = False,
) -> Secret:
    """By id (``sec_...``) anywhere the caller may see, or by name in the caller's namespace.

    Internal secrets (the platform's own, such as the CA key passphrase) are found only when
    asked for with ``internal=True``, never through the admin API.
    """
    missing = SecretNotFound(f"expected a secret with id or name {ref!r}; there is none")
    secret = session.get(Secret, ref, options=[selectinload(Secret.values)])
    if secret is None:
        namespace = SYSTEM if internal else _namespace(session, principal, account_id)
        secret = session.execute(
            select(Secret)
            .where(Secret.namespace == namespace, Secret.name == ref)
            .options(selectinload(Secret.values))
        ).scalar()
    if secret is None or secret.internal != internal or not principal.sees(secret.account_id):
        raise missing
    return secret


def _view(secret: Secret, now: datetime) -> SecretView:
    environments: dict[str, EnvironmentView] = {}
    for value in secret.values:
        if not value.current:
            continue
        metadata = dict(value.meta)
        if secret.secret_type == SecretType.CERTIFICATE.value:
            metadata.update(expiry_view(metadata, now=now))
        environments[value.environment] = EnvironmentView(
            environment=value.environment,
            version=value.version,
            created_at=value.created_at,
            created_by=value.created_by,
            metadata=metadata,
        )
    return SecretView(
        id=secret.id,
        name=secret.name,
        secret_type=SecretType(secret.secret_type),
        account_id=secret.account_id,
        description=secret.description,
        created_at=secret.created_at,
        created_by=secret.created_by,
        updated_at=secret.updated_at,
        environments=dict(sorted(environments.items())),
        strict_expiry_enforcement=bool(secret.strict_expiry_enforcement),
    )


def _resolve_references(session: Session, secret: Secret, prepared: Mapping[str, Prepared]) -> None:
    """An oauth2 secret that authenticates with a certificate names a certificate secret."""
    for env, item in prepared.items():
        ref = item.metadata.get("certificate_secret")
        if not isinstance(ref, str):
            continue
        target = (
            session.get(Secret, ref)
            or session.execute(
                select(Secret).where(Secret.namespace == secret.namespace, Secret.name == ref)
            ).scalar()
        )
        if (
            target is None
            or target.internal
            or target.namespace != secret.namespace
            or target.secret_type != SecretType.CERTIFICATE.value
        ):
            raise InvalidArgument(
                f"expected certificate_secret ({env}) to name a certificate secret of the same "
                f"owner; found none called {ref!r}",
                hint="create the certificate secret first, then the oauth2 secret that uses it",
            )
        item.metadata["certificate_secret_id"] = target.id


def _store_value(
    session: Session,
    source: KeySource,
    principal: Principal,
    secret: Secret,
    *,
    environment: str,
    prepared: Prepared,
    now: datetime,
) -> SecretValue:
    """Seal and add a new current version, destroying the previous one's key and ciphertext."""
    previous = [v for v in secret.values if v.environment == environment]
    for old in previous:
        if old.current:
            _destroy(old, now)
    version = max((v.version for v in previous), default=0) + 1
    value = SecretValue(
        secret_id=secret.id,
        environment=environment,
        version=version,
        current=True,
        meta=prepared.metadata,
        valid_until=_valid_until(prepared.metadata),
        created_at=now,
        created_by=principal.actor,
    )
    sealed = seal(
        prepared.plaintext,
        binding=binding_of(value, secret.secret_type),
        keyring=active_keyring(session, source),
    )
    value.ciphertext, value.wrapped_key, value.key_version = (
        sealed.ciphertext,
        sealed.wrapped_key,
        sealed.key_version,
    )
    secret.values.append(value)
    return value


def _destroy(value: SecretValue, now: datetime) -> None:
    value.current = False
    value.ciphertext = None
    value.wrapped_key = None
    value.destroyed_at = now


def _valid_until(metadata: Mapping[str, object]) -> datetime | None:
    raw = metadata.get("valid_until")
    if not isinstance(raw, str):
        return None
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


# --- operations ----------------------------------------------------------------------------


def create_secret(
    db: Database,
    source: KeySource,
    principal: Principal,
    *,
    name: str,
    secret_type: str,
    values: Mapping[str, Mapping[str, object]],
    description: str = "",
    account_id: str | None = None,
    internal: bool = False,
    strict_expiry_enforcement: bool = False,
    now: datetime,
) -> SecretView:
    """Create a secret with a value for one or more environments, all or nothing.

    ``strict_expiry_enforcement``: the egress proxy refuses to use an expired certificate of
    this secret (``secret_expired``) instead of using it with a warning."""
    principal.require(Permission.SECRETS_WRITE)
    kind = _secret_type(secret_type)
    if not SECRET_NAME.fullmatch(name):
        raise InvalidArgument(
            "expected a secret name of letters, digits, '_', '.' and '-' (up to 128), like "
            f"bank_api_certificate; found {name!r}"
        )
    _check_description(description)
    if not values:
        raise InvalidArgument("expected a value for at least one environment; found none")
    prepared = _prepare_all(kind, values, now)
    taken = NameTaken(f"expected a new secret name; a secret called {name!r} already exists")
    try:
        with db.write() as session:
            namespace = SYSTEM if internal else _namespace(session, principal, account_id)
            if session.execute(
                select(Secret.id).where(Secret.namespace == namespace, Secret.name == name)
            ).first():
                raise taken
            secret = Secret(
                id=new_id("sec"),
                namespace=namespace,
                account_id=None if namespace in {PLATFORM, SYSTEM} else namespace,
                name=name,
                secret_type=kind.value,
                description=description,
                internal=internal,
                strict_expiry_enforcement=strict_expiry_enforcement,
                created_at=now,
                created_by=principal.actor,
                updated_at=now,
            )
            secret.values = []
            _resolve_references(session, secret, prepared)
            session.add(secret)
            for env, item in prepared.items():
                _store_value(
                    session, source, principal, secret, environment=env, prepared=item, now=now
                )
            session.flush()
            record(
                session,
                principal=principal,
                action="secret.create",
                account_id=secret.account_id,
                resource_type="secret",
                resource_id=secret.id,
                environment=next(iter(prepared)) if len(prepared) == 1 else None,
                details={
                    "name": name,
                    "secret_type": kind.value,
                    "environments": sorted(prepared),
                    "strict_expiry_enforcement": strict_expiry_enforcement,
                    **_fingerprints(prepared),
                },
                now=now,
            )
            return _view(secret, now)
    except IntegrityError:
        raise taken from None


def _check_description(description: str) -> None:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidArgument(
            f"expected a description of at most {MAX_DESCRIPTION} characters; "
            f"found {len(description)}"
        )
    if any((ord(c) < 32 and c not in "\t\n") or ord(c) == 127 for c in description):
        raise InvalidArgument("expected a description of printable text; found control characters")


def update_secret(
    db: Database,
    principal: Principal,
    ref: str,
    *,
    description: str | None = None,
    strict_expiry_enforcement: bool | None = None,
    now: datetime,
) -> SecretView:
    """Change a secret's settings (not its values): the fields given, keep the rest. Audited as
    ``secret.settings`` with each change; a call that changes nothing writes nothing."""
    principal.require(Permission.SECRETS_WRITE)
    if description is not None:
        _check_description(description)
    with db.write() as session:
        secret = _find(session, principal, ref)
        changed: dict[str, object] = {}
        if description is not None and description != secret.description:
            changed["description"] = {"before": secret.description, "after": description}
            secret.description = description
        if (
            strict_expiry_enforcement is not None
            and strict_expiry_enforcement != secret.strict_expiry_enforcement
        ):
            changed["strict_expiry_enforcement"] = {
                "before": secret.strict_expiry_enforcement,
                "after": strict_expiry_enforcement,
            }
            secret.strict_expiry_enforcement = strict_expiry_enforcement
        if changed:
            secret.updated_at = now
            record(
                session,
                principal=principal,
                action="secret.settings",
                account_id=secret.account_id,
                resource_type="secret",
                resource_id=secret.id,
                details={"name": secret.name, "changed": changed},
                now=now,
            )
        return _view(secret, now)


def _fingerprints(prepared: Mapping[str, Prepared]) -> dict[str, object]:
    prints = {
        env: item.metadata["fingerprint_sha256"]
        for env, item in prepared.items()
        if "fingerprint_sha256" in item.metadata
    }
    return {"fingerprints": prints} if prints else {}


def set_value(
    db: Database,
    source: KeySource,
    principal: Principal,
    ref: str,
    *,
    environment: str,
    fields: Mapping[str, object],
    now: datetime,
) -> SecretView:
    """Create or replace one environment's value (a new version; the old one is destroyed)."""
    principal.require(Permission.SECRETS_WRITE)
    check_environment(environment)
    with db.read() as session:
        kind = SecretType(_find(session, principal, ref).secret_type)
    prepared = _prepare_all(kind, {environment: fields}, now)
    with db.write() as session:
        secret = _find(session, principal, ref)
        _resolve_references(session, secret, prepared)
        value = _store_value(
            session,
            source,
            principal,
            secret,
            environment=environment,
            prepared=prepared[environment],
            now=now,
        )
        secret.updated_at = now
        session.flush()
        record(
            session,
            principal=principal,
            action="secret.update",
            account_id=secret.account_id,
            resource_type="secret",
            resource_id=secret.id,
            environment=environment,
            details={"name": secret.name, "version": value.version, **_fingerprints(prepared)},
            now=now,
        )
        return _view(secret, now)


def delete_value(
    db: Database, principal: Principal, ref: str, environment: str, *, now: datetime
) -> SecretView:
    """Remove one environment's value; lookups for it then fail with environment_value_missing."""
    principal.require(Permission.SECRETS_WRITE)
    check_environment(environment)
    with db.write() as session:
        secret = _find(session, principal, ref)
        current = [v for v in secret.values if v.environment == environment and v.current]
        if not current:
            raise EnvironmentValueMissing(
                f"expected secret {secret.name!r} to have a {environment!r} value; it has "
                f"{', '.join(_current_envs(secret)) or 'none'}"
            )
        for value in current:
            _destroy(value, now)
        secret.updated_at = now
        record(
            session,
            principal=principal,
            action="secret.value_delete",
            account_id=secret.account_id,
            resource_type="secret",
            resource_id=secret.id,
            environment=environment,
            details={"name": secret.name},
            now=now,
        )
        return _view(secret, now)


def _current_envs(secret: Secret) -> list[str]:
    return sorted({v.environment for v in secret.values if v.current})


def delete_secret(db: Database, principal: Principal, ref: str, *, now: datetime) -> None:
    """Delete a secret and every version of every value, data keys first (crypto-erasure)."""
    principal.require(Permission.SECRETS_WRITE)
    with db.write() as session:
        secret = _find(session, principal, ref)
        users = [
            s.name
            for s in session.execute(
                select(Secret)
                .where(
                    Secret.namespace == secret.namespace,
                    Secret.secret_type == SecretType.OAUTH2.value,
                )
                .options(selectinload(Secret.values))
            ).scalars()
            if any(v.current and v.meta.get("certificate_secret_id") == secret.id for v in s.values)
        ]
        routes = _egress_routes_using(session, secret)
        if routes:
            raise ResourceInUse(
                f"expected no egress route to use {secret.name!r}; route(s) "
                f"{', '.join(routes)} use it",
                hint="point those routes at another secret (`mutls egress route update`), or "
                "delete them first",
            )
        if users:
            raise ResourceInUse(
                f"expected no secret to use {secret.name!r}; oauth2 secret(s) "
                f"{', '.join(sorted(users))} authenticate with it",
                hint="point those secrets at another certificate, or delete them first",
            )
        for value in secret.values:
            _destroy(value, now)
        session.flush()
        record(
            session,
            principal=principal,
            action="secret.delete",
            account_id=secret.account_id,
            resource_type="secret",
            resource_id=secret.id,
            details={
                "name": secret.name,
                "secret_type": secret.secret_type,
                "environments": _current_envs(secret),
            },
            now=now,
        )
        session.delete(secret)


def _egress_routes_using(session: Session, secret: Secret) -> list[str]:
    """Names of the egress routes that refer to ``secret`` (by id, or by name in a header)."""
    names: list[str] = []
    rows = session.execute(
        select(EgressRoute).where(EgressRoute.namespace == secret.namespace)
    ).scalars()
    for row in rows:
        ids = {row.certificate_secret_id, row.oauth2_secret_id, row.ca_bundle_secret_id}
        in_headers = any(
            secret.name in parse_template(template).secrets
            for template in (row.headers or {}).values()
        )
        if secret.id in ids or in_headers:
            names.append(row.name)
    return sorted(names)


def get_secret(db: Database, principal: Principal, ref: str, *, now: datetime) -> SecretView:
    principal.require(Permission.SECRETS_READ)
    with db.read() as session:
        return _view(_find(session, principal, ref), now)


def list_secrets(
    db: Database,
    principal: Principal,
    *,
    now: datetime,
    secret_type: str | None = None,
    name: str | None = None,
    environment: str | None = None,
    expiring_within_days: int | None = None,
    account_id: str | None = None,
    limit: int = 500,
) -> list[SecretView]:
    """Filters: type, name (substring, case-insensitive), environment, certificate expiry."""
    principal.require(Permission.SECRETS_READ)
    with db.read() as session:
        stmt = (
            select(Secret)
            .where(Secret.internal.is_(False))
            .order_by(Secret.name, Secret.id)
            .options(selectinload(Secret.values))
            .limit(limit)
        )
        if principal.account_id is not None or account_id is not None:
            stmt = stmt.where(Secret.namespace == _namespace(session, principal, account_id))
        if secret_type is not None:
            stmt = stmt.where(Secret.secret_type == _secret_type(secret_type).value)
        if name:
            stmt = stmt.where(func.lower(Secret.name).contains(name.lower(), autoescape=True))
        current = SecretValue.secret_id == Secret.id, SecretValue.current.is_(True)
        if environment is not None:
            check_environment(environment)
            stmt = stmt.where(exists().where(*current, SecretValue.environment == environment))
        if expiring_within_days is not None:
            if not 0 <= expiring_within_days <= 36500:
                raise InvalidArgument(
                    f"expected expiring_within_days between 0 and 36500; found "
                    f"{expiring_within_days}"
                )
            cutoff = now + timedelta(days=expiring_within_days)
            stmt = stmt.where(exists().where(*current, SecretValue.valid_until <= cutoff))
        return [_view(s, now) for s in session.execute(stmt).scalars()]


def reveal_secret(
    db: Database,
    source: KeySource,
    principal: Principal,
    ref: str,
    environment: str,
    *,
    purpose: str,
    now: datetime,
    account_id: str | None = None,
    internal: bool = False,
) -> RevealedSecret:
    """Decrypt one environment's value for a data plane. Audited; never a fallback environment."""
    check_environment(environment)
    with db.write() as session:
        secret = _find(session, principal, ref, account_id=account_id, internal=internal)
        value = next((v for v in secret.values if v.environment == environment and v.current), None)
        if value is None or value.ciphertext is None or value.wrapped_key is None:
            raise EnvironmentValueMissing(
                f"expected secret {secret.name!r} to have a {environment!r} value; it has "
                f"{', '.join(_current_envs(secret)) or 'none'}",
            )
        assert value.key_version is not None
        plaintext = open_sealed(
            Sealed(
                ciphertext=value.ciphertext,
                wrapped_key=value.wrapped_key,
                key_version=value.key_version,
            ),
            binding=binding_of(value, secret.secret_type),
            keyring=active_keyring(session, source, value.key_version),
        )
        record(
            session,
            principal=principal,
            action="secret.access",
            account_id=secret.account_id,
            resource_type="secret",
            resource_id=secret.id,
            environment=environment,
            details={"name": secret.name, "version": value.version, "purpose": purpose},
            now=now,
        )
        kind = SecretType(secret.secret_type)
        return RevealedSecret(
            secret_id=secret.id,
            name=secret.name,
            secret_type=kind,
            environment=environment,
            version=value.version,
            fields=reveal(kind, plaintext),
        )
