"""Verify a certificate chain for a purpose, and explain the first thing that is wrong.

Two layers. First, mutls builds the path itself and checks each link in the order a person would:
issuer found, validity at ``at``, CA flags, key strength, purpose, name, revocation. That produces
the precise error (``missing_intermediate``, ``certificate_expired`` on the intermediate, ...).
Then the chain is confirmed by cryptography's RFC 5280 verifier (the same engine pyca ships for
production use), so mutls never accepts a chain a strict verifier would refuse.
"""

from __future__ import annotations

import enum
import ipaddress
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mutls.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    ChainInvalid,
    ChainOutOfOrder,
    CRLExpired,
    MissingIntermediate,
    NameMismatch,
    NotACA,
    UnknownIssuer,
    WeakKey,
    WrongKeyUsage,
)
from mutls.pki.chain import is_self_signed, issued_by
from mutls.pki.inspect import name_to_text, serial_hex
from mutls.pki.keys import key_weakness

__all__ = ["Purpose", "VerifiedChain", "check_chain_order", "verify_chain"]

_MAX_DEPTH = 8


class Purpose(enum.StrEnum):
    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True, kw_only=True)
class VerifiedChain:
    chain: tuple[x509.Certificate, ...]  # leaf first, ending at the trust anchor
    purpose: Purpose
    at: datetime
    hostname: str | None
    crl_checked: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "valid": True,
            "purpose": self.purpose.value,
            "at": self.at.isoformat(),
            "hostname": self.hostname,
            "crl_checked": self.crl_checked,
            "chain": [
                {"subject": name_to_text(c.subject), "serial": serial_hex(c.serial_number)}
                for c in self.chain
            ],
        }


def _label(cert: x509.Certificate) -> str:
    return f"{name_to_text(cert.subject)} (serial {serial_hex(cert.serial_number)})"


def check_chain_order(certificates: Sequence[x509.Certificate]) -> None:
    """Raise :class:`ChainOutOfOrder` unless each certificate is followed by its issuer."""
    for position in range(len(certificates) - 1):
        child, parent = certificates[position], certificates[position + 1]
        if not issued_by(child, parent):
            raise ChainOutOfOrder(
                f"certificate {position + 2} in the file, {_label(parent)}, did not issue "
                f"certificate {position + 1}, {_label(child)}; TLS expects each certificate to "
                "be followed by its issuer"
            )


def verify_chain(
    leaf: x509.Certificate,
    *,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    purpose: Purpose = Purpose.CLIENT,
    at: datetime,
    crls: Sequence[x509.CertificateRevocationList] = (),
    hostname: str | None = None,
) -> VerifiedChain:
    """The verified chain, or the :class:`~mutls.errors.CertificateError` that explains why not."""
    path = _build_path(leaf, anchors, intermediates)
    for position, cert in enumerate(path):
        _check_time(cert, position, at)
    for position, cert in enumerate(path):
        weakness = key_weakness(cert.public_key())
        if weakness:
            where = "the certificate" if position == 0 else f"CA {_label(cert)}"
            raise WeakKey(f"{where} has a weak key: {weakness}")
    for position, cert in enumerate(path[1:], start=1):
        _check_ca(cert, position, path)
    _check_purpose(leaf, purpose)
    if hostname is not None:
        _check_hostname(leaf, hostname)
    crl_checked = _check_revocation(path, crls, at)
    _confirm_with_library(
        leaf,
        anchors=anchors,
        intermediates=intermediates,
        purpose=purpose,
        at=at,
        hostname=hostname,
    )
    return VerifiedChain(
        chain=tuple(path), purpose=purpose, at=at, hostname=hostname, crl_checked=crl_checked
    )


