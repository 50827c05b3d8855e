"""Request and response models of an account's own CAs (seed 004, issue 4 item 4). Kept apart
from ``schemas.py`` so the slices of issue 4 grow without stepping on each other."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from mutls.api.schemas import Line, Pem, Request
from mutls.ca.trust import TrustedCAView

__all__ = ["TrustedCACreate", "TrustedCAList", "TrustedCAOut", "trusted_ca_out"]


class TrustedCACreate(Request):
    chain_pem: Pem = Field(
        description="the customer's CA chain, PEM: the root and any intermediates, in any order"
    )
    name: Line | None = Field(
        default=None,
        description="a unique name for this CA; `<account>-<fingerprint prefix>` when left out",
    )
    subject_patterns: list[Line] = Field(
        default_factory=list,
        max_length=64,
        description="glob patterns (`*`, `?`) on the client certificate's subject CN or DNS "
        "SANs, like `*.acme.example`; empty: every certificate the CA issues maps to the account",
    )


class TrustedCAOut(BaseModel):
    id: str
    name: str
    account_id: str
    subject: str = Field(description="the issuing CA: the first certificate of the chain")
    fingerprint_sha256: str = Field(description="of the issuing CA certificate")
    not_after: datetime = Field(description="the earliest expiry in the chain")
    subject_patterns: list[str]
    chain_subjects: list[str] = Field(description="issuing CA first, root last")
    chain_pem: str = Field(description="the stored chain, issuing CA first, root last")
    created_at: datetime
    created_by: str


class TrustedCAList(BaseModel):
    cas: list[TrustedCAOut]


def trusted_ca_out(view: TrustedCAView) -> TrustedCAOut:
    return TrustedCAOut(
        id=view.id,
        name=view.name,
        account_id=view.account_id,
        subject=view.subject,
        fingerprint_sha256=view.fingerprint_sha256,
        not_after=view.not_after,
        subject_patterns=list(view.subject_patterns),
        chain_subjects=list(view.chain_subjects),
        chain_pem=view.chain_pem,
        created_at=view.created_at,
        created_by=view.created_by,
    )
