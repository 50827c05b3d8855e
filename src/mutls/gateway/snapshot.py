"""Load the gateway's :class:`GatewaySnapshot` from the store.

The store's revision is the audit chain's head: every change that matters to the gateway
(issuance, revocation, account settings, trusted CAs, routes) is audited in its own transaction,
so the head's sequence number moves exactly when something may have changed. The watcher that
reloads on that (``mutls.proxy.watcher``) is shared with the egress proxy.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from mutls.ca.trust import KIND_CUSTOMER
from mutls.pki.loader import load_certificates
from mutls.policy.snapshot import (
    AccountPolicy,
    CustomerCA,
    GatewaySnapshot,
    IssuedEntry,
    Network,
)
from mutls.routing.service import load_route_table
from mutls.store.database import Database
from mutls.store.models import Account, AuditHead, CertificateAuthority, IssuedCertificate

__all__ = ["load_snapshot"]

log = logging.getLogger("mutls.gateway")

EXPIRED_GRACE = timedelta(days=1)
"""Expired certificates stay in the snapshot a day, so a late client still hears "revoked"."""


def _network(text: str) -> Network:
    """An allowlist entry; ``::ffff:10.0.0.0/104`` becomes ``10.0.0.0/8``, because the policy
    compares IPv4-mapped sources as IPv4."""
    network = ipaddress.ip_network(text, strict=False)
    if isinstance(network, ipaddress.IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    return network


def _fingerprint(cert: x509.Certificate) -> bytes:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()


def load_snapshot(db: Database, *, now: datetime) -> GatewaySnapshot:
    """Everything the request path needs, read in one transaction."""
    with db.read() as session:
        revision = int(session.execute(select(AuditHead.seq)).scalar() or 0)
        accounts = {
            a.id: AccountPolicy(
                id=a.id,
                name=a.name,
                mtls_enabled=a.mtls_enabled,
                allowed_routes=frozenset(a.allowed_routes),
                networks=tuple(_network(n) for n in a.ip_allowlist),
            )
            for a in session.execute(select(Account)).scalars()
        }
        issued: dict[bytes, IssuedEntry] = {}
        rows = session.execute(
            select(
                IssuedCertificate.fingerprint_sha256,
                IssuedCertificate.account_id,
                IssuedCertificate.serial,
                IssuedCertificate.api_versions,
                IssuedCertificate.revoked_at,
            ).where(IssuedCertificate.not_after > now - EXPIRED_GRACE)
        )
        for fingerprint, account_id, serial, versions, revoked_at in rows:
            issued[bytes.fromhex(fingerprint.replace(":", ""))] = IssuedEntry(
                account_id=account_id,
                serial=serial,
                api_versions=frozenset(versions or ()),
                revoked_at=revoked_at,
            )
        anchors: list[bytes] = []
        customer: dict[bytes, list[CustomerCA]] = {}
        cas = session.execute(
            select(CertificateAuthority).order_by(
                CertificateAuthority.created_at, CertificateAuthority.id
            )
        ).scalars()
        for ca in cas:
            chain = load_certificates(ca.chain_pem.encode("ascii"))
            anchors.extend(c.public_bytes(Encoding.DER) for c in chain)
            if ca.kind != KIND_CUSTOMER or ca.account_id is None:
                continue
            entry = CustomerCA(
                id=ca.id, account_id=ca.account_id, patterns=tuple(ca.subject_patterns)
            )
            for cert in chain:
                customer.setdefault(_fingerprint(cert), []).append(entry)
        routes = load_route_table(session)
    return GatewaySnapshot(
        revision=revision,
        routes=routes,
        accounts=accounts,
        issued=issued,
        customer_cas={k: tuple(v) for k, v in customer.items()},
        anchors_der=tuple(dict.fromkeys(anchors)),
        loaded_at=now,
    )
