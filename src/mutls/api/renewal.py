"""``POST /renew`` over mTLS: the renewal listener's whole API.

The caller is authenticated by the client certificate it presents in the TLS handshake (the
listener asks for one and accepts chains to the platform CA only); no token is needed, so a
machine can renew unattended with nothing but its current certificate and key. The request body
is the new CSR, either raw (``Content-Type: application/pkcs10``, PEM or DER, as
``curl --data-binary @new.csr`` sends it) or JSON ``{"csr_pem": "..."}``. The answer is the same
JSON as issuance (certificate, chain, root, lineage), or with
``Accept: application/pem-certificate-chain`` (RFC 8555) the PEM leaf and intermediates, ready to
install.

Refusals are JSON errors with a stable code: no certificate is 401
``client_certificate_required``; an expired, not-yet-valid or revoked certificate, a certificate
not issued to an account here, or an account with mTLS off is 403 with the code that names it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mutls import __version__
from mutls.api.app import RequestObserver
from mutls.api.errors import (
    error_response,
    http_exception_response,
    validation_error_response,
)
from mutls.api.metrics import ApiMetrics
from mutls.api.routes.certificates import issued_out
from mutls.ca.issuer import IssuerCache
from mutls.ca.publication import issuer_urls
from mutls.ca.renewal import renew_certificate
from mutls.errors import (
    AccountMtlsDisabled,
    CertificateError,
    ClientCertificateRequired,
    InvalidArgument,
    MutlsError,
)
from mutls.runtime.platform import Platform

__all__ = ["PEM_CHAIN", "create_renewal_app"]

log = logging.getLogger("mutls.renewal")

PEM_CHAIN = "application/pem-certificate-chain"
MAX_RENEW_BODY = 64 * 1024

# The presented certificate is the caller's credential: a refused one is "forbidden", as the
# gateway answers it, not "unprocessable input" as in the admin API.
_STATUS_OVERRIDES: Mapping[type[MutlsError], int] = {
    CertificateError: 403,
    AccountMtlsDisabled: 403,
}


def create_renewal_app(platform: Platform, issuers: IssuerCache) -> FastAPI:
    app = FastAPI(
        title="mutls renewal",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.platform = platform
    app.add_middleware(
        RequestObserver, metrics=ApiMetrics(platform.db), max_body_bytes=MAX_RENEW_BODY
    )

    async def on_mutls_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, MutlsError):  # pragma: no cover - registered for MutlsError only
            raise exc
        log.info("renewal refused: %s (%s)", exc.code, _peer(request))
        return error_response(exc, _STATUS_OVERRIDES)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):  # pragma: no cover
            raise exc
        return validation_error_response(exc)

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
            raise exc
        return http_exception_response(exc)

    app.add_exception_handler(MutlsError, on_mutls_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)

    @app.post("/renew", status_code=201)
    async def renew(request: Request) -> Response:
        presented = _client_certificate(request)
        csr = _csr_from_body(request.headers.get("content-type", ""), await request.body())
        now = platform.clock()
        issuer = await run_in_threadpool(issuers.platform, now=now)
        view = await run_in_threadpool(
            renew_certificate,
            platform.db,
            issuer,
            presented,
            csr,
            now=now,
            urls=issuer_urls(platform.settings.effective_public_url),
            source_ip=request.client.host if request.client else None,
        )
        log.info("renewed certificate %s: successor serial %s", view.renewed_from_id, view.serial)
        if PEM_CHAIN in request.headers.get("accept", ""):
            pem = view.certificate_pem + issuer.chain_pem(include_root=False)
            return Response(pem, status_code=201, media_type=PEM_CHAIN)
        return JSONResponse(issued_out(view, issuer).model_dump(mode="json"), status_code=201)

    return app


def _peer(request: Request) -> str:
    return request.client.host if request.client else "unknown peer"


def _client_certificate(request: Request) -> x509.Certificate:
    tls = request.scope.get("extensions", {}).get("tls")
    chain = tls.get("client_cert_chain") if isinstance(tls, dict) else None
    if not chain:
        raise ClientCertificateRequired(
            "expected a client certificate in the TLS handshake; none was sent"
            + ("" if tls else " (this connection is not TLS)")
        )
    return x509.load_pem_x509_certificate(str(chain[0]).encode())


def _csr_from_body(content_type: str, body: bytes) -> bytes:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        try:
            data: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            data = None
        csr = data.get("csr_pem") if isinstance(data, dict) else None
        if not isinstance(csr, str) or not csr.strip():
            raise InvalidArgument(
                'expected a JSON object {"csr_pem": "-----BEGIN CERTIFICATE REQUEST-----..."}; '
                "found none",
                hint="or send the CSR itself with Content-Type: application/pkcs10",
            )
        return csr.encode()
    if not body.strip():
        raise InvalidArgument(
            "expected the new CSR as the request body; the body is empty",
            hint="curl --data-binary @new.csr -H 'Content-Type: application/pkcs10' ...",
        )
    return body
