"""Gateway routes and how a request finds its route: pure values and one matching function.

A route says where requests for a host, a path prefix and (optionally) an API version go, and what
the caller must show to get there: a client certificate (``required``, ``optional`` or ``off``, so
one host name can mix mTLS and plain paths), which accounts may use it, and whether an
``Authorization`` header must come too (seed 003 sends Basic credentials over mTLS).

The API version is read from the path segment right after the prefix (``/api`` + ``v2`` matches
``/api/v2/...``), or from a request header when the route names one (``Api-Version: v2``).

Matching picks the most specific route: an exact host beats a wildcard host (the one with more
labels first) beats any host; then the longest prefix; then a route with a version beats one
without. Prefixes match whole segments: ``/api`` matches ``/api`` and ``/api/x``, never ``/apix``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "AuthorizationScheme",
    "MtlsMode",
    "Route",
    "RouteTable",
    "Upstream",
]


class MtlsMode(enum.StrEnum):
    REQUIRED = "required"
    """No certificate, no entry (401 ``client_certificate_required``)."""
    OPTIONAL = "optional"
    """A certificate is checked if sent and its identity forwarded; without one, anonymous."""
    OFF = "off"
    """No certificate checks; a certificate that is sent is ignored."""


class AuthorizationScheme(enum.StrEnum):
    NONE = "none"
    BASIC = "basic"
    BEARER = "bearer"
    ANY = "any"
    """Basic or Bearer."""

    def accepts(self, header: str | None) -> bool:
        if self is AuthorizationScheme.NONE:
            return True
        if not header:
            return False
        scheme, _, credentials = header.strip().partition(" ")
        if not credentials.strip():
            return False
        scheme = scheme.lower()
        if self is AuthorizationScheme.ANY:
            return scheme in {"basic", "bearer"}
        return scheme == self.value


@dataclass(frozen=True, kw_only=True, slots=True)
class Upstream:
    """Where a route's requests go: plain HTTP/1.1 to host:port (checked by the routes service)."""

    host: str
    port: int

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    id: str
    name: str
    upstream: Upstream
    host: str | None = None
    """Exact host name, ``*.example.com`` (one or more labels), or None for any host."""
    path_prefix: str = "/"
    api_version: str | None = None
    version_header: str | None = None
    """Lower-case header name to read the version from; None: the path segment after the prefix."""
    mtls: MtlsMode = MtlsMode.REQUIRED
    allowed_accounts: frozenset[str] = field(default_factory=frozenset)
    """Account ids that may use the route; empty: every account whose mTLS is enabled."""
    authorization: AuthorizationScheme = AuthorizationScheme.NONE

    @property
    def label(self) -> str:
        """How a denial names the route: ``payments`` or ``payments (API version v2)``."""
        if self.api_version:
            return f"{self.name} (API version {self.api_version})"
        return self.name

    def host_rank(self, host: str) -> int:
        """2 for an exact match, 1 for a wildcard match, 0 for any host, -1 for no match."""
        if self.host is None:
            return 0
        if self.host.startswith("*."):
            return 1 if host.endswith(self.host[1:]) and len(host) > len(self.host) - 1 else -1
        return 2 if host == self.host else -1

    def path_rest(self, path: str) -> str | None:
        """The path after the prefix (``/``-led or empty), or None if it does not match."""
        prefix = self.path_prefix
        if prefix == "/":
            return path
        if not path.startswith(prefix):
            return None
        rest = path[len(prefix) :]
        if rest and rest[0] != "/":
            return None
        return rest

    def version_of(self, rest: str, header: Callable[[str], str | None]) -> str | None:
        if self.version_header is not None:
            value = header(self.version_header)
            return value.strip() if value else None
        segment = rest.lstrip("/").split("/", 1)[0]
        return segment or None


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Routes in match order (most specific first). Immutable; a change builds a new table."""

    routes: tuple[Route, ...]

    @classmethod
    def of(cls, routes: Sequence[Route]) -> RouteTable:
        def specificity(route: Route) -> tuple[int, int, int, int, str]:
            host_rank = 0 if route.host is None else (1 if route.host.startswith("*.") else 2)
            labels = route.host.count(".") if route.host else 0  # *.b.example.com first
            return (
                -host_rank,
                -labels,
                -len(route.path_prefix),
                0 if route.api_version else 1,
                route.name,
            )

        return cls(tuple(sorted(routes, key=specificity)))

    def match(self, host: str, path: str, header: Callable[[str], str | None]) -> Route | None:
        """The most specific route for ``host`` (lower case, no port) and ``path`` (no query).

        The table is sorted by specificity, so the first route that matches is the answer."""
        for route in self.routes:
            if route.host_rank(host) < 0:
                continue
            rest = route.path_rest(path)
            if rest is None:
                continue
            if (
                route.api_version is not None
                and route.version_of(rest, header) != route.api_version
            ):
                continue
            return route
        return None