def _build_path(
    leaf: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
) -> list[x509.Certificate]:
    path = [leaf]
    current = leaf
    pool = [c for c in intermediates if c != leaf]
    while len(path) <= _MAX_DEPTH:
        if current in anchors:
            return path
        anchor = next((a for a in anchors if issued_by(current, a)), None)
        if anchor is not None:
            if anchor != current:
                path.append(anchor)
            return path
        parent = next((c for c in pool if issued_by(current, c) and c not in path), None)
        if parent is None:
            raise _dangling(current, leaf, anchors)
        path.append(parent)
        current = parent
    raise ChainInvalid(f"the chain is longer than {_MAX_DEPTH} certificates")


def _dangling(
    current: x509.Certificate, leaf: x509.Certificate, anchors: Sequence[x509.Certificate]
) -> Exception:
    issuer_name = name_to_text(current.issuer)
    where = (
        "the certificate" if current is leaf else f"the chain's top certificate {_label(current)}"
    )
    if is_self_signed(current):
        return UnknownIssuer(
            f"{where} is self-signed ({issuer_name}) and is not in the CA bundle",
        )
    same_name = [a for a in anchors if a.subject == current.issuer]
    if same_name:
        return UnknownIssuer(
            f"the CA bundle has a CA named {issuer_name}, but its key did not sign {where}: "
            "the CA was re-keyed, or this certificate comes from a different CA with the same name",
            hint="get the current CA certificate from the issuer and put it in the CA bundle",
        )
    if current is leaf and _looks_like_intermediate_of(current.issuer, anchors):
        return MissingIntermediate(
            f"the issuer of the certificate, {issuer_name}, is neither in the chain nor in the "
            "CA bundle; it looks like an intermediate CA under a CA you trust"
        )
    return UnknownIssuer(
        f"{where} was issued by {issuer_name}, which is not in the CA bundle "
        f"(the bundle holds {', '.join(name_to_text(a.subject) for a in anchors) or 'nothing'})",
        hint="add the issuing CA's root certificate to the CA bundle (--ca); if the issuer is an "
        "intermediate, append it after the leaf",
    )


