"""Decisions as pure functions: issuance rules now, gateway authorization later."""

from __future__ import annotations

from mutls.policy.issuance import (
    DEFAULT_RULES,
    SERVER_RULES,
    IssuanceRequest,
    Rule,
    check_request,
    evaluate,
    is_fqdn,
)

__all__ = [
    "DEFAULT_RULES",
    "SERVER_RULES",
    "IssuanceRequest",
    "Rule",
    "check_request",
    "evaluate",
    "is_fqdn",
]
