"""Request and response models of revocation (issue 4, item 6). Kept apart from ``schemas.py``
so the issuance and revocation slices grow without stepping on each other."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mutls.api.schemas import CertificateOut
from mutls.pki.authority import RevocationReason

__all__ = ["REASONS", "ReasonName", "RevokeRequest", "RevokedList"]

ReasonName = Literal[
    "unspecified",
    "key_compromise",
    "ca_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "certificate_hold",
    "privilege_withdrawn",
]
REASONS: dict[str, RevocationReason] = {
    "unspecified": RevocationReason.UNSPECIFIED,
    "key_compromise": RevocationReason.KEY_COMPROMISE,
    "ca_compromise": RevocationReason.CA_COMPROMISE,
    "affiliation_changed": RevocationReason.AFFILIATION_CHANGED,
    "superseded": RevocationReason.SUPERSEDED,
    "cessation_of_operation": RevocationReason.CESSATION_OF_OPERATION,
    "certificate_hold": RevocationReason.CERTIFICATE_HOLD,
    "privilege_withdrawn": RevocationReason.PRIVILEGE_WITHDRAWN,
}
"""The API's snake_case names for the RFC 5280 reasons (stored and audited in RFC spelling)."""


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: ReasonName | None = Field(
        default=None,
        description="the RFC 5280 reason: key_compromise when the private key may have leaked; "
        "by default unspecified for one certificate, cessation_of_operation for an API version",
    )


class RevokedList(BaseModel):
    api_version: str
    revoked: list[CertificateOut] = Field(description="the certificates this call revoked")
