"""Reading the egress request log (seed 002's ``route_request_log``): newest first, filtered.

``egress:read`` (admins, auditors) reads it; an account-scoped token sees its own account's
requests only. The rows hold no secret: no key, passphrase, token, header value, body or query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.errors import InvalidArgument
from mutls.store.database import Database
from mutls.store.models import EgressRequest

__all__ = ["MAX_LIMIT", "EgressRequestQuery", "list_egress_requests", "request_to_dict"]

MAX_LIMIT = 1000


@dataclass(frozen=True, kw_only=True)
class EgressRequestQuery:
    route: str | None = None
    """A route's name or id."""
    environment: str | None = None
    status: int | None = None
    code: str | None = None
    since: datetime | None = None
    limit: int = 50


def request_to_dict(row: EgressRequest) -> dict[str, object]:
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "route": row.route_name,
        "route_id": row.route_id,
        "environment": row.environment,
        "token_id": row.token_id,
        "client_ip": row.client_ip,
        "method": row.method,
        "path": row.path,
        "status": row.status,
        "code": row.code,
        "upstream_status": row.upstream_status,
        "certificate_used": {
            "secret_id": row.certificate_secret_id,
            "version": row.certificate_version,
            "fingerprint_sha256": row.certificate_fingerprint,
            "serial": row.certificate_serial,
        }
        if row.certificate_secret_id
        else None,
        "oauth2_secret_id": row.oauth2_secret_id,
        "oauth2_token": row.oauth2_token,
        "tls_version": row.tls_version,
        "tls_cipher": row.tls_cipher,
        "connection_reused": row.connection_reused,
        "latency_ms": row.latency_ms,
        "bytes_sent": row.bytes_sent,
        "bytes_received": row.bytes_received,
    }


def list_egress_requests(
    db: Database, principal: Principal, query: EgressRequestQuery
) -> list[dict[str, object]]:
    """The newest requests first, at most ``query.limit``."""
    principal.require(Permission.EGRESS_READ)
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InvalidArgument(f"expected limit between 1 and {MAX_LIMIT}; found {query.limit}")
    stmt = select(EgressRequest).order_by(EgressRequest.id.desc()).limit(query.limit)
    if principal.account_id is not None:
        stmt = stmt.where(EgressRequest.namespace == principal.account_id)
    if query.route is not None:
        stmt = stmt.where(
            (EgressRequest.route_name == query.route) | (EgressRequest.route_id == query.route)
        )
    if query.environment is not None:
        stmt = stmt.where(EgressRequest.environment == query.environment)
    if query.status is not None:
        stmt = stmt.where(EgressRequest.status == query.status)
    if query.code is not None:
        stmt = stmt.where(EgressRequest.code == query.code)
    if query.since is not None:
        stmt = stmt.where(EgressRequest.at >= query.since)
    with db.read() as session:
        return [request_to_dict(row) for row in session.execute(stmt).scalars()]
