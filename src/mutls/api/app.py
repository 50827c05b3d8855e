"""``create_app(platform)``: the admin API as a FastAPI application.

The stack, outside in: ``RequestObserver`` (the body limit, one log line per request, metrics,
and a generic 500 for any unexpected exception), the exception handlers (every error to
``{"error": {...}}``, see ``errors.py``), then the routes.

The body limit is ours rather than FastAPI's ``max_body_size`` because that one answers some
cases with a plain-text 413 from outside the exception handlers; every answer here is JSON.

Endpoints are plain ``def``: the services use synchronous SQLAlchemy, and FastAPI runs them in its
threadpool.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mutls import __version__
from mutls.accounts.principal import Principal
from mutls.api.auth import DenialThrottle, note_permission_denied
from mutls.api.errors import (
    error_response,
    http_exception_response,
    internal_error_response,
    too_large_response,
    validation_error_response,
)
from mutls.api.metrics import UNMATCHED_ROUTE, ApiMetrics
from mutls.api.routes import (
    accounts,
    audit,
    ca_public,
    certificates,
    doctor,
    egress_requests,
    egress_routes,
    expiry,
    gateway_routes,
    health,
    revocation,
    roles,
    secrets,
    tokens,
    trust,
    users,
)
from mutls.ca.issuer import IssuerCache
from mutls.errors import MutlsError, PermissionDenied
from mutls.runtime.platform import Platform

__all__ = ["BodyTooLarge", "RequestObserver", "create_app"]

log = logging.getLogger("mutls.api")

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

DESCRIPTION = """\
The admin API of mutls: vault secrets per environment, accounts and their mTLS settings, client
certificates issued from CSRs, users, roles, API tokens and the tamper-evident audit log.

Authenticate with `Authorization: Bearer <token>`. Every error is
`{"error": {"code", "message", "hint"}}`; the `code` is stable. No response ever contains a
private key, passphrase, client secret or string secret value.
"""


def create_app(platform: Platform) -> FastAPI:
    app = FastAPI(
        title="mutls admin API",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # Swagger UI loads scripts from a CDN; /openapi.json is enough here
        redoc_url=None,
    )
    metrics = ApiMetrics(
        platform.db,
        clock=platform.clock,
        gateway_cert_file=platform.settings.expiry.gateway_cert_file,
    )
    app.state.platform = platform
    app.state.metrics = metrics
    app.state.denials = DenialThrottle()
    # One per process: the platform CA key is decrypted (a key derivation) on first use only.
    app.state.issuers = IssuerCache(platform.db, platform.keys, platform.settings.ca_dir)
    app.add_middleware(
        RequestObserver, metrics=metrics, max_body_bytes=platform.settings.max_body_bytes
    )
    app.add_exception_handler(MutlsError, _on_mutls_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    for module in (health, secrets, audit, accounts, certificates, users, tokens, roles):
        app.include_router(module.router)
    for module in (revocation, ca_public):  # issue 4 item 6: revocation, CRL, OCSP, chain
        app.include_router(module.router)
    app.include_router(trust.router)  # issue 4 item 4: an account's own CAs (seed 004)
    app.include_router(gateway_routes.router)  # issue 5 item 2: the gateway's routes
    app.include_router(egress_routes.router)  # issue 6 item 2: the egress proxy's routes
    app.include_router(egress_requests.router)  # issue 6 item 6: its request log
    app.include_router(doctor.router)  # issue 7 item 1: mutls doctor for the portal
    app.include_router(expiry.router)  # issue 7 items 2 and 3: expiry inventory and alerts
    return app


def _on_mutls_error(request: Request, exc: Exception) -> Response:
    """Sync on purpose: auditing a permission denial writes to the database (threadpool)."""
    if not isinstance(exc, MutlsError):  # pragma: no cover - registered for MutlsError only
        raise exc
    if isinstance(exc, PermissionDenied):
        note_permission_denied(request, exc)
    return error_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    return validation_error_response(exc)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        raise exc
    if exc.status_code == 405:
        # Routing answers with the methods of the first route that matched the path only; a
        # path served by several routes (GET and POST /admin/secrets) needs all of them.
        exc.headers = {"Allow": ", ".join(_allowed_methods(request))}
    return http_exception_response(exc)


def _allowed_methods(request: Request) -> list[str]:
    app = request.app
    if not isinstance(app, FastAPI):  # pragma: no cover
        return []
    patterns: dict[str, re.Pattern[str]] = getattr(app.state, "path_patterns", {})
    if not patterns:
        for template in app.openapi().get("paths", {}):
            regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            patterns[template] = re.compile(regex)
        app.state.path_patterns = patterns
    methods: set[str] = set()
    for template, pattern in patterns.items():
        if pattern.fullmatch(request.url.path):
            methods.update(m.upper() for m in app.openapi()["paths"][template])
    return sorted(methods)


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` when the body passes the limit. An HTTPException, so FastAPI's
    body reading re-raises it unchanged and the handler renders the JSON 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413)
        self.limit = limit


class RequestObserver:
    """Per request: the body limit, one access-log line, metrics, and a last-resort 500.

    The limit is checked twice: a declared ``Content-Length`` above it is refused before the
    app runs, and the bytes actually received are counted (chunked bodies have no length).

    The log line has the method, the route *template*, the status, the duration and the actor;
    never headers (tokens), query values or bodies (secrets).
    """

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500
        response_started = False

        async def observed_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        too_large = too_large_response(self.max_body_bytes)
        try:
            if self._declared_too_large(scope):
                await _respond(too_large, scope, receive, observed_send)
            else:
                await self.app(scope, limited_receive, observed_send)
        except BodyTooLarge:  # raised where no exception handler reaches
            if response_started:
                raise
            await _respond(too_large, scope, receive, observed_send)
        except Exception:
            log.exception(
                "internal_error: %s %s raised an unexpected exception",
                scope.get("method"),
                _route_of(scope),
            )
            if response_started:
                raise  # too late for an error response; the server drops the connection
            await _respond(internal_error_response(), scope, receive, observed_send)
        finally:
            self._observe(scope, state, status, time.perf_counter() - started_at)

    def _declared_too_large(self, scope: Scope) -> bool:
        declared = Headers(scope=scope).get("content-length")
        return declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes

    def _observe(self, scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        method = str(scope.get("method", ""))
        route = _route_of(scope)
        self.metrics.observe(
            method=method if method in _KNOWN_METHODS else "other",
            route=route,
            status=status,
            seconds=seconds,
        )
        principal = state.get("principal")
        actor = principal.actor if isinstance(principal, Principal) else "-"
        log.info("%s %s %d %.1fms actor=%s", method, route, status, seconds * 1000, actor)


def _route_of(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


async def _respond(
    response: Response, scope: Scope, receive: Receive, send: Callable[[Message], Awaitable[None]]
) -> None:
    await response(scope, receive, send)
