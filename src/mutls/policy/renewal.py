"""When a client certificate should be renewed: two thirds into its life, a little earlier at
random so that a fleet issued together does not renew in the same second."""

from __future__ import annotations

import random
from datetime import datetime

from mutls.errors import InvalidArgument

__all__ = ["DEFAULT_JITTER", "DEFAULT_RENEW_AT", "renewal_time"]

DEFAULT_RENEW_AT = 2 / 3
"""Two thirds leaves a third of the lifetime to retry in (the same default as cert-manager)."""
DEFAULT_JITTER = 0.1
"""Up to this fraction of the time to the renewal point, earlier: never later, never before
``not_before``."""


def renewal_time(
    not_before: datetime,
    not_after: datetime,
    *,
    at: float = DEFAULT_RENEW_AT,
    jitter: float = DEFAULT_JITTER,
    rng: random.Random | None = None,
) -> datetime:
    """The moment to renew a certificate valid from ``not_before`` to ``not_after``."""
    if not 0 <= at <= 1:
        raise InvalidArgument(
            f"expected the renewal point as a fraction of the lifetime between 0 and 1; found {at}",
            hint="0.667 renews two thirds into the certificate's life",
        )
    if not 0 <= jitter < 1:
        raise InvalidArgument(f"expected a jitter between 0 and 1; found {jitter}")
    target = (not_after - not_before) * at
    earlier = target * jitter * (rng or random.SystemRandom()).random()
    return not_before + target - earlier
