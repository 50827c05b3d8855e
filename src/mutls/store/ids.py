"""Public identifiers: a type prefix and 80 random bits, like ``sec_k3q9x2m4b7c1d5fz``.

The prefix tells a human (and a support ticket) what kind of thing an id names; the random part
is unguessable, so ids leak neither counts nor creation order.
"""

from __future__ import annotations

import base64
import secrets

__all__ = ["new_id"]


def new_id(prefix: str) -> str:
    """A fresh id such as ``acc_...``, ``usr_...``, ``tok_...`` or ``sec_...``."""
    body = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()
    return f"{prefix}_{body}"
