"""Egress routes in the store: create, list, show, update, delete.

Each change is one transaction with its audit record (``egress_route.create``, ``.update``,
``.delete``). Routes live in the namespace of their owner, like secrets: a platform route beside
the platform's secrets, an account's route beside that account's. An account-scoped token sees
and changes its own account's routes only; ``egress:write`` changes, ``egress:read`` reads.

Decisions, and why:

- **Secrets are resolved when the route is saved.** ``certificate_secret``, ``oauth2_secret`` and
  ``ca_bundle_secret`` may be given by name, id or ``{{secret:NAME}}`` and are stored as ids, so
  the route keeps working if nothing else changes; each must be a secret of the route's owner
  and of the right type (``secret_not_found`` / ``invalid_argument`` otherwise). Header templates
  keep secret *names* (they are text) and each name must exist as a string secret now.
- **Values per environment are not checked here.** A route is environment-agnostic; whether the
  sandbox has a value is decided per request (``environment_value_missing``), as seed 002 wants.
- **A secret a route uses cannot be deleted** (``resource_in_use``, in ``vault.secrets``).
- **Updates are partial** and validated as a whole; an update that changes nothing writes
  nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission, Role
from mutls.audit.log import record
from mutls.errors import (
    InvalidArgument,
    NameTaken,
    RouteNotFound,
    SecretNotFound,
    TokenNotFound,
)
from mutls.routing.egress_fields import (
    EgressRouteSpec,
    EnvironmentOverride,
    header_templates,
    validate_egress_spec,
)
from mutls.store.database import Database
from mutls.store.ids import new_id
from mutls.store.models import PLATFORM, ApiToken, EgressRoute, Secret
from mutls.tls.egress_context import EgressTlsPreset
from mutls.vault.payloads import SecretType
from mutls.vault.secrets import owner_namespace, secret_in_namespace

__all__ = [
    "EDITABLE_FIELDS",
    "EgressRouteView",
    "create_egress_route",
    "delete_egress_route",
    "get_egress_route",
    "list_egress_routes",
    "update_egress_route",
]

EDITABLE_FIELDS = tuple(f.name for f in dataclasses.fields(EgressRouteSpec))
_NOT_FOUND_HINT = "list egress routes with `GET /admin/egress-routes` or `mutls egress route list`"
_SECRET_FIELDS = {
    "certificate_secret": ("certificate_secret_id", (SecretType.CERTIFICATE,)),
    "oauth2_secret": ("oauth2_secret_id", (SecretType.OAUTH2,)),
    "ca_bundle_secret": ("ca_bundle_secret_id", (SecretType.STRING, SecretType.CERTIFICATE)),
}


@dataclass(frozen=True, kw_only=True)
class SecretLink:
    """A secret a route refers to: its id and (for people) its name and type."""

    id: str
    name: str
    secret_type: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "secret_type": self.secret_type}


@dataclass(frozen=True, kw_only=True)
class EgressRouteView:
    """One egress route as the admin API shows it. Routes hold no secret values."""

    id: str
    name: str
    account_id: str | None
    target_url: str
    certificate_secret: SecretLink | None
    oauth2_secret: SecretLink | None
    ca_bundle_secret: SecretLink | None
    oauth2_scopes: tuple[str, ...] | None
    headers: dict[str, str]
    tls_servername: str | None
    tls_preset: EgressTlsPreset
    tls_reject_unauthorized: bool
    environments: dict[str, EnvironmentOverride]
    allowed_tokens: tuple[str, ...]
    timeout_seconds: int | None
    description: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    warnings: tuple[dict[str, str], ...] = ()

    def spec(self) -> EgressRouteSpec:
        """The editable fields, as an update starts from (secrets by id)."""
        return EgressRouteSpec(
            name=self.name,
            target_url=self.target_url,
            certificate_secret=self.certificate_secret.id if self.certificate_secret else None,
            oauth2_secret=self.oauth2_secret.id if self.oauth2_secret else None,
            ca_bundle_secret=self.ca_bundle_secret.id if self.ca_bundle_secret else None,
            oauth2_scopes=self.oauth2_scopes,
            headers=dict(self.headers),
            tls_servername=self.tls_servername,
            tls_preset=self.tls_preset,
            tls_reject_unauthorized=self.tls_reject_unauthorized,
            environments=dict(self.environments),
            allowed_tokens=self.allowed_tokens,
            timeout_seconds=self.timeout_seconds,
            description=self.description,
        )

    def to_dict(self) -> dict[str, object]:
        """The editable fields as plain JSON values (for the audit log and comparisons)."""
        return {
            "name": self.name,
            "target_url": self.target_url,
            "certificate_secret": self.certificate_secret.id if self.certificate_secret else None,
            "oauth2_secret": self.oauth2_secret.id if self.oauth2_secret else None,
            "ca_bundle_secret": self.ca_bundle_secret.id if self.ca_bundle_secret else None,
            "oauth2_scopes": list(self.oauth2_scopes) if self.oauth2_scopes is not None else None,
            "headers": dict(self.headers),
            "tls_servername": self.tls_servername,
            "tls_preset": self.tls_preset.value,
            "tls_reject_unauthorized": self.tls_reject_unauthorized,
            "environments": {k: v.to_dict() for k, v in self.environments.items()},
            "allowed_tokens": list(self.allowed_tokens),
            "timeout_seconds": self.timeout_seconds,
            "description": self.description,
        }


# --- rows <-> views ---------------------------------------------------------------------------


def _link(session: Session, secret_id: str | None) -> SecretLink | None:
    if secret_id is None:
        return None
    secret = session.get(Secret, secret_id)
    if secret is None:  # deleted under a route: the service refuses that, but stay readable
        return SecretLink(id=secret_id, name="(deleted)", secret_type="unknown")
    return SecretLink(id=secret.id, name=secret.name, secret_type=secret.secret_type)


def _overrides(raw: Mapping[str, Any]) -> dict[str, EnvironmentOverride]:
    return {
        env: EnvironmentOverride(
            target_url=value.get("target_url"),
            tls_servername=value.get("tls_servername"),
            tls_reject_unauthorized=value.get("tls_reject_unauthorized"),
        )
        for env, value in sorted((raw or {}).items())
    }


def _warnings(row: EgressRoute, session: Session) -> tuple[dict[str, str], ...]:
    found: list[dict[str, str]] = []
    for env, value in sorted((row.environments or {}).items()):
        if value.get("tls_reject_unauthorized") is False:
            found.append(
                {
                    "code": "tls_verification_off",
                    "message": f"the partner's certificate is not verified in {env}: anyone on "
                    "the network path can impersonate the partner there",
                }
            )
    if row.oauth2_secret_id is not None:
        oauth2 = session.get(Secret, row.oauth2_secret_id)
        if oauth2 is not None:
            for value in oauth2.values:
                bound = value.meta.get("certificate_secret_id") if value.current else None
                if bound is not None and bound != row.certificate_secret_id:
                    found.append(
                        {
                            "code": "oauth2_certificate_differs",
                            "message": f"the oauth2 secret ({value.environment}) fetches "
                            "tokens with another certificate than the route presents; a "
                            "certificate-bound token (RFC 8705) will then be refused",
                        }
                    )
                    break
    return tuple(found)


def _view(session: Session, row: EgressRoute) -> EgressRouteView:
    return EgressRouteView(
        id=row.id,
        name=row.name,
        account_id=row.account_id,
        target_url=row.target_url,
        certificate_secret=_link(session, row.certificate_secret_id),
        oauth2_secret=_link(session, row.oauth2_secret_id),
        ca_bundle_secret=_link(session, row.ca_bundle_secret_id),
        oauth2_scopes=tuple(row.oauth2_scopes) if row.oauth2_scopes is not None else None,
        headers=dict(row.headers or {}),
        tls_servername=row.tls_servername,
        tls_preset=EgressTlsPreset(row.tls_preset),
        tls_reject_unauthorized=row.tls_reject_unauthorized,
        environments=_overrides(row.environments),
        allowed_tokens=tuple(row.allowed_tokens or ()),
        timeout_seconds=row.timeout_seconds,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        warnings=_warnings(row, session),
    )


# --- lookups ----------------------------------------------------------------------------------


def _find(session: Session, principal: Principal, ref: str, account_id: str | None) -> EgressRoute:
    missing = RouteNotFound(
        f"expected an egress route with id or name {ref[:80]!r}; there is none",
        hint=_NOT_FOUND_HINT,
    )
    row = session.get(EgressRoute, ref)
    if row is None:
        namespace = owner_namespace(session, principal, account_id)
        row = session.execute(
            select(EgressRoute).where(EgressRoute.namespace == namespace, EgressRoute.name == ref)
        ).scalar()
    if row is None or not principal.sees(row.account_id):
        raise missing
    return row


def _resolve_secret(
    session: Session, namespace: str, field_name: str, ref: str | None
) -> str | None:
    if ref is None:
        return None
    _, types = _SECRET_FIELDS[field_name]
    secret = secret_in_namespace(session, namespace, ref)
    if secret is None:
        raise SecretNotFound(
            f"expected {field_name} to name a secret of the route's owner; there is no secret "
            f"{ref[:80]!r} there",
            hint="create the secret first (`mutls secret create`), in the same account as the "
            "route",
        )
    if secret.secret_type not in {t.value for t in types}:
        wanted = " or ".join(t.value for t in types)
        raise InvalidArgument(
            f"expected {field_name} to be a {wanted} secret; {secret.name!r} is a "
            f"{secret.secret_type} secret"
        )
    return secret.id


def _check_header_secrets(session: Session, namespace: str, headers: Mapping[str, str]) -> None:
    for name, template in header_templates(headers).items():
        for secret_name in template.secrets:
            secret = secret_in_namespace(session, namespace, secret_name)
            if secret is None or secret.name != secret_name:
                raise SecretNotFound(
                    f"expected header {name} to use string secrets of the route's owner; there "
                    f"is no secret {secret_name!r} there",
                    hint="templates name secrets by name: {{secret:NAME}}",
                )
            if secret.secret_type != SecretType.STRING.value:
                raise InvalidArgument(
                    f"expected header {name} to use string secrets; {secret_name!r} is a "
                    f"{secret.secret_type} secret",
                    hint="the client certificate and OAuth2 credentials have their own fields",
                )


def _resolve_tokens(session: Session, namespace: str, refs: Sequence[str]) -> list[str]:
    """Ids of active app tokens of the route's owner, for ids or (unique) names."""
    account_id = None if namespace == PLATFORM else namespace
    ids: list[str] = []
    for ref in refs:
        rows = list(
            session.execute(
                select(ApiToken).where(
                    or_(ApiToken.id == ref, ApiToken.name == ref), ApiToken.revoked_at.is_(None)
                )
            ).scalars()
        )
        rows = [r for r in rows if r.account_id == account_id]
        if not rows:
            raise TokenNotFound(
                f"expected allowed_tokens to name active app tokens of the route's owner; "
                f"there is none with id or name {ref[:80]!r}",
                hint="list tokens with `mutls token list`; make one with "
                "`mutls token create --role app`",
            )
        if len(rows) > 1:
            raise InvalidArgument(
                f"expected the token name {ref[:80]!r} to be unique; {len(rows)} tokens have it",
                hint="give the token's id (tok_...) instead",
            )
        token = rows[0]
        if token.role != Role.APP.value:
            raise InvalidArgument(
                f"expected allowed_tokens to be app tokens; token {token.id} has role {token.role}",
                hint="the egress proxy accepts app tokens only; make one with "
                "`mutls token create --role app`",
            )
        if token.id not in ids:
            ids.append(token.id)
    return sorted(ids)


