"""The egress proxy's routes (issue 6 item 2): where an app's plain request goes, and how.

``egress:read`` (admins, auditors) reads; ``egress:write`` (admins) changes. Routes live beside
their owner's secrets: an account-scoped token sees and changes its own account's routes only
(another account's answers 404 like a route that does not exist); a platform-wide token sees
every route and names an account with ``account_id`` (in the body to create, in the query to
find a route by name there). See docs/egress-routes.md.

``PUT`` and ``PATCH`` are the same partial update: ``PUT`` as on ``/admin/routes``, ``PATCH``
because that is what a partial update is called everywhere else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.schemas import REF_PATTERN
from mutls.api.schemas_egress import (
    EgressRouteCreate,
    EgressRouteList,
    EgressRouteOut,
    EgressRouteUpdate,
    egress_route_out,
)
from mutls.routing.egress import (
    create_egress_route,
    delete_egress_route,
    get_egress_route,
    list_egress_routes,
    update_egress_route,
)

__all__ = ["router"]

router = APIRouter(
    prefix="/admin/egress-routes",
    tags=["egress routes"],
    responses=documented(401, 403, 422, 503),
)

RouteRef = Annotated[str, Path(pattern=REF_PATTERN, description="the route's id or name")]
AccountQuery = Annotated[
    str | None,
    Query(
        pattern=REF_PATTERN,
        description="the owner account (id or name), for platform-wide tokens: only its routes, "
        "or the route of that name there",
    ),
]
Reader = Annotated[Principal, requires(Permission.EGRESS_READ)]
Writer = Annotated[Principal, requires(Permission.EGRESS_WRITE)]

_UPDATE_DOC = """Change the fields given, keep the rest. Optional fields given as null are
cleared; a dict or list given (`headers`, `environments`, `allowed_tokens`) replaces the old
one. The result is validated like a new route; a change of nothing writes nothing."""


@router.post(
    "", status_code=201, response_model=EgressRouteOut, responses=documented(404, 409, 413)
)
def add_route(body: EgressRouteCreate, request: Request, principal: Writer) -> EgressRouteOut:
    """Add a route. A secret that is not the owner's is 404 `secret_not_found`, one of the
    wrong type 422 `invalid_argument`; `tls_reject_unauthorized: false` at the top level or for
    production is 422 `insecure_tls_refused`; a name in use is 409 `name_taken`."""
    platform = platform_of(request)
    view = create_egress_route(
        platform.db, principal, body.to_spec(), account_id=body.account_id, now=platform.clock()
    )
    return egress_route_out(view)


@router.get("", response_model=EgressRouteList, responses=documented(404))
def list_all(
    request: Request, principal: Reader, account_id: AccountQuery = None
) -> EgressRouteList:
    """The routes the caller may see, by name."""
    views = list_egress_routes(platform_of(request).db, principal, account_id=account_id)
    return EgressRouteList(egress_routes=[egress_route_out(v) for v in views])


@router.get("/{ref}", response_model=EgressRouteOut, responses=documented(404))
def show(
    ref: RouteRef, request: Request, principal: Reader, account_id: AccountQuery = None
) -> EgressRouteOut:
    """One route by id or name; unknown (or another account's) is 404 `route_not_found`."""
    view = get_egress_route(platform_of(request).db, principal, ref, account_id=account_id)
    return egress_route_out(view)


def _update(
    ref: str,
    body: EgressRouteUpdate,
    request: Request,
    principal: Principal,
    account_id: str | None,
) -> EgressRouteOut:
    platform = platform_of(request)
    view = update_egress_route(
        platform.db,
        principal,
        ref,
        now=platform.clock(),
        account_id=account_id,
        **body.changes(),
    )
    return egress_route_out(view)


@router.put(
    "/{ref}",
    response_model=EgressRouteOut,
    responses=documented(404, 409, 413),
    description=_UPDATE_DOC,
)
def update(
    ref: RouteRef,
    body: EgressRouteUpdate,
    request: Request,
    principal: Writer,
    account_id: AccountQuery = None,
) -> EgressRouteOut:
    return _update(ref, body, request, principal, account_id)


@router.patch(
    "/{ref}",
    response_model=EgressRouteOut,
    responses=documented(404, 409, 413),
    description=_UPDATE_DOC,
)
def patch(
    ref: RouteRef,
    body: EgressRouteUpdate,
    request: Request,
    principal: Writer,
    account_id: AccountQuery = None,
) -> EgressRouteOut:
    return _update(ref, body, request, principal, account_id)


@router.delete("/{ref}", status_code=204, response_class=Response, responses=documented(404))
def remove(
    ref: RouteRef, request: Request, principal: Writer, account_id: AccountQuery = None
) -> Response:
    """Delete the route: apps calling it get `route_not_found` within the proxy's poll
    interval."""
    platform = platform_of(request)
    delete_egress_route(platform.db, principal, ref, now=platform.clock(), account_id=account_id)
    return Response(status_code=204)
