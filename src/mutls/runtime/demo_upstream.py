"""The demo's upstream API: what a provider's service behind the gateway sees.

It answers every request with the identity the gateway vouched for (RFC 9440 ``Client-Cert`` and
the ``X-Mutls-*`` headers), so `mutls demo` shows the whole path without any other service.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["demo_upstream_app"]

_SHOWN = (
    "x-mutls-account",
    "x-mutls-cert-serial",
    "x-mutls-cert-fingerprint",
    "x-mutls-route",
    "x-forwarded-for",
    "forwarded",
)


async def _echo(request: Request) -> JSONResponse:
    headers = {name: request.headers[name] for name in _SHOWN if name in request.headers}
    client_cert = request.headers.get("client-cert")
    return JSONResponse(
        {
            "message": "hello from the demo upstream",
            "method": request.method,
            "path": request.url.path,
            "identity_headers": headers,
            "client_cert_header_bytes": len(client_cert) if client_cert else 0,
        }
    )


def demo_upstream_app() -> Starlette:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", _echo, methods=methods)])
