"""Certificate authority operations as pure functions: build CA certificates, sign CSRs, build CRLs.

Time comes in as ``now``. Keys come in as objects. Where the keys live and how serials are tracked
is the caller's business (the offline CA directory, later the database-backed CA).

Extension choices follow RFC 5280 and what strict verifiers (OpenSSL, Go, rustls, the CA/Browser
Forum profile) expect:

* CA certificates: ``basicConstraints`` critical with CA:TRUE and a path length, ``keyUsage``
  critical with keyCertSign and cRLSign (and digitalSignature so the CA can sign OCSP responses
  itself), SKI, and AKI except on self-signed roots.
* End-entity certificates: ``basicConstraints`` CA:FALSE critical, ``keyUsage`` critical with
  digitalSignature (plus keyEncipherment for RSA server keys, needed by TLS 1.2 RSA key exchange),
  one EKU for the profile, SKI, AKI, SANs copied from the CSR (the CN added as a DNS SAN when the
  CSR has none, since modern verifiers ignore the CN), and CRL/AIA URLs when configured.
* Validity starts five minutes in the past so a client with a slightly slow clock can use a new
  certificate at once.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from mutls.errors import InvalidArgument, KeyMismatch, NotACA
from mutls.pki.keys import match_key
from mutls.policy.issuance import is_fqdn, is_hostname

__all__ = [
    "BACKDATE",
    "IssuerUrls",
    "PreparedIssuer",
    "Profile",
    "RevocationReason",
    "RevokedEntry",
    "build_ca_certificate",
    "build_crl",
    "prepare_issuer",
    "require_ca",
    "sign_csr",
]

BACKDATE = timedelta(minutes=5)


class Profile(enum.StrEnum):
    """What an end-entity certificate is for."""

    CLIENT = "client"  # mTLS client: EKU clientAuth
    SERVER = "server"  # TLS server: EKU serverAuth


class RevocationReason(enum.StrEnum):
    """RFC 5280 CRLReason values that make sense for an operator to choose."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "cACompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"

    def to_flag(self) -> x509.ReasonFlags:
        return {
            RevocationReason.UNSPECIFIED: x509.ReasonFlags.unspecified,
            RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
            RevocationReason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
            RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
            RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
            RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
            RevocationReason.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
            RevocationReason.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
        }[self]


@dataclass(frozen=True, kw_only=True)
class IssuerUrls:
    """Where relying parties find revocation data and the issuer certificate."""

    crl: str | None = None
    ocsp: str | None = None
    ca_issuers: str | None = None


def _algorithm(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    # EdDSA signs the message itself; every other key type signs a SHA-256 digest.
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def build_ca_certificate(
    *,
    subject: x509.Name,
    public_key: CertificateIssuerPublicKeyTypes,
    signing_key: CertificateIssuerPrivateKeyTypes,
    issuer: x509.Certificate | None,
    now: datetime,
    validity: timedelta,
    path_length: int | None,
    serial: int | None = None,
    urls: IssuerUrls | None = None,
) -> x509.Certificate:
    """A root (``issuer`` None: self-signed) or an intermediate CA certificate."""
    if issuer is not None:
        require_ca(issuer)
        if not match_key(issuer, signing_key).matches:
            raise KeyMismatch("the signing key does not belong to the issuing CA certificate")
        if now + validity > issuer.not_valid_after_utc:
            validity = issuer.not_valid_after_utc - now  # never outlive the issuer
    issuer_name = issuer.subject if issuer is not None else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(_aki(issuer), critical=False)
        builder = _add_urls(builder, urls)
    return builder.sign(signing_key, _algorithm(signing_key))


@dataclass(frozen=True, kw_only=True, eq=False)
class PreparedIssuer:
    """An issuing CA checked once (CA flag, key match) with what every signature reuses.

    Made by :func:`prepare_issuer`. A service that signs many CSRs with one CA keeps one of these
    instead of repeating the checks (a key match serialises both public keys) per certificate.
    """

    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes = field(repr=False)
    subject: x509.Name
    not_after: datetime
    authority_key_identifier: x509.AuthorityKeyIdentifier
    algorithm: hashes.SHA256 | None

    def sign_csr(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        profile: Profile,
        now: datetime,
        validity: timedelta,
        serial: int | None = None,
        urls: IssuerUrls | None = None,
    ) -> x509.Certificate:
        """An end-entity certificate for the CSR's subject and key. Policy is checked by the
        caller."""
        not_after = now + validity
        if not_after > self.not_after:
            raise InvalidArgument(
                f"the certificate would outlive its issuing CA: requested until "
                f"{not_after.date().isoformat()}, the CA expires on "
                f"{self.not_after.date().isoformat()}",
                hint="request a shorter validity, or renew the CA first",
            )
        public_key = csr.public_key()
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        client = profile is Profile.CLIENT
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.subject)
            .public_key(public_key)
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(_END_ENTITY, critical=True)
            .add_extension(_key_usage(key_encipherment=is_rsa and not client), critical=True)
            .add_extension(_CLIENT_EKU if client else _SERVER_EKU, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self.authority_key_identifier, critical=False)
        )
        sans = _sans_for(csr, profile)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        for extension in _url_extensions(urls):
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(self.key, self.algorithm)


