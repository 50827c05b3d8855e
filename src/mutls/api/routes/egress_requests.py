"""The egress request log (issue 6 item 6, seed 002's ``route_request_log``), newest first.

``egress:read`` (admins, auditors). Each row names the route, environment, app token, the
certificate used (secret, version, fingerprint, serial), TLS version and cipher, whether the
OAuth2 token came from the cache, the partner's status and the latency; never a secret.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.routing.egress_log import MAX_LIMIT, EgressRequestQuery, list_egress_requests

__all__ = ["router"]

router = APIRouter(
    prefix="/admin/egress-requests",
    tags=["egress routes"],
    responses=documented(401, 403, 422, 503),
)
Reader = Annotated[Principal, requires(Permission.EGRESS_READ)]
Filter = Annotated[str | None, Query(max_length=128)]


class EgressRequestPage(BaseModel):
    requests: list[dict[str, Any]]


@router.get("", response_model=EgressRequestPage)
def list_requests(
    *,
    request: Request,
    principal: Reader,
    route: Filter = None,
    environment: Filter = None,
    code: Filter = None,
    status: Annotated[int | None, Query(ge=100, le=599)] = None,
    since: Annotated[AwareDatetime | None, Query(description="from this time (inclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> EgressRequestPage:
    """Requests through the egress proxy, newest first. An account-scoped token sees its own
    account's requests only."""
    platform = platform_of(request)
    rows = list_egress_requests(
        platform.db,
        principal,
        EgressRequestQuery(
            route=route,
            environment=environment,
            status=status,
            code=code,
            since=since,
            limit=limit,
        ),
    )
    return EgressRequestPage(requests=rows)