def _apply(session: Session, row: EgressRoute, spec: EgressRouteSpec, namespace: str) -> None:
    row.name = spec.name
    row.target_url = spec.target_url
    row.certificate_secret_id = _resolve_secret(
        session, namespace, "certificate_secret", spec.certificate_secret
    )
    row.oauth2_secret_id = _resolve_secret(session, namespace, "oauth2_secret", spec.oauth2_secret)
    row.ca_bundle_secret_id = _resolve_secret(
        session, namespace, "ca_bundle_secret", spec.ca_bundle_secret
    )
    _check_header_secrets(session, namespace, spec.headers)
    row.oauth2_scopes = list(spec.oauth2_scopes) if spec.oauth2_scopes is not None else None
    row.headers = dict(spec.headers)
    row.tls_servername = spec.tls_servername
    row.tls_preset = EgressTlsPreset(spec.tls_preset).value
    row.tls_reject_unauthorized = spec.tls_reject_unauthorized
    row.environments = {k: v.to_dict() for k, v in spec.environments.items()}
    row.allowed_tokens = _resolve_tokens(session, namespace, spec.allowed_tokens)
    row.timeout_seconds = spec.timeout_seconds
    row.description = spec.description


def _taken(name: str) -> NameTaken:
    return NameTaken(
        f"expected a new egress route name; route {name!r} already exists for this owner",
        hint="choose another name, or change the route with `PUT /admin/egress-routes/{name}` "
        "or `mutls egress route update`",
    )