def prepare_issuer(
    issuer: x509.Certificate, issuer_key: CertificateIssuerPrivateKeyTypes
) -> PreparedIssuer:
    """Check that ``issuer`` is a CA and ``issuer_key`` its key, once, for many signatures."""
    require_ca(issuer)
    if not match_key(issuer, issuer_key).matches:
        raise KeyMismatch("the CA's private key does not belong to the CA certificate")
    return PreparedIssuer(
        certificate=issuer,
        key=issuer_key,
        subject=issuer.subject,
        not_after=issuer.not_valid_after_utc,
        authority_key_identifier=_aki(issuer),
        algorithm=_algorithm(issuer_key),
    )


def sign_csr(
    csr: x509.CertificateSigningRequest,
    *,
    issuer: x509.Certificate,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    profile: Profile,
    now: datetime,
    validity: timedelta,
    serial: int | None = None,
    urls: IssuerUrls | None = None,
) -> x509.Certificate:
    """An end-entity certificate for the CSR's subject and key. Policy is checked by the caller."""
    return prepare_issuer(issuer, issuer_key).sign_csr(
        csr, profile=profile, now=now, validity=validity, serial=serial, urls=urls
    )


_END_ENTITY = x509.BasicConstraints(ca=False, path_length=None)
_CLIENT_EKU = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
_SERVER_EKU = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])


@functools.cache
def _key_usage(*, key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _sans_for(csr: x509.CertificateSigningRequest, profile: Profile) -> list[x509.GeneralName]:
    try:
        return list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        pass
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    # Servers may be named by a single label such as localhost; client CNs must be FQDNs.
    is_name = is_hostname if profile is Profile.SERVER else is_fqdn
    if names and isinstance(names[0].value, str) and is_name(names[0].value):
        return [x509.DNSName(names[0].value)]
    return []


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _add_urls(builder: x509.CertificateBuilder, urls: IssuerUrls | None) -> x509.CertificateBuilder:
    for extension in _url_extensions(urls):
        builder = builder.add_extension(extension, critical=False)
    return builder


@functools.lru_cache(maxsize=64)
def _url_extensions(urls: IssuerUrls | None) -> tuple[x509.ExtensionType, ...]:
    """CRL distribution point and AIA for ``urls``; built once per distinct set of URLs."""
    if urls is None:
        return ()
    out: list[x509.ExtensionType] = []
    if urls.crl:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(urls.crl)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        out.append(x509.CRLDistributionPoints([point]))
    access: list[x509.AccessDescription] = []
    if urls.ocsp:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp)
            )
        )
    if urls.ca_issuers:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(urls.ca_issuers),
            )
        )
    if access:
        out.append(x509.AuthorityInformationAccess(access))
    return tuple(out)


def require_ca(certificate: x509.Certificate) -> None:
    """Raise :class:`~mutls.errors.NotACA` unless ``certificate`` has basicConstraints CA:TRUE."""
    try:
        basic = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is None or not basic.ca:
        raise NotACA(
            f"expected a CA certificate; {certificate.subject.rfc4514_string()} has no "
            "basicConstraints CA:TRUE"
        )


@dataclass(frozen=True, kw_only=True)
class RevokedEntry:
    serial: int
    revoked_at: datetime
    reason: RevocationReason = RevocationReason.UNSPECIFIED


def build_crl(
    *,
    issuer: x509.Certificate,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    revoked: Sequence[RevokedEntry],
    now: datetime,
    next_update: timedelta,
    crl_number: int,
) -> x509.CertificateRevocationList:
    """A CRL v2 with CRL number and AKI (both required by RFC 5280 section 5.2)."""
    require_ca(issuer)
    if not match_key(issuer, issuer_key).matches:
        # A CRL signed by the wrong key is silently ignored by every verifier: refuse it here.
        raise KeyMismatch("the CRL signing key does not belong to the issuing CA certificate")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now)
        .next_update(now + next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(_aki(issuer), critical=False)
    )
    for entry in revoked:
        item = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        if entry.reason is not RevocationReason.UNSPECIFIED:
            # RFC 5280: the reason code extension is absent rather than "unspecified".
            item = item.add_extension(x509.CRLReason(entry.reason.to_flag()), critical=False)
        builder = builder.add_revoked_certificate(item.build())
    return builder.sign(issuer_key, _algorithm(issuer_key))
