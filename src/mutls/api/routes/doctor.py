"""``POST /admin/doctor``: the ``mutls doctor`` walk for the portal (issue 7 item 1).

Platform-wide admins only (``doctor:run``): the call opens connections to any URL from the
platform's host and decrypts the named certificate secret (audited as ``secret.access`` with the
purpose ``doctor``). The answer is the doctor's report, the same JSON as ``mutls doctor --json``;
a failed check is a 200 with ``"ok": false``, not an HTTP error.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.schemas import ENVIRONMENT_PATTERN, REF_PATTERN
from mutls.doctor import ClientSource, DoctorOptions, diagnose
from mutls.doctor.material import DOCTOR_PURPOSE, source_from_secret
from mutls.pki.loader import load_certificates
from mutls.vault.secrets import DEFAULT_ENVIRONMENT, reveal_secret

__all__ = ["router"]

router = APIRouter(
    prefix="/admin/doctor", tags=["doctor"], responses=documented(401, 403, 404, 422, 503)
)
Admin = Annotated[Principal, requires(Permission.DOCTOR_RUN, platform_wide=True)]

#: Per network step; a walk has at most five of them.
TIMEOUT_SECONDS = 5.0


class DoctorRequest(BaseModel):
    url: str = Field(max_length=2048, pattern=r"^https://", description="the https:// URL to call")
    secret: str | None = Field(default=None, pattern=REF_PATTERN, description="certificate secret")
    environment: str = Field(default=DEFAULT_ENVIRONMENT, pattern=ENVIRONMENT_PATTERN)
    servername: str | None = Field(default=None, max_length=253)


@router.post("")
def run_doctor(body: DoctorRequest, request: Request, principal: Admin) -> dict[str, Any]:
    """Walk the mTLS connection to ``url`` (with the secret's certificate, if named) and report
    each step; stops at the first failure with its code and hint."""
    platform = platform_of(request)
    now = platform.clock()
    source: ClientSource | None = None
    options = DoctorOptions(servername=body.servername, timeout=TIMEOUT_SECONDS)
    if body.secret is not None:
        revealed = reveal_secret(
            platform.db,
            platform.keys,
            principal,
            body.secret,
            body.environment,
            purpose=DOCTOR_PURPOSE,
            now=now,
        )
        source, bundle = source_from_secret(revealed.fields, body.secret, body.environment)
        if bundle is not None:
            options = DoctorOptions(
                servername=body.servername,
                timeout=TIMEOUT_SECONDS,
                cas=tuple(load_certificates(bundle)),
                ca_origin=f"the ca_bundle_pem of secret {body.secret}",
            )
    return diagnose(body.url, source, options=options, now=now).to_dict()
