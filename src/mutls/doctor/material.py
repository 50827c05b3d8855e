"""The offline half of the doctor: is our own certificate and key usable for a client handshake?

Run before any network step, since they need none: the material loads (passphrase), the key
belongs to the certificate, the certificate is valid at ``now``, it may be used for clientAuth,
and what chain we send. Seed 002's "Cannot decrypt private key" and 000's "Private key issues"
end here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from mutls.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    InvalidArgument,
    MutlsError,
    PassphraseRequired,
    WrongKeyUsage,
    WrongPassphrase,
)
from mutls.pki.chain import is_self_signed
from mutls.pki.inspect import name_to_text, serial_hex
from mutls.pki.loader import load_identity
from mutls.pki.material import Material

from .report import Step

__all__ = [
    "DOCTOR_PURPOSE",
    "ClientSource",
    "MaterialCheck",
    "chain_names",
    "check_material",
    "source_from_secret",
]

#: The purpose recorded in the audit log when the doctor decrypts a certificate secret.
DOCTOR_PURPOSE = "doctor"


@dataclass(frozen=True, kw_only=True)
class ClientSource:
    """Our client identity as given: a certificate file (PEM, DER, PKCS#12), maybe a separate key
    file, maybe a passphrase. ``origin`` names it for people (a path, or a secret and env)."""

    certificate: bytes = field(repr=False)
    key: bytes | None = field(default=None, repr=False)
    passphrase: bytes | None = field(default=None, repr=False)  # never in a repr or a report
    origin: str


@dataclass(frozen=True, kw_only=True)
class MaterialCheck:
    steps: tuple[Step, ...]
    material: Material | None  # set only when every step passed

    @property
    def ok(self) -> bool:
        return self.material is not None


_PASSPHRASE_HINT = {
    WrongPassphrase.code: "the key is encrypted and this passphrase does not open it: give the "
    "right one (--passphrase-file, $MUTLS_PASSPHRASE, or the secret's passphrase field); if it is "
    "lost, make a new key and CSR",
    PassphraseRequired.code: "the key is encrypted: give its passphrase with --passphrase-file "
    "or $MUTLS_PASSPHRASE (for a vault secret, store it in the secret's passphrase field)",
}


def check_material(source: ClientSource, *, now: datetime) -> MaterialCheck:
    """The offline steps for ``source``, stopping at the first that fails."""
    steps: list[Step] = []
    try:
        material = load_identity(source.certificate, source.key, source.passphrase)
    except MutlsError as error:
        steps.append(Step.failed("material.load", error, hint=_PASSPHRASE_HINT.get(error.code)))
        return MaterialCheck(steps=tuple(steps), material=None)
    encrypted = ", key decrypted with the passphrase" if material.key_was_encrypted else ""
    steps.append(
        Step.passed(
            "material.load",
            f"{source.origin}: {material.source_format.value}, "
            f"{len(material.chain)} certificate(s){encrypted}",
        )
    )
    try:
        leaf, _key = material.require_identity()
    except MutlsError as error:
        steps.append(Step.failed("material.key", error))
        return MaterialCheck(steps=tuple(steps), material=None)
    steps.append(Step.passed("material.key", "the private key belongs to the certificate"))
    for check in (_validity, _usage):
        step = check(leaf, now)
        steps.append(step)
        if not step.ok:
            return MaterialCheck(steps=tuple(steps), material=None)
    steps.append(_chain(material))
    return MaterialCheck(steps=tuple(steps), material=material)


def _validity(leaf: x509.Certificate, now: datetime) -> Step:
    serial = serial_hex(leaf.serial_number)
    if now >= leaf.not_valid_after_utc:
        return Step.failed(
            "material.validity",
            CertificateExpired(
                f"our client certificate (serial {serial}) expired on "
                f"{leaf.not_valid_after_utc.isoformat()}"
            ),
            hint="renew it (`mutls renew`, or ask the partner's CA for a new one) and use the "
            "new certificate; servers refuse it with the TLS alert certificate_expired",
        )
    if now < leaf.not_valid_before_utc:
        return Step.failed(
            "material.validity",
            CertificateNotYetValid(
                f"our client certificate (serial {serial}) is valid only from "
                f"{leaf.not_valid_before_utc.isoformat()}"
            ),
            hint="check this machine's clock, or wait until the certificate is valid",
        )
    days = (leaf.not_valid_after_utc - now).days
    return Step.passed(
        "material.validity",
        f"valid until {leaf.not_valid_after_utc.isoformat()} ({days} days left)",
        hint="renew soon: it expires within 30 days" if days < 30 else None,
    )


def _usage(leaf: x509.Certificate, now: datetime) -> Step:
    del now
    try:
        eku = list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return Step.passed("material.usage", "no extendedKeyUsage: any use, clientAuth included")
    if ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku:
        return Step.passed("material.usage", "extendedKeyUsage includes clientAuth")
    found = ", ".join(getattr(o, "_name", o.dotted_string) for o in eku) or "none"
    return Step.failed(
        "material.usage",
        WrongKeyUsage(f"expected clientAuth in our certificate's extendedKeyUsage; it has {found}"),
        hint="this is a server certificate (or one for another purpose); ask the CA for a client "
        "certificate (profile client, EKU clientAuth)",
    )


def _chain(material: Material) -> Step:
    leaf = material.chain[0]
    top = material.chain[-1]
    if len(material.chain) == 1 and not is_self_signed(leaf):
        return Step.passed(
            "material.chain",
            f"we send the leaf only; its issuer {name_to_text(leaf.issuer)} must be trusted by "
            "the server as is (a root), or be appended to the certificate file",
        )
    if is_self_signed(top):
        return Step.passed(
            "material.chain",
            f"we send {len(material.chain)} certificate(s), up to the root "
            f"{name_to_text(top.subject)}",
        )
    return Step.passed(
        "material.chain",
        f"we send {len(material.chain)} certificate(s): the leaf and "
        f"{len(material.chain) - 1} intermediate(s), up to {name_to_text(top.issuer)}",
    )


def chain_names(material: Material) -> tuple[x509.Name, ...]:
    """The issuers of what we send: a server that names one of them can anchor our chain."""
    return tuple(cert.issuer for cert in material.chain)


def source_from_secret(
    fields: dict[str, object], name: str, environment: str
) -> tuple[ClientSource, bytes | None]:
    """Our identity and the CA bundle (if any) from a certificate secret's fields."""

    def text(field: str) -> bytes | None:
        value = fields.get(field)
        return value.encode("utf-8") if isinstance(value, str) and value else None

    certificate = text("certificate_pem")
    if certificate is None:
        raise InvalidArgument(f"expected the secret {name!r} to hold certificate_pem; it does not")
    source = ClientSource(
        certificate=certificate,
        key=text("private_key_pem"),
        passphrase=text("passphrase"),
        origin=f"secret {name} ({environment})",
    )
    return source, text("ca_bundle_pem")
