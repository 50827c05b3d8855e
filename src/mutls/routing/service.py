"""Gateway routes in the store: create, list, show, update, delete, and the gateway's loader.

Each change is one transaction with its audit record (``route.create``, ``route.update``,
``route.delete``), so a route never changes without a row saying who changed what.

Decisions, and why:

- **Platform-wide tokens only, for reading too.** A route names the internal address of the
  service behind the gateway and every account allowed on it; an account-scoped token never sees
  another account, so it sees no routes. ``routes:write`` changes them, ``routes:read`` (admins
  and auditors) reads them.
- **Updates are partial.** Fields left out keep their value; a nullable field given as None is
  cleared. The result is validated as a whole, as a new route would be, so clearing
  ``api_version`` while a ``version_header`` remains is refused. An update that changes nothing
  writes nothing (no audit row, ``updated_at`` kept).
- **No two routes match the same requests.** Two routes with the same host, path prefix, API
  version and version header would make the gateway's choice depend on their names; the second
  one is refused (``name_taken``, naming the route it clashes with). The store backs this with a
  unique ``match_key``, so two concurrent creates cannot both succeed.
- **Accounts are given by id or name and stored as ids**, so renaming an account keeps its
  routes; an unknown one is ``account_not_found``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.audit.log import record
from mutls.errors import (
    AccountNotFound,
    InvalidArgument,
    NameTaken,
    PermissionDenied,
    RouteNotFound,
)
from mutls.policy.routing import AuthorizationScheme, MtlsMode, RouteTable
from mutls.policy.routing import Route as PolicyRoute
from mutls.routing.fields import RouteSpec, match_key, parse_upstream, validate_spec
from mutls.store.database import Database
from mutls.store.ids import new_id
from mutls.store.models import Account
from mutls.store.models import Route as RouteRow

if TYPE_CHECKING:
    from sqlalchemy import Table

__all__ = [
    "EDITABLE_FIELDS",
    "RouteView",
    "create_route",
    "delete_route",
    "get_route",
    "list_routes",
    "load_route_table",
    "update_route",
]

EDITABLE_FIELDS = tuple(f.name for f in dataclasses.fields(RouteSpec))
_table = cast("Table", RouteRow.__table__)
_NOT_FOUND_HINT = "list the gateway's routes with `GET /admin/routes` or `mutls route list`"


@dataclass(frozen=True, kw_only=True)
class RouteView:
    """One route as the admin API shows it (all public facts; routes hold no secrets)."""

    id: str
    name: str
    host: str | None
    path_prefix: str
    api_version: str | None
    version_header: str | None
    upstream_url: str
    mtls: MtlsMode
    allowed_accounts: tuple[str, ...]
    authorization: AuthorizationScheme
    description: str
    created_at: datetime
    created_by: str
    updated_at: datetime

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> RouteView:
        return cls(
            id=row["id"],
            name=row["name"],
            host=row["host"],
            path_prefix=row["path_prefix"],
            api_version=row["api_version"],
            version_header=row["version_header"],
            upstream_url=row["upstream_url"],
            mtls=MtlsMode(row["mtls"]),
            allowed_accounts=tuple(row["allowed_accounts"] or ()),
            authorization=AuthorizationScheme(row["authorization"]),
            description=row["description"],
            created_at=row["created_at"],
            created_by=row["created_by"],
            updated_at=row["updated_at"],
        )

    @classmethod
    def of(cls, row: RouteRow) -> RouteView:
        return cls.from_mapping({c.name: getattr(row, c.key) for c in _table.columns})

    def spec(self) -> RouteSpec:
        """The editable fields, as an update starts from."""
        return RouteSpec(**{name: getattr(self, name) for name in EDITABLE_FIELDS})

    def to_policy(self) -> PolicyRoute:
        """The value the gateway matches and authorizes with."""
        return PolicyRoute(
            id=self.id,
            name=self.name,
            upstream=parse_upstream(self.upstream_url),
            host=self.host,
            path_prefix=self.path_prefix,
            api_version=self.api_version,
            version_header=self.version_header.lower() if self.version_header else None,
            mtls=MtlsMode(self.mtls),
            allowed_accounts=frozenset(self.allowed_accounts),
            authorization=AuthorizationScheme(self.authorization),
        )

    def to_dict(self) -> dict[str, object]:
        """The editable fields as plain JSON values (for the audit log)."""
        return {
            name: (list(value) if isinstance(value, tuple) else value)
            for name in EDITABLE_FIELDS
            for value in (getattr(self, name),)
        }


# --- checks ---------------------------------------------------------------------------------


def _require(principal: Principal, permission: Permission, what: str) -> None:
    principal.require(permission)
    if principal.account_id is not None:
        raise PermissionDenied(
            f"expected a platform-wide token to {what}; this token is scoped to account "
            f"{principal.account_id}",
            hint="routes belong to the platform and name every account allowed on them; ask "
            "the platform's admin",
        )


def _find(session: Session, ref: str) -> RouteRow:
    row = session.execute(
        select(RouteRow).where(or_(RouteRow.id == ref, RouteRow.name == ref))
    ).scalar()
    if row is None:
        raise RouteNotFound(
            f"expected a gateway route with id or name {ref[:80]!r}; there is none",
            hint=_NOT_FOUND_HINT,
        )
    return row


def _resolve_accounts(session: Session, refs: Sequence[str]) -> list[str]:
    """Account ids for ids or names, sorted and unique; ``account_not_found`` names the first
    unknown one."""
    if not refs:
        return []
    found = session.execute(
        select(Account.id, Account.name).where(or_(Account.id.in_(refs), Account.name.in_(refs)))
    ).all()
    by_ref = {**{name: id_ for id_, name in found}, **{id_: id_ for id_, _ in found}}
    for ref in refs:
        if ref not in by_ref:
            raise AccountNotFound(
                f"expected an account with id or name {ref[:80]!r} in allowed_accounts; "
                "there is none"
            )
    return sorted({by_ref[ref] for ref in refs})


def _describe_match(spec: RouteSpec) -> str:
    parts = [f"host {spec.host}" if spec.host else "any host", f"path prefix {spec.path_prefix}"]
    if spec.api_version is not None:
        where = f"header {spec.version_header}" if spec.version_header else "the path"
        parts.append(f"API version {spec.api_version} (from {where})")
    return ", ".join(parts)


def _check_clashes(session: Session, spec: RouteSpec, key: str, exclude: str | None) -> None:
    others = select(RouteRow.id, RouteRow.name)
    if exclude is not None:
        others = others.where(RouteRow.id != exclude)
    if session.execute(others.where(RouteRow.name == spec.name)).first():
        raise NameTaken(
            f"expected a new route name; route {spec.name!r} already exists",
            hint="choose another name, or update the existing route with "
            "`PUT /admin/routes/{name}` or `mutls route update`",
        )
    clash = session.execute(others.where(RouteRow.match_key == key)).first()
    if clash is not None:
        raise NameTaken(
            f"expected a route that matches requests no other route matches; route "
            f"{clash.name!r} ({clash.id}) already matches {_describe_match(spec)}",
            hint=f"change the host, path prefix, API version or version header, or update "
            f"route {clash.name!r} instead",
        )


def _race(name: str) -> NameTaken:
    return NameTaken(
        f"expected a new route name and match; route {name!r} or another route with the same "
        "host, path prefix and API version was saved at the same time",
        hint="list the routes with `mutls route list` and try again",
    )


def _apply(row: RouteRow, spec: RouteSpec, accounts: list[str]) -> None:
    row.name = spec.name
    row.host = spec.host
    row.path_prefix = spec.path_prefix
    row.api_version = spec.api_version
    row.version_header = spec.version_header
    row.match_key = match_key(spec.host, spec.path_prefix, spec.api_version, spec.version_header)
    row.upstream_url = spec.upstream_url
    row.mtls = MtlsMode(spec.mtls).value
    row.allowed_accounts = accounts
    row.authorization = AuthorizationScheme(spec.authorization).value
    row.description = spec.description


# --- operations -----------------------------------------------------------------------------


def create_route(
    db: Database,
    principal: Principal,
    *,
    now: datetime,
    name: str,
    upstream_url: str,
    host: str | None = None,
    path_prefix: str = "/",
    api_version: str | None = None,
    version_header: str | None = None,
    mtls: MtlsMode | str = MtlsMode.REQUIRED,
    allowed_accounts: Sequence[str] = (),
    authorization: AuthorizationScheme | str = AuthorizationScheme.NONE,
    description: str = "",
) -> RouteView:
    """Add a route; platform-wide ``routes:write`` only. Audited as ``route.create``."""
    _require(principal, Permission.ROUTES_WRITE, "create gateway routes")
    spec = validate_spec(
        RouteSpec(
            name=name,
            upstream_url=upstream_url,
            host=host,
            path_prefix=path_prefix,
            api_version=api_version,
            version_header=version_header,
            mtls=mtls,
            allowed_accounts=tuple(allowed_accounts),
            authorization=authorization,
            description=description,
        )
    )
    key = match_key(spec.host, spec.path_prefix, spec.api_version, spec.version_header)
    try:
        with db.write() as session:
            accounts = _resolve_accounts(session, spec.allowed_accounts)
            _check_clashes(session, spec, key, exclude=None)
            row = RouteRow(
                id=new_id("rte"), created_at=now, created_by=principal.actor, updated_at=now
            )
            _apply(row, spec, accounts)
            session.add(row)
            session.flush()
            view = RouteView.of(row)
            record(
                session,
                principal=principal,
                action="route.create",
                resource_type="gateway_route",
                resource_id=row.id,
                details=view.to_dict(),
                now=now,
            )
            return view
    except IntegrityError:
        raise _race(spec.name) from None


def list_routes(db: Database, principal: Principal) -> list[RouteView]:
    """Every route, in the order the gateway tries them (most specific first)."""
    _require(principal, Permission.ROUTES_READ, "read gateway routes")
    with db.read() as session:
        views = [RouteView.of(row) for row in session.execute(select(RouteRow)).scalars()]
    order = {
        route.id: i for i, route in enumerate(RouteTable.of([v.to_policy() for v in views]).routes)
    }
    return sorted(views, key=lambda v: order[v.id])


def get_route(db: Database, principal: Principal, ref: str) -> RouteView:
    """One route by id or name."""
    _require(principal, Permission.ROUTES_READ, "read gateway routes")
    with db.read() as session:
        return RouteView.of(_find(session, ref))


def update_route(
    db: Database, principal: Principal, ref: str, *, now: datetime, **changes: Any
) -> RouteView:
    """Change the fields given (any of :data:`EDITABLE_FIELDS`), keep the rest; None clears a
    nullable field. Audited as ``route.update`` with each changed field's before and after."""
    _require(principal, Permission.ROUTES_WRITE, "change gateway routes")
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"expected fields among {', '.join(EDITABLE_FIELDS)}; found {', '.join(unknown)}"
        )
    if "allowed_accounts" in changes:
        changes["allowed_accounts"] = tuple(changes["allowed_accounts"] or ())
    for required in ("name", "upstream_url", "path_prefix", "mtls", "authorization"):
        if required in changes and changes[required] is None:
            raise InvalidArgument(
                f"expected a value for {required}; found null",
                hint="leave the field out to keep its value",
            )
    if "description" in changes and changes["description"] is None:
        changes["description"] = ""
    try:
        with db.write() as session:
            row = _find(session, ref)
            before = RouteView.of(row)
            spec = validate_spec(dataclasses.replace(before.spec(), **changes))
            accounts = _resolve_accounts(session, spec.allowed_accounts)
            key = match_key(spec.host, spec.path_prefix, spec.api_version, spec.version_header)
            _check_clashes(session, spec, key, exclude=row.id)
            _apply(row, spec, accounts)
            after = RouteView.of(row)
            old, new = before.to_dict(), after.to_dict()
            changed = {k: {"before": old[k], "after": new[k]} for k in new if old[k] != new[k]}
            if not changed:
                return before
            row.updated_at = now
            session.flush()
            record(
                session,
                principal=principal,
                action="route.update",
                resource_type="gateway_route",
                resource_id=row.id,
                details={"name": row.name, "changed": changed},
                now=now,
            )
            return RouteView.of(row)
    except IntegrityError:
        raise _race(str(changes.get("name", ref))) from None


def delete_route(db: Database, principal: Principal, ref: str, *, now: datetime) -> None:
    """Remove a route by id or name: the gateway stops sending anything there. Audited as
    ``route.delete`` with the route as it was."""
    _require(principal, Permission.ROUTES_WRITE, "delete gateway routes")
    with db.write() as session:
        row = _find(session, ref)
        view = RouteView.of(row)
        session.delete(row)
        record(
            session,
            principal=principal,
            action="route.delete",
            resource_type="gateway_route",
            resource_id=view.id,
            details=view.to_dict(),
            now=now,
        )


# --- the gateway's loader -------------------------------------------------------------------


def load_route_table(session: Session | Connection) -> RouteTable:
    """Every stored route as a :class:`~mutls.policy.routing.RouteTable` (most specific first).

    Reads through the caller's session or connection (one query, no permission check: the
    gateway's snapshot loader is the platform itself). A row that no longer parses raises, so a
    reload fails and the gateway keeps its previous table.
    """
    rows = session.execute(select(_table)).mappings()
    return RouteTable.of([RouteView.from_mapping(row).to_policy() for row in rows])
