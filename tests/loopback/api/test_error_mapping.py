"""The one error-to-HTTP table: every error class has a deliberate status and the same shape."""

from __future__ import annotations

import json

import pytest
from fastapi.exceptions import RequestValidationError

from mutls.api.errors import (
    GENERIC_ERROR_STATUS,
    error_response,
    status_for,
    validation_error_response,
)
from mutls.errors import (
    AuthError,
    CAStateError,
    CertificateQuotaExceeded,
    EgressError,
    MutlsError,
    PolicyViolation,
    RuleViolation,
    UpstreamError,
    all_error_classes,
)

ABSTRACT = {MutlsError, AuthError, CAStateError, UpstreamError, EgressError}


def instance(cls: type[MutlsError]) -> MutlsError:
    if issubclass(cls, PolicyViolation):
        return cls([RuleViolation(rule="key_size", message="too small")])
    if issubclass(cls, CertificateQuotaExceeded):
        return cls("expected fewer live certificates; found 5", live=[])
    return cls("expected something; found something else")


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.code)
def test_every_error_class_has_a_deliberate_status(cls: type[MutlsError]) -> None:
    """No concrete error falls through to the generic status: each family is mapped."""
    status = status_for(instance(cls))
    if cls in ABSTRACT:
        assert status == GENERIC_ERROR_STATUS
    else:
        assert status in {401, 403, 404, 409, 422, 502, 503, 504}, cls


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("key_mismatch", 422),
        ("wrong_passphrase", 422),
        ("certificate_expired", 422),
        ("input_too_large", 422),
        ("unsupported_format", 422),
        ("csr_policy_violation", 422),
        ("secret_not_found", 404),
        ("environment_value_missing", 404),
        ("name_taken", 409),
        ("certificate_quota_exceeded", 409),
        ("account_mtls_disabled", 409),
        ("certificate_not_found", 404),
        ("authentication_required", 401),
        ("invalid_token", 401),
        ("permission_denied", 403),
        ("master_key_missing", 503),
        ("database_unavailable", 503),
    ],
)
def test_documented_statuses(code: str, status: int) -> None:
    """The statuses the API reference promises for the common codes."""
    cls = next(c for c in all_error_classes() if c.code == code)
    response = error_response(instance(cls))
    assert response.status_code == status
    body = json.loads(bytes(response.body))
    assert body["error"]["code"] == code
    assert set(body["error"]) >= {"code", "message", "hint"}


def test_policy_violation_keeps_its_violations() -> None:
    """csr_policy_violation lists every broken rule in the error body."""
    body = json.loads(bytes(error_response(instance(PolicyViolation)).body))
    assert body["error"]["violations"] == [{"rule": "key_size", "message": "too small"}]


def test_validation_errors_name_fields_but_never_echo_input() -> None:
    """The 422 body lists field and problem; the input pydantic saw is dropped."""
    error = RequestValidationError(
        [
            {
                "type": "string_too_long",
                "loc": ("body", "passphrase"),
                "msg": "String should have at most 10 characters",
                "input": "hunter2-secret-passphrase",
            },
            {"type": "extra_forbidden", "loc": ("body", "pasphrase"), "msg": "x", "input": "y"},
            {"type": "missing", "loc": ("query", "limit"), "msg": "Field required", "input": None},
        ]
    )
    response = validation_error_response(error)
    text = bytes(response.body).decode()
    assert response.status_code == 422
    assert "hunter2" not in text
    body = json.loads(text)["error"]
    assert body["code"] == "invalid_request"
    assert [f["field"] for f in body["fields"]] == ["passphrase", "pasphrase", "limit (query)"]
    assert body["fields"][1]["problem"] == "is not a field of this request"
    assert "passphrase, pasphrase, limit (query)" in body["message"]