def _organization(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    value = attrs[0].value if attrs else None
    return value if isinstance(value, str) else None


def _looks_like_intermediate_of(issuer: x509.Name, anchors: Sequence[x509.Certificate]) -> bool:
    """Same organisation as a trusted root: most likely that root's intermediate, not sent."""
    org = _organization(issuer)
    return org is not None and any(_organization(a.subject) == org for a in anchors)


def _check_time(cert: x509.Certificate, position: int, at: datetime) -> None:
    where = "the certificate" if position == 0 else f"CA certificate {_label(cert)}"
    serial = serial_hex(cert.serial_number)
    if at >= cert.not_valid_after_utc:
        hint = None if position == 0 else "the CA must publish a renewed intermediate; install it"
        raise CertificateExpired(
            f"{where} (serial {serial}) expired on {cert.not_valid_after_utc.isoformat()}; "
            f"checked at {at.isoformat()}",
            hint=hint,
        )
    if at < cert.not_valid_before_utc:
        raise CertificateNotYetValid(
            f"{where} (serial {serial}) is valid only from "
            f"{cert.not_valid_before_utc.isoformat()}; checked at {at.isoformat()}"
        )


def _check_ca(cert: x509.Certificate, position: int, path: list[x509.Certificate]) -> None:
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is None or not basic.ca:
        raise NotACA(f"{_label(cert)} issued another certificate but is not a CA (no CA:TRUE)")
    below = position - 1  # CA certificates between this one and the leaf
    intermediates_below = sum(1 for c in path[1:position] if not is_self_signed(c))
    if basic.path_length is not None and intermediates_below > basic.path_length:
        raise ChainInvalid(
            f"CA {_label(cert)} allows {basic.path_length} intermediate(s) below it; "
            f"the chain has {below}"
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise NotACA(f"CA {_label(cert)} lacks keyUsage keyCertSign")


def _check_purpose(leaf: x509.Certificate, purpose: Purpose) -> None:
    wanted = (
        ExtendedKeyUsageOID.CLIENT_AUTH
        if purpose is Purpose.CLIENT
        else ExtendedKeyUsageOID.SERVER_AUTH
    )
    try:
        eku = list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = None
    name = "clientAuth" if purpose is Purpose.CLIENT else "serverAuth"
    if (
        eku is not None
        and wanted not in eku
        and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku
    ):
        found = ", ".join(getattr(o, "_name", o.dotted_string) for o in eku) or "none"
        raise WrongKeyUsage(
            f"a {purpose.value} certificate needs extendedKeyUsage {name}; found {found}",
            hint=None
            if purpose is Purpose.CLIENT
            else "ask the CA for a server profile certificate",
        )
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.digital_signature or usage.key_encipherment or usage.key_agreement):
        raise WrongKeyUsage(
            f"a {purpose.value} certificate needs keyUsage digitalSignature; the certificate's "
            "key usage does not allow TLS authentication"
        )


def _check_hostname(leaf: x509.Certificate, hostname: str) -> None:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise NameMismatch(
            f"expected {hostname} in the certificate's subjectAltName; it has no subjectAltName"
        ) from None
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        address = None
    if address is not None:
        if address in san.get_values_for_type(x509.IPAddress):
            return
    else:
        for pattern in san.get_values_for_type(x509.DNSName):
            if _dns_match(pattern, hostname):
                return
    names = ", ".join(str(n.value) for n in san) or "none"
    raise NameMismatch(f"expected {hostname} in the certificate's names; it names {names}")


def _dns_match(pattern: str, hostname: str) -> bool:
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = hostname.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == hostname


def _check_revocation(
    path: list[x509.Certificate], crls: Sequence[x509.CertificateRevocationList], at: datetime
) -> bool:
    if not crls:
        return False
    checked = False
    for child, issuer in itertools.pairwise(path):
        for crl in crls:
            if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                continue
            checked = True
            next_update = crl.next_update_utc
            if next_update is not None and next_update < at:
                raise CRLExpired(
                    f"the CRL from {name_to_text(issuer.subject)} expired on "
                    f"{next_update.isoformat()}; checked at {at.isoformat()}"
                )
            entry = crl.get_revoked_certificate_by_serial_number(child.serial_number)
            if entry is None:
                continue
            when = entry.revocation_date_utc.isoformat()
            if entry.revocation_date_utc > at:
                continue
            try:
                reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
            except x509.ExtensionNotFound:
                reason = "unspecified"
            where = "the certificate" if child is path[0] else f"CA {_label(child)}"
            raise CertificateRevoked(
                f"{where} (serial {serial_hex(child.serial_number)}) was revoked on {when}, "
                f"reason {reason}"
            )
    return checked


def _confirm_with_library(
    leaf: x509.Certificate,
    *,
    anchors: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    purpose: Purpose,
    at: datetime,
    hostname: str | None,
) -> None:
    builder = verification.PolicyBuilder().store(verification.Store(list(anchors))).time(at)
    try:
        if purpose is Purpose.CLIENT:
            # Private client PKIs (and OpenSSL's own tutorials) often issue client certificates
            # without a subjectAltName; OpenSSL accepts them, so the SAN is optional for clients
            # only. Servers keep the full WebPKI profile, where the SAN is mandatory.
            ee_policy = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
                x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
            )
            builder = builder.extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy
            )
            builder.build_client_verifier().verify(leaf, list(intermediates))
        elif hostname is not None:
            subject: verification.Subject
            try:
                subject = x509.IPAddress(ipaddress.ip_address(hostname))
            except ValueError:
                subject = x509.DNSName(hostname.rstrip("."))
            builder.build_server_verifier(subject).verify(leaf, list(intermediates))
    except verification.VerificationError as exc:
        raise ChainInvalid(
            f"the chain passed mutls's checks but the RFC 5280 verifier refused it: {exc}"
        ) from None
