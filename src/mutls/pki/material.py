"""The value every loader returns: a leaf, its chain leaf-first, a private key, and findings.

A ``Material`` never raises on its own: a key that does not match, or a chain that was stored out
of order, is recorded as a ``Finding`` so that ``inspect`` can show it. Callers that need a usable
identity call :meth:`Material.require_identity`, which turns the findings into errors.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cryptography import x509

from mutls.errors import MissingPrivateKey, NotACertificate
from mutls.pki.keys import SigningKey, match_key

__all__ = ["Finding", "Material", "Severity", "SourceFormat"]


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class SourceFormat(enum.StrEnum):
    PEM = "pem"
    DER = "der"
    PKCS12 = "pkcs12"
    PKCS7 = "pkcs7"
    BASE64 = "base64"  # DER wrapped in bare base64 without PEM armour, as some portals serve it


@dataclass(frozen=True, kw_only=True)
class Finding:
    """Something worth telling the user about loaded material. ``code`` is an error code."""

    code: str
    severity: Severity
    message: str
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(frozen=True, kw_only=True)
class Material:
    """Certificate material as loaded from one input.

    ``chain`` starts with ``leaf`` and follows issuers upward as far as the input goes.
    ``extra_certificates`` are certificates in the input that are not on the leaf's chain.
    """

    source_format: SourceFormat
    leaf: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()
    extra_certificates: tuple[x509.Certificate, ...] = ()
    key: SigningKey | None = field(default=None, repr=False)  # never in a repr or a log
    csr: x509.CertificateSigningRequest | None = None
    key_was_encrypted: bool = False
    findings: tuple[Finding, ...] = ()

    @property
    def has_private_key(self) -> bool:
        return self.key is not None

    @property
    def key_matches(self) -> bool | None:
        """True or False when there is both a leaf and a key; None when one is missing."""
        if self.leaf is None or self.key is None:
            return None
        return match_key(self.leaf, self.key).matches

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        return self.chain[1:]

    def finding(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    def require_certificate(self) -> x509.Certificate:
        if self.leaf is None:
            found = "a private key" if self.key is not None else "no certificate"
            if self.csr is not None:
                found = "a certificate signing request (CSR)"
            raise NotACertificate(f"expected a certificate; the input holds {found}")
        return self.leaf

    def require_key(self) -> SigningKey:
        if self.key is None:
            raise MissingPrivateKey("expected a private key; the input holds none")
        return self.key

    def require_identity(self) -> tuple[x509.Certificate, SigningKey]:
        """The leaf and its matching key, or the error that stops them being used for TLS."""
        leaf = self.require_certificate()
        key = self.require_key()
        match_key(leaf, key).raise_for_mismatch()
        return leaf, key
