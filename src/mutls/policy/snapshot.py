"""What the gateway knows, frozen: the values :func:`mutls.policy.authorize.authorize` decides on.

A data plane never queries the database on the request path. It holds one :class:`GatewaySnapshot`
and replaces it whole when the store's revision moves (``gateway/snapshot.py`` loads it,
``proxy/watcher.py`` watches). Keys are raw SHA-256 digests of DER certificates, the cheapest
thing a handshake can hand over.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mutls.policy.routing import RouteTable

__all__ = [
    "AccountPolicy",
    "CustomerCA",
    "GatewaySnapshot",
    "IssuedEntry",
    "Network",
    "Peer",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, kw_only=True, slots=True)
class Peer:
    """A client certificate as the TLS handshake verified it (chain and signatures; not dates,
    purpose or revocation, which :func:`authorize` checks so it can answer in HTTP)."""

    fingerprint: bytes
    """SHA-256 of the leaf's DER."""
    serial: str
    """Upper-case hex, as ``openssl x509 -serial`` prints it."""
    subject: str
    not_before: datetime
    not_after: datetime
    chain_not_before: datetime
    """The latest notBefore over the leaf and the CA certificates of the verified chain."""
    chain_not_after: datetime
    """The earliest notAfter over the leaf and the CA certificates of the verified chain."""
    client_auth: bool
    """The leaf may be used for TLS client authentication (clientAuth EKU, or no EKU at all)."""
    names: tuple[str, ...]
    """Lower-case CN and DNS SANs, for an account CA's subject patterns."""
    ca_fingerprints: tuple[bytes, ...]
    """SHA-256 of each CA certificate in the verified chain, nearest issuer first."""
    der: bytes
    chain_der: tuple[bytes, ...] = ()
    """The intermediates the client sent (not the leaf, not our trust anchors)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class IssuedEntry:
    """A client certificate the platform CA issued to an account."""

    account_id: str
    serial: str
    api_versions: frozenset[str]
    """Empty: any version."""
    revoked_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CustomerCA:
    """An account's own CA (seed 004): any certificate it issued that matches the patterns maps to
    the account."""

    id: str
    account_id: str
    patterns: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountPolicy:
    id: str
    name: str
    mtls_enabled: bool
    allowed_routes: frozenset[str] = frozenset()
    """Route names or API versions; empty: every route the route itself lets the account use."""
    networks: tuple[Network, ...] = ()
    """Source-address allowlist; empty: any address."""

    def allows_ip(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if not self.networks:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewaySnapshot:
    revision: int
    routes: RouteTable
    accounts: Mapping[str, AccountPolicy] = field(default_factory=dict)
    issued: Mapping[bytes, IssuedEntry] = field(default_factory=dict)
    """Platform-issued client certificates by fingerprint (live and revoked)."""
    customer_cas: Mapping[bytes, tuple[CustomerCA, ...]] = field(default_factory=dict)
    """Account CAs by the fingerprint of each certificate in their uploaded chain, oldest first."""
    anchors_der: tuple[bytes, ...] = ()
    """Every CA certificate the handshake trusts (platform chain and account CAs), DER."""
    loaded_at: datetime | None = None
