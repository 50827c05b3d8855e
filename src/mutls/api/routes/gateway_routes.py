"""The gateway's routes (issue 5 item 2): which requests go to which upstream, and who may call.

Every endpoint needs a platform-wide token: a route names an internal upstream address and every
account allowed on it. ``routes:read`` (admins, auditors) reads; ``routes:write`` (admins)
changes. See docs/gateway-routes.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.schemas import REF_PATTERN
from mutls.api.schemas_routes import RouteCreate, RouteList, RouteOut, RouteUpdate, route_out
from mutls.routing.service import (
    create_route,
    delete_route,
    get_route,
    list_routes,
    update_route,
)

__all__ = ["router"]

router = APIRouter(
    prefix="/admin/routes", tags=["gateway routes"], responses=documented(401, 403, 422, 503)
)

RouteRef = Annotated[str, Path(pattern=REF_PATTERN, description="the route's id or name")]
Reader = Annotated[Principal, requires(Permission.ROUTES_READ, platform_wide=True)]
Writer = Annotated[Principal, requires(Permission.ROUTES_WRITE, platform_wide=True)]


@router.post("", status_code=201, response_model=RouteOut, responses=documented(404, 409, 413))
def add_route(body: RouteCreate, request: Request, principal: Writer) -> RouteOut:
    """Add a route. An unknown account in `allowed_accounts` is 404 `account_not_found`; a name
    in use, or a route matching the same host, prefix and version, is 409 `name_taken`."""
    platform = platform_of(request)
    view = create_route(
        platform.db,
        principal,
        now=platform.clock(),
        name=body.name,
        upstream_url=body.upstream_url,
        host=body.host,
        path_prefix=body.path_prefix,
        api_version=body.api_version,
        version_header=body.version_header,
        mtls=body.mtls,
        allowed_accounts=body.allowed_accounts,
        authorization=body.authorization,
        description=body.description,
    )
    return route_out(view)


@router.get("", response_model=RouteList)
def list_all(request: Request, principal: Reader) -> RouteList:
    """Every route, in the order the gateway tries them (most specific first)."""
    return RouteList(routes=[route_out(v) for v in list_routes(platform_of(request).db, principal)])


@router.get("/{ref}", response_model=RouteOut, responses=documented(404))
def show(ref: RouteRef, request: Request, principal: Reader) -> RouteOut:
    """One route by id or name; unknown is 404 `route_not_found`."""
    return route_out(get_route(platform_of(request).db, principal, ref))


@router.put("/{ref}", response_model=RouteOut, responses=documented(404, 409, 413))
def update(ref: RouteRef, body: RouteUpdate, request: Request, principal: Writer) -> RouteOut:
    """Change the fields given, keep the rest (`host`, `api_version`, `version_header` given as
    null are cleared; a list given replaces the old one). The result is validated like a new
    route."""
    platform = platform_of(request)
    view = update_route(platform.db, principal, ref, now=platform.clock(), **body.changes())
    return route_out(view)


@router.delete("/{ref}", status_code=204, response_class=Response, responses=documented(404))
def remove(ref: RouteRef, request: Request, principal: Writer) -> Response:
    """Delete the route: the gateway stops sending anything there."""
    platform = platform_of(request)
    delete_route(platform.db, principal, ref, now=platform.clock())
    return Response(status_code=204)
