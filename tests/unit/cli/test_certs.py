"""The CLI's revocation reasons are the admin API's, name for name."""

from __future__ import annotations

from mutls.api.schemas_ca import REASONS
from mutls.cli.certs import RevokeReason


def test_revoke_reasons_match_the_api() -> None:
    assert [reason.value for reason in RevokeReason] == list(REASONS)
