"""The TLS server identity of this node's customer-facing listeners, issued by the platform CA.

Customers already trust the platform CA (their certificates chain to it, and they download its
chain with every certificate), so a server certificate from the same CA needs no extra trust
setup on their side. The key is made in memory at start-up and never stored: it reaches OpenSSL
through ``mutls.tls.context`` (in-memory file, encrypted), and a restart makes a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from mutls.ca.issuer import IssuerCache, IssuingCA
from mutls.errors import InvalidArgument
from mutls.pki.authority import Profile, sign_csr
from mutls.pki.csr import SubjectSpec, build_csr, parse_san
from mutls.pki.keys import generate_key
from mutls.pki.material import Material, SourceFormat

__all__ = [
    "RENEW_AT",
    "RENEW_RETRY",
    "SERVER_CERT_DAYS",
    "issue_server_identity",
    "node_identity_issuer",
    "renewal_time",
]

SERVER_CERT_DAYS = 90
"""Short, like ACME certificates. The gateway re-issues its own at two thirds of its life while
it runs (``MUTLS_SERVER_CERT_DAYS``); every listener gets a new one at start."""
RENEW_AT = 2 / 3
"""A node's server certificate is issued again once this share of its life has passed."""
RENEW_RETRY = timedelta(seconds=60)
"""After a failed renewal the current certificate stays in service; the next try is this late."""


def issue_server_identity(
    issuer: IssuingCA,
    names: Sequence[str],
    *,
    now: datetime,
    lifetime: timedelta = timedelta(days=SERVER_CERT_DAYS),
) -> Material:
    """A fresh EC P-256 key and a serverAuth certificate for ``names`` (DNS names or IPs),
    valid for ``lifetime`` from ``now`` (never past the issuing CA's own end), with the
    intermediates, as the material a TLS server context loads."""
    if not names:
        raise InvalidArgument(
            "expected at least one server name (DNS name or IP address); found none",
            hint="set MUTLS_SERVER_NAMES, like pki.example.com,10.0.0.5",
        )
    key = generate_key()
    csr = build_csr(key, SubjectSpec(common_name=names[0]), [parse_san(n) for n in names])
    validity = min(lifetime, issuer.certificate.not_valid_after_utc - now)
    certificate = sign_csr(
        csr,
        issuer=issuer.certificate,
        issuer_key=issuer.key,
        profile=Profile.SERVER,
        now=now,
        validity=validity,
    )
    return Material(
        source_format=SourceFormat.PEM,
        leaf=certificate,
        chain=(certificate, *issuer.chain[:-1]),
        key=key,
    )


def renewal_time(identity: Material, issued_at: datetime) -> datetime:
    """When to issue ``identity``'s successor: :data:`RENEW_AT` of the way from ``issued_at`` to
    its notAfter."""
    leaf = identity.leaf
    assert leaf is not None
    return issued_at + (leaf.not_valid_after_utc - issued_at) * RENEW_AT


def node_identity_issuer(
    issuers: IssuerCache, names: Sequence[str], lifetime: timedelta
) -> Callable[[datetime], Material]:
    """Issues this node's listener certificates (at start, and each renewal) from the platform
    CA as it is at that time."""

    def issue(now: datetime) -> Material:
        return issue_server_identity(issuers.platform(now=now), names, now=now, lifetime=lifetime)

    return issue