# --- operations -------------------------------------------------------------------------------


def create_egress_route(
    db: Database,
    principal: Principal,
    spec: EgressRouteSpec,
    *,
    account_id: str | None = None,
    now: datetime,
) -> EgressRouteView:
    """Add a route for the caller's namespace (or ``account_id``'s, for platform-wide callers).
    Audited as ``egress_route.create``."""
    principal.require(Permission.EGRESS_WRITE)
    spec = validate_egress_spec(spec)
    try:
        with db.write() as session:
            namespace = owner_namespace(session, principal, account_id)
            clash = session.execute(
                select(EgressRoute.id).where(
                    EgressRoute.namespace == namespace, EgressRoute.name == spec.name
                )
            ).first()
            if clash is not None:
                raise _taken(spec.name)
            row = EgressRoute(
                id=new_id("egr"),
                namespace=namespace,
                account_id=None if namespace == PLATFORM else namespace,
                created_at=now,
                created_by=principal.actor,
                updated_at=now,
            )
            _apply(session, row, spec, namespace)
            session.add(row)
            session.flush()
            view = _view(session, row)
            record(
                session,
                principal=principal,
                action="egress_route.create",
                account_id=row.account_id,
                resource_type="egress_route",
                resource_id=row.id,
                details=view.to_dict(),
                now=now,
            )
            return view
    except IntegrityError:
        raise _taken(spec.name) from None


