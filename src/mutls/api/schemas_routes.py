"""Request and response models of the gateway's routes (issue 5 item 2). Kept apart from
``schemas.py`` so the slices of issue 5 grow without stepping on each other.

The models only bound sizes and refuse control characters; what a host, path prefix, version
header or upstream URL must look like is checked by ``mutls.routing``, whose messages say what
was expected and what was found (422 ``invalid_argument``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from mutls.api.schemas import Line, Multiline, Request
from mutls.policy.routing import AuthorizationScheme, MtlsMode
from mutls.routing.service import RouteView

__all__ = ["RouteCreate", "RouteList", "RouteOut", "RouteUpdate", "route_out"]

_HOST = (
    "exact host name (api.example.com), wildcard (*.example.com: one or more labels in front), "
    "or IP address; null: any host"
)
_PREFIX = "path prefix, matched by whole segments: /api matches /api and /api/x, never /apix"
_VERSION = "API version the request must carry; null: any (or none)"
_HEADER = (
    "header the version is read from (lower-cased), like api-version; null: the path segment "
    "right after the prefix (/api + v2 matches /api/v2/...). Only with api_version"
)
_UPSTREAM = "where matching requests go: http://host:port (port 80 if left out); no path"
_MTLS = (
    "required: no client certificate, no entry; optional: checked if sent; off: no certificate "
    "checks"
)
_ACCOUNTS = (
    "account ids or names that may use the route (stored as ids); empty: every account whose "
    "mTLS is enabled"
)
_AUTHORIZATION = (
    "an Authorization header the request must carry besides the certificate: none, basic, "
    "bearer or any (basic or bearer)"
)


class RouteCreate(Request):
    name: Line = Field(description="unique slug, like payments-v2", max_length=64)
    upstream_url: Line = Field(description=_UPSTREAM, max_length=512)
    host: Line | None = Field(default=None, description=_HOST, max_length=253)
    path_prefix: Line = Field(default="/", description=_PREFIX, max_length=512)
    api_version: Line | None = Field(default=None, description=_VERSION, max_length=64)
    version_header: Line | None = Field(default=None, description=_HEADER, max_length=64)
    mtls: MtlsMode = Field(default=MtlsMode.REQUIRED, description=_MTLS)
    allowed_accounts: list[Line] = Field(
        default_factory=list, max_length=256, description=_ACCOUNTS
    )
    authorization: AuthorizationScheme = Field(
        default=AuthorizationScheme.NONE, description=_AUTHORIZATION
    )
    description: Multiline = Field(default="", description="for people; shown in lists")


class RouteUpdate(Request):
    """Partial: fields left out keep their value; host, api_version and version_header given as
    null are cleared. The result is validated as a whole, like a new route."""

    name: Line | None = Field(default=None, description="a new unique slug", max_length=64)
    upstream_url: Line | None = Field(default=None, description=_UPSTREAM, max_length=512)
    host: Line | None = Field(default=None, description=_HOST, max_length=253)
    path_prefix: Line | None = Field(default=None, description=_PREFIX, max_length=512)
    api_version: Line | None = Field(default=None, description=_VERSION, max_length=64)
    version_header: Line | None = Field(default=None, description=_HEADER, max_length=64)
    mtls: MtlsMode | None = Field(default=None, description=_MTLS)
    allowed_accounts: list[Line] | None = Field(
        default=None, max_length=256, description=_ACCOUNTS + "; a list given replaces the old one"
    )
    authorization: AuthorizationScheme | None = Field(default=None, description=_AUTHORIZATION)
    description: Multiline | None = Field(default=None, description="for people")

    def changes(self) -> dict[str, object]:
        """The fields the request named, with their values (None for a cleared field)."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class RouteOut(BaseModel):
    id: str
    name: str
    host: str | None = Field(description=_HOST)
    path_prefix: str
    api_version: str | None
    version_header: str | None
    upstream_url: str = Field(description="canonical: http://host:port")
    mtls: MtlsMode
    allowed_accounts: list[str] = Field(description="account ids; empty: any mTLS account")
    authorization: AuthorizationScheme
    description: str
    created_at: datetime
    created_by: str
    updated_at: datetime


class RouteList(BaseModel):
    routes: list[RouteOut] = Field(
        description="in the order the gateway tries them: most specific first"
    )


def route_out(view: RouteView) -> RouteOut:
    return RouteOut(
        id=view.id,
        name=view.name,
        host=view.host,
        path_prefix=view.path_prefix,
        api_version=view.api_version,
        version_header=view.version_header,
        upstream_url=view.upstream_url,
        mtls=view.mtls,
        allowed_accounts=list(view.allowed_accounts),
        authorization=view.authorization,
        description=view.description,
        created_at=view.created_at,
        created_by=view.created_by,
        updated_at=view.updated_at,
    )
