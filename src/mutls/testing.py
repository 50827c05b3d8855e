"""Supported test helpers: a throwaway CA and the identities it issues (in the spirit of trustme).

Everything is in memory; nothing touches the disk unless you write the PEM bytes yourself::

    ca = TestCA()
    client = ca.issue("client.example.com")
    server = ca.issue("localhost", profile=Profile.SERVER, sans=["localhost", "127.0.0.1"])
    stranger = TestCA(name="Other CA").issue("client.example.com")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from mutls.pki.authority import (
    IssuerUrls,
    Profile,
    RevokedEntry,
    build_ca_certificate,
    build_crl,
    sign_csr,
)
from mutls.pki.csr import SubjectSpec, build_csr, parse_san
from mutls.pki.export import private_key_pem
from mutls.pki.keys import KeySpec, SigningKey, generate_key

__all__ = ["Identity", "TestCA"]


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, kw_only=True)
class Identity:
    """A certificate, its issuers (leaf first, without the root) and its private key."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    key: SigningKey = field(repr=False)

    @property
    def cert_pem(self) -> bytes:
        return _pem(self.certificate)

    @property
    def chain_pem(self) -> bytes:
        """Leaf and intermediates, PEM, in TLS order."""
        return b"".join(_pem(c) for c in self.chain)

    def key_pem(self, passphrase: bytes | None = None) -> bytes:
        return private_key_pem(self.key, passphrase)

    def combined_pem(self) -> bytes:
        return self.chain_pem + self.key_pem()


class TestCA:
    """A root CA, optionally with one intermediate that does the issuing."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        name: str = "mutls Test Root CA",
        organization: str = "mutls tests",
        intermediate: bool = True,
        key_spec: KeySpec = KeySpec.EC_P256,
        now: datetime | None = None,
        validity: timedelta = timedelta(days=3650),
        intermediate_validity: timedelta | None = None,
        urls: IssuerUrls | None = None,
    ) -> None:
        self.now = now or datetime.now(UTC)
        self.urls = urls
        self.root_key = generate_key(key_spec)
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        self.root = build_ca_certificate(
            subject=root_name,
            public_key=self.root_key.public_key(),
            signing_key=self.root_key,
            issuer=None,
            now=self.now,
            validity=validity,
            path_length=1,
        )
        self.intermediate: x509.Certificate | None = None
        self.issuer, self.issuer_key = self.root, self.root_key
        if intermediate:
            key = generate_key(key_spec)
            inter_name = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Issuing CA"),
                ]
            )
            self.intermediate = build_ca_certificate(
                subject=inter_name,
                public_key=key.public_key(),
                signing_key=self.root_key,
                issuer=self.root,
                now=self.now,
                validity=intermediate_validity or validity,
                path_length=0,
                urls=urls,
            )
            self.issuer, self.issuer_key = self.intermediate, key

    @property
    def root_pem(self) -> bytes:
        return _pem(self.root)

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        return (self.intermediate,) if self.intermediate is not None else ()

    def issue(
        self,
        common_name: str,
        *,
        profile: Profile = Profile.CLIENT,
        sans: Sequence[str] = (),
        now: datetime | None = None,
        validity: timedelta = timedelta(days=365),
        key_spec: KeySpec = KeySpec.EC_P256,
        organization: str | None = None,
    ) -> Identity:
        """A leaf certificate. ``now`` in the past or future makes expired or not-yet-valid ones."""
        key = generate_key(key_spec)
        csr = build_csr(
            key,
            SubjectSpec(common_name=common_name, organization=organization),
            [parse_san(s) for s in sans],
        )
        cert = sign_csr(
            csr,
            issuer=self.issuer,
            issuer_key=self.issuer_key,
            profile=profile,
            now=now or self.now,
            validity=validity,
            urls=self.urls,
        )
        return Identity(certificate=cert, chain=(cert, *self.intermediates), key=key)

    def crl(
        self,
        revoked: Sequence[x509.Certificate],
        *,
        now: datetime | None = None,
        next_update: timedelta = timedelta(days=7),
    ) -> x509.CertificateRevocationList:
        """A CRL from the issuing CA listing ``revoked``."""
        at = now or datetime.now(UTC)
        return build_crl(
            issuer=self.issuer,
            issuer_key=self.issuer_key,
            revoked=[
                RevokedEntry(serial=c.serial_number, revoked_at=at - timedelta(minutes=1))
                for c in revoked
            ],
            now=at,
            next_update=next_update,
            crl_number=1,
        )
