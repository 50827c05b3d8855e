"""Expiry levels and threshold crossings: pure functions of a notAfter and ``now``.

``mutls.pki.inspect.ExpiryStatus`` has warning (90 days) and urgent (30 days) but no 7-day
level, and its boundaries are "fewer than N whole days"; the inventory needs a third level and
the alerts need boundaries that match the thresholds exactly, so both use :func:`level_of`
here: a certificate is *within* N days when ``not_after - now <= N days`` (to the second), and
``expired`` once ``now >= not_after``. ``days_remaining`` is whole days, rounded down, as
``mutls.vault.payloads.expiry_view`` counts them (negative once expired).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, timedelta

from mutls.config import MAX_EXPIRY_THRESHOLD_DAYS
from mutls.errors import InvalidArgument
from mutls.pki.inspect import URGENT_DAYS, WARNING_DAYS

__all__ = [
    "CRITICAL_DAYS",
    "MAX_THRESHOLD_DAYS",
    "URGENT_DAYS",
    "WARNING_DAYS",
    "ExpiryLevel",
    "crossed",
    "days_remaining",
    "level_of",
    "parse_within",
]

CRITICAL_DAYS = 7
MAX_THRESHOLD_DAYS = MAX_EXPIRY_THRESHOLD_DAYS


class ExpiryLevel(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"  # within WARNING_DAYS
    URGENT = "urgent"  # within URGENT_DAYS
    CRITICAL = "critical"  # within CRITICAL_DAYS
    EXPIRED = "expired"


def days_remaining(not_after: datetime, now: datetime) -> int:
    return int((not_after - now).total_seconds() // 86400)


def _within(not_after: datetime, now: datetime, days: int) -> bool:
    if days == 0:
        return now >= not_after
    return not_after - now <= timedelta(days=days)


def level_of(not_after: datetime, now: datetime) -> ExpiryLevel:
    if now >= not_after:
        return ExpiryLevel.EXPIRED
    for days, level in (
        (CRITICAL_DAYS, ExpiryLevel.CRITICAL),
        (URGENT_DAYS, ExpiryLevel.URGENT),
        (WARNING_DAYS, ExpiryLevel.WARNING),
    ):
        if _within(not_after, now, days):
            return level
    return ExpiryLevel.OK


def crossed(not_after: datetime, now: datetime, thresholds: Iterable[int]) -> list[int]:
    """The thresholds this notAfter has crossed at ``now``, most severe (smallest) first."""
    return sorted(t for t in set(thresholds) if _within(not_after, now, t))


def parse_within(raw: str | int) -> int:
    """``--within 90d`` / ``?within=30``: whole days from 0 to ``MAX_THRESHOLD_DAYS``."""
    text = str(raw).strip().lower().removesuffix("d")
    if not text.isdigit() or int(text) > MAX_THRESHOLD_DAYS:
        raise InvalidArgument(
            f"expected within as whole days between 0 and {MAX_THRESHOLD_DAYS}, like 90d or 30; "
            f"found {str(raw)[:40]!r}"
        )
    return int(text)
