"""Who is calling: bearer-token authentication and per-route permission checks.

Every ``/admin`` route depends on ``requires(permission)``. The dependency reads
``Authorization: Bearer <token>``, lets ``accounts.service.authenticate`` turn it into a
``Principal`` (which also audits token use), checks the permission, and leaves the principal on
``request.state`` for the access log and the error handler.

Refusals are audited with outcome ``denied``: a failed authentication as ``token.use``, a refused
permission as ``request.authorize``. Failed authentication is anonymous, so its rows are throttled
per source address and refusal (``DenialThrottle``): otherwise anyone who can reach the port could
make the audit log grow at line rate. A missing header is a plain challenge (HTTP's normal first
step), not an attempt, and is not audited.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.accounts.service import authenticate, record_denied
from mutls.errors import AuthenticationRequired, InvalidToken, MutlsError, PermissionDenied
from mutls.runtime.platform import Platform

__all__ = [
    "DenialThrottle",
    "authenticated",
    "bearer_scheme",
    "note_permission_denied",
    "platform_of",
    "requires",
]

log = logging.getLogger("mutls.api")

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A mutls API token: `Authorization: Bearer mutls_...`. The first admin token "
    "is in `<data dir>/admin-token`; make more with `POST /admin/tokens`.",
)


class DenialThrottle:
    """Admit at most one audit row per key per ``interval``; report how many were skipped.

    Thread-safe (dependencies run in the threadpool) and bounded: past ``max_keys`` the oldest
    key is forgotten, which at worst writes one row too many.
    """

    def __init__(self, *, interval: timedelta = timedelta(seconds=60), max_keys: int = 4096):
        self.interval = interval
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, ...], tuple[datetime, int]] = OrderedDict()

    def admit(self, key: tuple[str, ...], now: datetime) -> int | None:
        """The number of refusals skipped since the last admitted one, or None to skip this one."""
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.interval:
                self._seen[key] = (entry[0], entry[1] + 1)
                return None
            skipped = entry[1] if entry is not None else 0
            self._seen[key] = (now, 0)
            self._seen.move_to_end(key)
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
            return skipped


def platform_of(request: Request) -> Platform:
    platform = getattr(request.app.state, "platform", None)
    if not isinstance(platform, Platform):  # pragma: no cover - create_app always sets it
        raise TypeError("the app was not built by mutls.api.app.create_app")
    return platform


def _throttle(request: Request) -> DenialThrottle:
    throttle = getattr(request.app.state, "denials", None)
    if not isinstance(throttle, DenialThrottle):  # pragma: no cover
        raise TypeError("the app was not built by mutls.api.app.create_app")
    return throttle


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller behind ``Authorization: Bearer ...``, or a 401."""
    platform = platform_of(request)
    header = request.headers.get("authorization")
    if credentials is None and header:
        # Never echo the header: a token pasted without "Bearer " would come back in the error.
        scheme = header.strip().partition(" ")[0].lower()
        found = {
            "bearer": "the Bearer scheme without a token",
            "basic": "Basic credentials",
        }.get(scheme, "a value without the Bearer scheme")
        raise AuthenticationRequired(f"expected `Authorization: Bearer <token>`; found {found}")
    presented = credentials.credentials if credentials is not None else None
    source_ip = _client_ip(request)
    now = platform.clock()
    try:
        principal = authenticate(platform.db, presented, source_ip=source_ip, now=now)
    except InvalidToken as error:
        _audit_failed_authentication(request, platform, presented, error, now)
        raise
    request.state.principal = principal
    return principal


def _audit_failed_authentication(
    request: Request, platform: Platform, presented: str | None, error: MutlsError, now: datetime
) -> None:
    source_ip = _client_ip(request)
    # The message tells unknown tokens (one constant text) from each known revoked or expired
    # one (it names the token), so every real token's misuse gets its row.
    skipped = _throttle(request).admit((source_ip or "", error.code, error.message), now)
    if skipped is None:
        return
    details: dict[str, object] = {
        "reason": error.code,
        "message": error.message,
        "method": request.method,
        "route": _route(request),
    }
    if skipped:
        details["similar_refusals_not_recorded"] = skipped
    try:
        record_denied(
            platform.db,
            action="token.use",
            principal=None,
            presented=presented,
            source_ip=source_ip,
            details=details,
            now=now,
        )
    except MutlsError as failure:  # the request is refused either way; say so in the log
        log.warning("could not audit a failed authentication: %s", failure.code)


def note_permission_denied(request: Request, error: PermissionDenied) -> None:
    """Audit a 403 for an authenticated caller (every one: the caller is accountable)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        return
    platform = platform_of(request)
    try:
        record_denied(
            platform.db,
            action="request.authorize",
            principal=principal,
            source_ip=principal.source_ip,
            details={
                "reason": error.code,
                "message": error.message,
                "method": request.method,
                "route": _route(request),
            },
            now=platform.clock(),
        )
    except MutlsError as failure:
        log.warning("could not audit a permission denial: %s", failure.code)


def requires(permission: Permission | None = None, *, platform_wide: bool = False) -> Any:
    """A dependency: the authenticated caller, holding ``permission`` (and, with
    ``platform_wide``, not scoped to one account), else a 403 ``permission_denied``."""

    def dependency(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if permission is not None:
            principal.require(permission)
        if platform_wide and principal.account_id is not None:
            raise PermissionDenied(
                "expected a platform-wide token; this token is scoped to account "
                f"{principal.account_id}",
                hint="the whole audit chain spans every account; ask a platform admin or auditor",
            )
        return principal

    return Depends(dependency)
