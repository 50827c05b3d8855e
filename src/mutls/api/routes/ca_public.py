"""The CA's public, unauthenticated, read-only endpoints: chain, CRL and OCSP (issue 4, item 6).

Anyone who verifies our certificates fetches these (``openssl``, TLS libraries, HTTP caches), so
they speak the protocols' media types rather than the admin API's JSON: ``application/pkix-crl``
(RFC 5280 section 4.2.1.13), ``application/ocsp-request`` and ``application/ocsp-response``
(RFC 6960 appendix A), ``application/pem-certificate-chain`` (RFC 8555 section 9.1). Only an
unknown CA is a JSON 404 ``not_found``; a bad OCSP request is an OCSP ``malformedRequest``.

They are left out of /openapi.json, which documents the token-authenticated JSON API (its role
matrix and schemathesis run cover every operation there); docs/admin-api.md lists them.

Answers come from :class:`~mutls.ca.publication.Publisher`'s memory, with ``Cache-Control``
``max-age`` up to the moment it would sign a new one itself and never past ``nextUpdate``, so
any HTTP cache in front can serve them too (RFC 5019 section 6).
"""

from __future__ import annotations

import threading
from datetime import datetime
from email.utils import format_datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from mutls.api.auth import platform_of
from mutls.ca.issuer import IssuerCache
from mutls.ca.publication import OcspAnswer, Publisher
from mutls.errors import UnsupportedFormat
from mutls.pki.ocsp import MAX_REQUEST_BYTES, FailureStatus, error_response, request_from_http_get

__all__ = [
    "OCSP_REQUEST",
    "OCSP_RESPONSE",
    "PEM_CHAIN",
    "PKIX_CRL",
    "publisher_of",
    "router",
]

router = APIRouter(prefix="/ca", tags=["ca"], include_in_schema=False)

PKIX_CRL = "application/pkix-crl"
PEM_FILE = "application/x-pem-file"
PEM_CHAIN = "application/pem-certificate-chain"
OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
CaName = Annotated[str, Path(max_length=128, description="the CA's name, e.g. platform")]

_create_lock = threading.Lock()


def publisher_of(request: Request) -> Publisher:
    """The app's one Publisher (and IssuerCache), made on first use."""
    state = request.app.state
    with _create_lock:
        publisher = getattr(state, "publisher", None)
        if not isinstance(publisher, Publisher):
            platform = platform_of(request)
            issuers = getattr(state, "issuers", None)
            if not isinstance(issuers, IssuerCache):
                issuers = IssuerCache(platform.db, platform.keys, platform.settings.ca_dir)
                state.issuers = issuers
            publisher = Publisher(platform.db, issuers)
            state.publisher = publisher
        return publisher


def _cache_headers(max_age: int, this_update: datetime | None = None) -> dict[str, str]:
    headers = {"Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate"}
    if this_update is not None:
        headers["Last-Modified"] = format_datetime(this_update, usegmt=True)
    return headers


@router.get("/{ca}/chain.pem")
def chain(ca: CaName, request: Request) -> Response:
    """The CA's certificate chain, issuing CA first and root last."""
    pem = publisher_of(request).chain_pem(ca)
    return Response(content=pem, media_type=PEM_CHAIN, headers=_cache_headers(3600))


@router.get("/{ca}/crl")
def crl(
    ca: CaName,
    request: Request,
    fmt: Annotated[Literal["der", "pem"] | None, Query(alias="format")] = None,
) -> Response:
    """The CA's current CRL: DER, or PEM (``?format=pem``, ``Accept: application/x-pem-file``)."""
    platform = platform_of(request)
    now = platform.clock()
    published = publisher_of(request).crl(ca, now=now)
    pem = fmt == "pem" or (fmt is None and PEM_FILE in request.headers.get("accept", ""))
    headers = _cache_headers(published.max_age(now), published.this_update)
    if pem:
        return Response(content=published.pem, media_type=PEM_FILE, headers=headers)
    return Response(content=published.der, media_type=PKIX_CRL, headers=headers)


def _ocsp_response(answer: OcspAnswer, now: datetime) -> Response:
    if answer.next_update is None:  # an error status: not for caches
        headers = {"Cache-Control": "no-store"}
    else:
        headers = _cache_headers(answer.max_age(now))
    return Response(content=answer.der, media_type=OCSP_RESPONSE, headers=headers)


@router.post("/{ca}/ocsp")
async def ocsp_post(ca: CaName, request: Request) -> Response:
    """RFC 6960 appendix A.1: the DER request as the body."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_REQUEST_BYTES:
            break  # parse_request names the size; no need to read the rest
    return await _answer(ca, bytes(body), request)


@router.get("/{ca}/ocsp/{encoded:path}")
async def ocsp_get(ca: CaName, encoded: str, request: Request) -> Response:
    """RFC 6960 appendix A.1: the URL-encoded base64 of the DER request after the URL."""
    # The raw path keeps percent-escapes a decoded path would have turned into separators.
    raw = request.scope.get("raw_path", b"").decode("latin-1")
    marker = f"/ca/{ca}/ocsp/"
    segment = raw.split(marker, 1)[1] if marker in raw else encoded
    try:
        der = request_from_http_get(segment)
    except UnsupportedFormat:
        return _ocsp_response(
            OcspAnswer(
                der=error_response(FailureStatus.MALFORMED_REQUEST),
                status=FailureStatus.MALFORMED_REQUEST,
            ),
            platform_of(request).clock(),
        )
    return await _answer(ca, der, request)


async def _answer(ca: str, der: bytes, request: Request) -> Response:
    platform = platform_of(request)
    now = platform.clock()
    # Signing and the rare store read are synchronous: off the event loop.
    answer = await run_in_threadpool(publisher_of(request).ocsp, ca, der, now=now)
    return _ocsp_response(answer, now)
