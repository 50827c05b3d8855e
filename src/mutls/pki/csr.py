"""Build certificate signing requests. The subject rules live in :mod:`mutls.policy.issuance`."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from mutls.errors import InvalidArgument

__all__ = ["SubjectSpec", "build_csr", "build_name", "csr_like", "parse_san"]


@dataclass(frozen=True, kw_only=True)
class SubjectSpec:
    """The distinguished name of a CSR, in the fields a provider's CSR guide asks for."""

    common_name: str
    country: str | None = None
    state: str | None = None
    locality: str | None = None
    organization: str | None = None
    organizational_unit: str | None = None


def build_name(subject: SubjectSpec) -> x509.Name:
    pairs = [
        (NameOID.COUNTRY_NAME, subject.country),
        (NameOID.STATE_OR_PROVINCE_NAME, subject.state),
        (NameOID.LOCALITY_NAME, subject.locality),
        (NameOID.ORGANIZATION_NAME, subject.organization),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, subject.organizational_unit),
        (NameOID.COMMON_NAME, subject.common_name),
    ]
    attributes: list[x509.NameAttribute[str]] = []
    for oid, value in pairs:
        if value is None or value == "":
            continue
        try:
            attributes.append(x509.NameAttribute(oid, value))
        except ValueError as exc:
            # cryptography checks lengths (C must be 2 characters, CN at most 64).
            raise InvalidArgument(
                f"subject field {getattr(oid, '_name', oid.dotted_string)}={value!r} is not "
                f"valid: {exc}",
                hint="C is a two-letter code; other fields are at most 64 characters",
            ) from None
    return x509.Name(attributes)


def parse_san(text: str) -> x509.GeneralName:
    """``DNS:host``, ``IP:addr``, ``URI:uri``, ``email:addr``, or a bare name or address."""
    kind, sep, value = text.partition(":")
    if not sep or kind.lower() not in {"dns", "ip", "uri", "email"}:
        kind, value = "", text
    kind = kind.lower()
    if kind == "ip" or (not kind and _is_ip(value)):
        try:
            return x509.IPAddress(ipaddress.ip_address(value))
        except ValueError:
            raise InvalidArgument(f"expected an IP address in SAN {text!r}") from None
    if kind == "uri":
        return x509.UniformResourceIdentifier(value)
    if kind == "email":
        return x509.RFC822Name(value)
    if not value or not value.isascii():
        raise InvalidArgument(
            f"expected an ASCII DNS name in SAN {text!r}",
            hint="write internationalised names in their xn-- (punycode) form",
        )
    return x509.DNSName(value)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def build_csr(
    key: CertificateIssuerPrivateKeyTypes,
    subject: SubjectSpec,
    sans: Sequence[x509.GeneralName] = (),
) -> x509.CertificateSigningRequest:
    """A CSR signed by ``key``. Policy is checked by the caller with the same rules as signing."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(build_name(subject))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, _hash_for(key))


def csr_like(
    certificate: x509.Certificate, key: CertificateIssuerPrivateKeyTypes
) -> x509.CertificateSigningRequest:
    """A CSR signed by ``key`` for exactly the subject and SANs of ``certificate``: what a
    renewal asks for."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(certificate.subject)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        builder = builder.add_extension(san.value, critical=san.critical)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(key, _hash_for(key))


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    # EdDSA signs the message itself; every other key type signs its SHA-256.
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()
