"""API token format and hashing (sans-IO).

A token is ``mutls_`` followed by 43 URL-safe characters (256 random bits). The fixed prefix lets
secret scanners (GitHub, GitLab, trufflehog) recognise a leaked mutls token. Only the SHA-256 of
the token is stored: with 256 bits of entropy a fast hash is enough, and a database leak does
not leak usable tokens. The first 12 characters are kept to help people tell tokens apart.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["DISPLAY_PREFIX_LENGTH", "TOKEN_PREFIX", "hash_token", "looks_like_token", "new_token"]

TOKEN_PREFIX = "mutls_"
DISPLAY_PREFIX_LENGTH = 12
_BODY_LENGTH = 43


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_token(value: str) -> bool:
    """Cheap shape check before touching the database."""
    body = value[len(TOKEN_PREFIX) :]
    return (
        value.startswith(TOKEN_PREFIX)
        and len(body) == _BODY_LENGTH
        and all(c.isalnum() or c in "-_" for c in body)
        and body.isascii()
    )
