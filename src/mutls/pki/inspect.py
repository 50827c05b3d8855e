"""Describe certificates, keys and CSRs for people and programs.

Pure: everything time-dependent takes ``now``. The ``to_dict`` shapes are the stable JSON of
``mutls cert inspect --json``; add keys, never rename or remove them.
"""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mutls.pki.chain import is_self_signed
from mutls.pki.keys import KeyInfo, describe_public_key, key_weakness, spki_pin
from mutls.pki.material import Finding, Material, Severity

__all__ = [
    "URGENT_DAYS",
    "WARNING_DAYS",
    "CertificateReport",
    "ExpiryStatus",
    "MaterialReport",
    "describe_certificate",
    "expiry_status",
    "inspect_material",
    "name_to_text",
]

_E = TypeVar("_E", bound=x509.ExtensionType)

WARNING_DAYS = 90
URGENT_DAYS = 30

_EKU_NAMES = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}
_KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
_KEY_USAGE_NAMES = {
    "digital_signature": "digitalSignature",
    "content_commitment": "nonRepudiation",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
}


class ExpiryStatus(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"  # within WARNING_DAYS
    URGENT = "urgent"  # within URGENT_DAYS
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


def expiry_status(
    certificate: x509.Certificate,
    now: datetime,
    *,
    warning_days: int = WARNING_DAYS,
    urgent_days: int = URGENT_DAYS,
) -> tuple[ExpiryStatus, int]:
    """The certificate's status at ``now`` and whole days until notAfter (negative when past)."""
    not_after = certificate.not_valid_after_utc
    days = int((not_after - now).total_seconds() // 86400)
    if now < certificate.not_valid_before_utc:
        return ExpiryStatus.NOT_YET_VALID, days
    if now >= not_after:
        return ExpiryStatus.EXPIRED, days
    if days < urgent_days:
        return ExpiryStatus.URGENT, days
    if days < warning_days:
        return ExpiryStatus.WARNING, days
    return ExpiryStatus.OK, days


def name_to_text(name: x509.Name) -> str:
    """RFC 4514 form, most significant first as people read it (``CN=..., O=..., C=..``)."""
    return name.rfc4514_string()


def _common_name(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else None
    return value if isinstance(value, str) else None


@dataclass(frozen=True, kw_only=True)
class CertificateReport:
    subject: str
    subject_common_name: str | None
    issuer: str
    serial: str  # upper-case hex, no separators, as openssl prints it
    not_before: datetime
    not_after: datetime
    days_remaining: int
    expiry_status: ExpiryStatus
    subject_alt_names: tuple[str, ...]  # "DNS:host", "IP:1.2.3.4", "URI:...", "email:..."
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    is_ca: bool
    path_length: int | None
    self_signed: bool
    key: KeyInfo
    signature_algorithm: str
    sha256_fingerprint: str  # colon-separated upper-case hex, as browsers and openssl show it
    spki_sha256: str  # base64 pin

    def to_dict(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "subject_common_name": self.subject_common_name,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_remaining": self.days_remaining,
            "expiry_status": self.expiry_status.value,
            "subject_alt_names": list(self.subject_alt_names),
            "key_usage": list(self.key_usage),
            "extended_key_usage": list(self.extended_key_usage),
            "is_ca": self.is_ca,
            "path_length": self.path_length,
            "self_signed": self.self_signed,
            "key_type": self.key.type,
            "key_size": self.key.size,
            "key_curve": self.key.curve,
            "public_key_sha256": self.key.public_key_sha256,
            "signature_algorithm": self.signature_algorithm,
            "sha256_fingerprint": self.sha256_fingerprint,
            "spki_sha256": self.spki_sha256,
        }


def sha256_fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def serial_hex(serial: int) -> str:
    """Upper-case hex padded to whole bytes, as ``openssl x509 -serial`` prints it."""
    text = format(serial, "X")
    return text.zfill(len(text) + len(text) % 2)


def describe_certificate(certificate: x509.Certificate, now: datetime) -> CertificateReport:
    status, days = expiry_status(certificate, now)
    basic = _extension(certificate, x509.BasicConstraints)
    return CertificateReport(
        subject=name_to_text(certificate.subject),
        subject_common_name=_common_name(certificate.subject),
        issuer=name_to_text(certificate.issuer),
        serial=serial_hex(certificate.serial_number),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        days_remaining=days,
        expiry_status=status,
        subject_alt_names=_sans(certificate),
        key_usage=key_usage_names(certificate),
        extended_key_usage=extended_key_usage_names(certificate),
        is_ca=bool(basic and basic.ca),
        path_length=basic.path_length if basic else None,
        self_signed=is_self_signed(certificate),
        key=describe_public_key(certificate.public_key()),
        signature_algorithm=_signature_algorithm(certificate),
        sha256_fingerprint=sha256_fingerprint(certificate),
        spki_sha256=spki_pin(certificate.public_key()),
    )


def _extension(certificate: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension: report it as absent rather than crash
        return None


def key_usage_names(certificate: x509.Certificate) -> tuple[str, ...]:
    usage = _extension(certificate, x509.KeyUsage)
    if usage is None:
        return ()
    names = [_KEY_USAGE_NAMES[flag] for flag in _KEY_USAGE_FLAGS if getattr(usage, flag)]
    if usage.key_agreement:
        if usage.encipher_only:
            names.append("encipherOnly")
        if usage.decipher_only:
            names.append("decipherOnly")
    return tuple(names)


def extended_key_usage_names(certificate: x509.Certificate) -> tuple[str, ...]:
    eku = _extension(certificate, x509.ExtendedKeyUsage)
    if eku is None:
        return ()
    return tuple(_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku)


def _sans(certificate: x509.Certificate) -> tuple[str, ...]:
    san = _extension(certificate, x509.SubjectAlternativeName)
    return () if san is None else general_names_text(san)


def general_names_text(san: x509.SubjectAlternativeName) -> tuple[str, ...]:
    """``DNS:host``, ``IP:addr``, ``URI:u``, ``email:a``: the form openssl and browsers show."""
    out: list[str] = []
    for general_name in san:
        if isinstance(general_name, x509.DNSName):
            out.append(f"DNS:{general_name.value}")
        elif isinstance(general_name, x509.IPAddress):
            out.append(f"IP:{general_name.value}")
        elif isinstance(general_name, x509.UniformResourceIdentifier):
            out.append(f"URI:{general_name.value}")
        elif isinstance(general_name, x509.RFC822Name):
            out.append(f"email:{general_name.value}")
        elif isinstance(general_name, x509.DirectoryName):
            out.append(f"DirName:{general_name.value.rfc4514_string()}")
        else:
            out.append(f"other:{type(general_name).__name__}")
    return tuple(out)


def _signature_algorithm(certificate: x509.Certificate) -> str:
    oid = certificate.signature_algorithm_oid
    return getattr(oid, "_name", None) or oid.dotted_string


@dataclass(frozen=True, kw_only=True)
class MaterialReport:
    """``mutls cert inspect``: the leaf, the chain, the key and what is wrong."""

    kind: str  # "certificate", "private_key" or "csr"
    source_format: str
    certificate: CertificateReport | None
    chain: tuple[CertificateReport, ...]
    key: KeyInfo | None
    has_private_key: bool
    key_was_encrypted: bool
    key_matches: bool | None
    csr_subject: str | None
    csr_key: KeyInfo | None
    csr_subject_alt_names: tuple[str, ...]
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"kind": self.kind, "source_format": self.source_format}
        if self.certificate is not None:
            data.update(self.certificate.to_dict())
        data["has_private_key"] = self.has_private_key
        data["key_was_encrypted"] = self.key_was_encrypted
        data["key_matches"] = self.key_matches
        data["private_key"] = self.key.to_dict() if self.key else None
        if self.csr_subject is not None:
            data["csr"] = {
                "subject": self.csr_subject,
                "subject_alt_names": list(self.csr_subject_alt_names),
                "public_key": self.csr_key.to_dict() if self.csr_key else None,
            }
        data["chain"] = [
            {
                "subject": c.subject,
                "issuer": c.issuer,
                "serial": c.serial,
                "not_before": c.not_before.isoformat(),
                "not_after": c.not_after.isoformat(),
                "days_remaining": c.days_remaining,
                "expiry_status": c.expiry_status.value,
                "is_ca": c.is_ca,
                "self_signed": c.self_signed,
                "sha256_fingerprint": c.sha256_fingerprint,
            }
            for c in self.chain
        ]
        data["findings"] = [f.to_dict() for f in self.findings]
        return data


def inspect_material(material: Material, now: datetime) -> MaterialReport:
    # Library warnings about odd encodings were turned into findings when the input was loaded.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _inspect(material, now)


def _inspect(material: Material, now: datetime) -> MaterialReport:
    findings = list(material.findings)
    chain = tuple(describe_certificate(c, now) for c in material.chain)
    leaf = chain[0] if chain else None
    for position, report in enumerate(chain):
        findings.extend(_time_findings(report, "leaf" if position == 0 else f"chain[{position}]"))
    certs = list(material.chain)
    for position, cert in enumerate(certs):
        weakness = key_weakness(cert.public_key())
        if weakness:
            where = "the leaf" if position == 0 else f"chain certificate {position}"
            findings.append(
                Finding(code="weak_key", severity=Severity.ERROR, message=f"{where}: {weakness}")
            )
    if leaf is not None and not leaf.is_ca and not leaf.self_signed and len(chain) == 1:
        findings.append(
            Finding(
                code="chain_incomplete",
                severity=Severity.INFO,
                message="only the leaf is present; its issuer is not in the input",
                hint="servers that do not already hold the intermediate need it sent too: "
                "append the CA chain after the leaf",
            )
        )
    key_info = describe_public_key(material.key.public_key()) if material.key else None
    csr = material.csr
    kind = "certificate" if leaf else ("csr" if csr is not None else "private_key")
    csr_key = describe_public_key(csr.public_key()) if csr is not None else None
    return MaterialReport(
        kind=kind,
        source_format=material.source_format.value,
        certificate=leaf,
        chain=chain,
        key=key_info,
        has_private_key=material.has_private_key,
        key_was_encrypted=material.key_was_encrypted,
        key_matches=material.key_matches,
        csr_subject=name_to_text(csr.subject) if csr is not None else None,
        csr_key=csr_key,
        csr_subject_alt_names=_csr_sans(csr) if csr is not None else (),
        findings=tuple(findings),
    )


def _csr_sans(csr: x509.CertificateSigningRequest) -> tuple[str, ...]:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    return general_names_text(san)


def _time_findings(report: CertificateReport, where: str) -> list[Finding]:
    status = report.expiry_status
    date = report.not_after.date().isoformat()
    if status is ExpiryStatus.EXPIRED:
        return [
            Finding(
                code="certificate_expired",
                severity=Severity.ERROR,
                message=f"{where} (serial {report.serial}) expired on {date}",
                hint="renew it: a new CSR signed by the same CA",
            )
        ]
    if status is ExpiryStatus.NOT_YET_VALID:
        return [
            Finding(
                code="certificate_not_yet_valid",
                severity=Severity.ERROR,
                message=f"{where} (serial {report.serial}) is valid only from "
                f"{report.not_before.isoformat()}",
                hint="check this machine's clock",
            )
        ]
    if status in (ExpiryStatus.URGENT, ExpiryStatus.WARNING):
        return [
            Finding(
                code=f"expires_soon_{status.value}",
                severity=Severity.WARNING,
                message=f"{where} (serial {report.serial}) expires in {report.days_remaining} "
                f"days, on {date}",
                hint="renew it before it expires",
            )
        ]
    return []


def leaf_names(leaf: x509.Certificate) -> list[str]:
    """The leaf's CN values and DNS SANs, lower case, without a trailing dot: the names an
    account CA's subject patterns are matched against."""
    names = [str(a.value).lower() for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return names
    return names + [n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName)]