def list_egress_routes(
    db: Database, principal: Principal, *, account_id: str | None = None
) -> list[EgressRouteView]:
    """The routes the caller may see, by name (an account's only, when scoped or asked)."""
    principal.require(Permission.EGRESS_READ)
    with db.read() as session:
        stmt = select(EgressRoute).order_by(EgressRoute.name, EgressRoute.id)
        if principal.account_id is not None or account_id is not None:
            stmt = stmt.where(
                EgressRoute.namespace == owner_namespace(session, principal, account_id)
            )
        return [_view(session, row) for row in session.execute(stmt).scalars()]


def get_egress_route(
    db: Database, principal: Principal, ref: str, *, account_id: str | None = None
) -> EgressRouteView:
    principal.require(Permission.EGRESS_READ)
    with db.read() as session:
        return _view(session, _find(session, principal, ref, account_id))


def update_egress_route(
    db: Database,
    principal: Principal,
    ref: str,
    *,
    now: datetime,
    account_id: str | None = None,
    **changes: Any,
) -> EgressRouteView:
    """Change the fields given (any of :data:`EDITABLE_FIELDS`), keep the rest; None clears an
    optional field. Audited as ``egress_route.update`` with each changed field."""
    principal.require(Permission.EGRESS_WRITE)
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"expected fields among {', '.join(EDITABLE_FIELDS)}; found {', '.join(unknown)}"
        )
    for required in ("name", "target_url", "tls_preset", "tls_reject_unauthorized"):
        if required in changes and changes[required] is None:
            raise InvalidArgument(
                f"expected a value for {required}; found null",
                hint="leave the field out to keep its value",
            )
    for cleared, empty in (
        ("headers", {}),
        ("environments", {}),
        ("allowed_tokens", ()),
        ("description", ""),
    ):
        if cleared in changes and changes[cleared] is None:
            changes[cleared] = empty
    if "allowed_tokens" in changes:
        changes["allowed_tokens"] = tuple(changes["allowed_tokens"])
    if "oauth2_scopes" in changes and changes["oauth2_scopes"] is not None:
        changes["oauth2_scopes"] = tuple(changes["oauth2_scopes"])
    try:
        with db.write() as session:
            row = _find(session, principal, ref, account_id)
            before = _view(session, row)
            spec = validate_egress_spec(dataclasses.replace(before.spec(), **changes))
            if spec.name != row.name:
                clash = session.execute(
                    select(EgressRoute.id).where(
                        EgressRoute.namespace == row.namespace,
                        EgressRoute.name == spec.name,
                        EgressRoute.id != row.id,
                    )
                ).first()
                if clash is not None:
                    raise _taken(spec.name)
            _apply(session, row, spec, row.namespace)
            after = _view(session, row)
            old, new = before.to_dict(), after.to_dict()
            changed = {k: {"before": old[k], "after": new[k]} for k in new if old[k] != new[k]}
            if not changed:
                return before
            row.updated_at = now
            session.flush()
            record(
                session,
                principal=principal,
                action="egress_route.update",
                account_id=row.account_id,
                resource_type="egress_route",
                resource_id=row.id,
                details={"name": row.name, "changed": changed},
                now=now,
            )
            return _view(session, row)
    except IntegrityError:
        raise _taken(str(changes.get("name", ref))) from None


def delete_egress_route(
    db: Database,
    principal: Principal,
    ref: str,
    *,
    now: datetime,
    account_id: str | None = None,
) -> None:
    """Remove a route: apps calling it get ``route_not_found``. Audited with the route as it
    was."""
    principal.require(Permission.EGRESS_WRITE)
    with db.write() as session:
        row = _find(session, principal, ref, account_id)
        view = _view(session, row)
        session.delete(row)
        record(
            session,
            principal=principal,
            action="egress_route.delete",
            account_id=view.account_id,
            resource_type="egress_route",
            resource_id=view.id,
            details=view.to_dict(),
            now=now,
        )
