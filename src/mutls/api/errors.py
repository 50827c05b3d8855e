"""The one place where errors become HTTP: a status per error class, one JSON shape for all.

Every error response is ``{"error": {"code", "message", "hint"}}`` (plus ``violations`` for an
issuance policy violation). The status comes from the nearest class in the error's MRO that
``STATUS_BY_ERROR`` names, so a new subclass inherits its family's status. Framework errors
(validation, unknown path, wrong method, too large a body) get the same shape with stable codes.

What is *not* sent: tracebacks, exception chains, request bodies, the values a validation error
saw. Pydantic's errors carry the offending input; only field locations and the kind of problem
leave this module, because the input may be a private key or a passphrase.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mutls.api.schemas import ErrorResponse
from mutls.errors import (
    AlreadyRevoked,
    AuthenticationRequired,
    AuthorizationRequired,
    CAAlreadyExists,
    CANotInitialized,
    CertificateError,
    ClientCertificateRequired,
    Conflict,
    EnvironmentForbidden,
    InputError,
    InsecureTlsRefused,
    InvalidToken,
    MutlsError,
    NotFound,
    PartnerError,
    PartnerTimeout,
    PermissionDenied,
    PolicyViolation,
    PrivateKeyError,
    SecretExpired,
    SerialNotFound,
    StoreError,
    UpstreamTimeout,
    UpstreamUnavailable,
    VaultError,
)

__all__ = [
    "GENERIC_ERROR_STATUS",
    "STATUS_BY_ERROR",
    "documented",
    "error_body",
    "error_response",
    "http_exception_response",
    "internal_error_response",
    "status_for",
    "too_large_response",
    "validation_error_response",
]

STATUS_BY_ERROR: Mapping[type[MutlsError], int] = {
    # what the caller sent cannot be used: a certificate, key, passphrase or argument problem
    InputError: 422,
    PrivateKeyError: 422,
    CertificateError: 422,
    PolicyViolation: 422,
    # what the caller named does not exist (or is another account's: same answer)
    NotFound: 404,
    SerialNotFound: 404,
    # the change clashes with what exists
    Conflict: 409,
    CAAlreadyExists: 409,
    AlreadyRevoked: 409,
    # who is calling, and may they
    AuthenticationRequired: 401,
    InvalidToken: 401,
    ClientCertificateRequired: 401,
    PermissionDenied: 403,
    AuthorizationRequired: 403,
    UpstreamUnavailable: 502,
    UpstreamTimeout: 504,
    # the egress proxy: its partner failed, or it refused the app's request
    PartnerError: 502,
    PartnerTimeout: 504,
    EnvironmentForbidden: 403,
    InsecureTlsRefused: 422,
    SecretExpired: 422,
    # the platform cannot serve right now; retrying later (or fixing its setup) helps
    VaultError: 503,
    StoreError: 503,
    CANotInitialized: 503,
}
GENERIC_ERROR_STATUS = 400
"""For a MutlsError with no family above; a test checks that no error class falls through."""

_CODE_BY_STATUS = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
}
_HINT_BY_STATUS = {
    404: "check the path against the API's reference at /openapi.json",
    405: "check the method against /openapi.json; the Allow header lists the accepted ones",
    413: "request bodies are limited by MUTLS_MAX_BODY_BYTES; certificates and keys are a few "
    "kilobytes, so check that this is the right file",
}


def status_for(error: MutlsError, overrides: Mapping[type[MutlsError], int] | None = None) -> int:
    """The status of the nearest class in the error's MRO; ``overrides`` is looked at first
    (an mTLS endpoint answers a refused client certificate with 403, not 422)."""
    for cls in type(error).__mro__:
        status = (overrides or {}).get(cls) or STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return GENERIC_ERROR_STATUS


def error_body(code: str, message: str, hint: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "hint": hint, **extra}}


def error_response(
    error: MutlsError, overrides: Mapping[type[MutlsError], int] | None = None
) -> JSONResponse:
    """The response for one of our errors, with the challenge header a 401 needs (RFC 6750)."""
    status = status_for(error, overrides)
    headers: dict[str, str] = {}
    if isinstance(error, AuthenticationRequired):
        headers["WWW-Authenticate"] = 'Bearer realm="mutls"'
    elif isinstance(error, InvalidToken):
        headers["WWW-Authenticate"] = 'Bearer realm="mutls", error="invalid_token"'
    return JSONResponse({"error": error.to_dict()}, status_code=status, headers=headers)


def validation_error_response(error: RequestValidationError) -> JSONResponse:
    """422 ``invalid_request`` naming each field and what was wrong, never the value sent."""
    problems = _describe(error.errors())
    fields = [p["field"] for p in problems]
    message = (
        "expected a request that matches the API schema; found problems with "
        + ", ".join(dict.fromkeys(fields))
        if fields
        else "expected a request that matches the API schema"
    )
    body = error_body(
        "invalid_request",
        message,
        "see the operation's request schema in /openapi.json",
        fields=problems,
    )
    return JSONResponse(body, status_code=422)


def _describe(errors: Sequence[Any]) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    for item in errors[:50]:
        if not isinstance(item, Mapping):
            continue
        loc = [str(part) for part in item.get("loc", ())]
        kind = str(item.get("type", "invalid"))
        if kind == "json_invalid":
            field, problem = "body", "is not valid JSON"
        else:
            field = ".".join(loc[1:] if len(loc) > 1 else loc) or "request"
            if loc and loc[0] in {"query", "path", "header"}:
                field = f"{field} ({loc[0]})"
            problem = _problem(kind, item)
        problems.append({"field": field, "problem": problem, "type": kind})
    return problems


def _problem(kind: str, item: Mapping[str, Any]) -> str:
    """Pydantic's message: it describes the rule (the input travels in a separate key that is
    dropped here). ``extra_forbidden`` and ``missing`` get plainer words."""
    if kind == "extra_forbidden":
        return "is not a field of this request"
    if kind == "missing":
        return "is required"
    msg = str(item.get("msg") or "is not valid")
    return msg[:300]


def http_exception_response(error: StarletteHTTPException) -> JSONResponse:
    """Routing and framework errors (unknown path, wrong method, body too large)."""
    status = error.status_code
    if status == 413:
        limit = getattr(error, "limit", None)
        return too_large_response(limit if isinstance(limit, int) else None)
    if status == 400:  # FastAPI's answer to a body it cannot decode (not UTF-8, not JSON)
        return JSONResponse(
            error_body(
                "invalid_request",
                "expected a JSON body in UTF-8; found one that cannot be decoded",
                "send the request body as UTF-8 JSON with Content-Type: application/json",
                fields=[{"field": "body", "problem": "is not valid JSON", "type": "json_invalid"}],
            ),
            status_code=422,
        )
    try:
        phrase = HTTPStatus(status).phrase.lower()
    except ValueError:
        phrase = "http error"
    code = _CODE_BY_STATUS.get(status, phrase.replace(" ", "_").replace("-", "_"))
    if status == 404:
        message = "expected a path that this API serves; found none matching"
    elif status == 405:
        message = "expected one of the methods this path accepts; found another"
    else:
        message = f"expected a request this API can serve; found a problem ({phrase})"
    headers = dict(error.headers or {})
    return JSONResponse(
        error_body(code, message, _HINT_BY_STATUS.get(status, "")),
        status_code=status,
        headers=headers or None,
    )


def too_large_response(limit: int | None) -> JSONResponse:
    within = f"of at most {limit} bytes" if limit is not None else "within the configured limit"
    return JSONResponse(
        error_body(
            "request_too_large",
            f"expected a request body {within}; found a larger one",
            _HINT_BY_STATUS[413],
        ),
        status_code=413,
    )


def internal_error_response() -> JSONResponse:
    """What the caller sees of a bug: a generic message; the traceback stays in the server log."""
    return JSONResponse(
        error_body(
            "internal_error",
            "expected to serve this request; an unexpected error happened on the server",
            "this is a bug in mutls; the server log has the details (search for internal_error)",
        ),
        status_code=500,
    )


_DESCRIPTIONS = {
    401: "no token, or one that is unknown, revoked, expired or of a disabled user",
    403: "the token's role may not do this (permission_denied)",
    404: "no such resource, or one of another account (the same answer)",
    409: "the name is taken, or the resource is in use",
    413: "the request body is larger than MUTLS_MAX_BODY_BYTES",
    422: "the request is malformed (invalid_request) or its content cannot be used (the code "
    "names the problem: key_mismatch, wrong_passphrase, certificate_expired, ...)",
    503: "the database or the vault's master key is unavailable",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, all with the one error shape."""
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in statuses
    }
