"""Write loaded material in the format the other side needs.

One function per output family. Passphrases are bytes; an encrypted output always uses a
passphrase given by the caller, never one made up here.

PKCS#12 profiles:

* ``modern``: AES-256-CBC with PBKDF2-SHA256 (PBES2) and a SHA-256 MAC, the OpenSSL 3 default.
  Read by OpenSSL 1.1.1+, Java 8u301+/11.0.12+, Windows 10 1709+/Server 2019, current macOS.
* ``legacy``: PBE-SHA1-3DES for keys and certificates and a SHA-1 MAC, for keystores that
  predate PBES2 (older Java, Windows Server 2016 and earlier, macOS Keychain up to 14). Still much
  stronger than the RC2-40 some tools default to, and readable by every PKCS#12 implementation.
"""

from __future__ import annotations

import enum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from mutls.errors import InvalidArgument
from mutls.pki.inspect import name_to_text
from mutls.pki.keys import SigningKey
from mutls.pki.material import Material

__all__ = [
    "ExportFormat",
    "P12Profile",
    "export_material",
    "private_key_pem",
]


class ExportFormat(enum.StrEnum):
    PEM = "pem"  # the leaf certificate
    DER = "der"  # the leaf certificate, binary
    CHAIN = "chain"  # leaf then issuers, PEM, in TLS order
    COMBINED = "combined"  # leaf, issuers, then the key: what curl --cert and seed 002 take
    KEY = "key"  # the private key as PKCS#8 PEM, encrypted when a passphrase is given
    P12 = "p12"  # PKCS#12 with key, leaf and issuers
    P7B = "p7b"  # PKCS#7 certificates-only bundle, PEM


class P12Profile(enum.StrEnum):
    MODERN = "modern"
    LEGACY = "legacy"


def private_key_pem(key: SigningKey, passphrase: bytes | None) -> bytes:
    """PKCS#8 PEM; encrypted (AES-256-CBC, PBKDF2) when ``passphrase`` is given."""
    encryption: serialization.KeySerializationEncryption
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase)
    else:
        encryption = serialization.NoEncryption()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _pem(certs: tuple[x509.Certificate, ...]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def export_material(
    material: Material,
    fmt: ExportFormat,
    *,
    passphrase: bytes | None = None,
    profile: P12Profile = P12Profile.MODERN,
    friendly_name: str | None = None,
) -> bytes:
    """``material`` in ``fmt``. ``passphrase`` encrypts the key (KEY, COMBINED) or the PKCS#12."""
    if fmt is ExportFormat.KEY:
        return private_key_pem(material.require_key(), passphrase)
    leaf = material.require_certificate()
    if fmt is ExportFormat.PEM:
        return leaf.public_bytes(serialization.Encoding.PEM)
    if fmt is ExportFormat.DER:
        return leaf.public_bytes(serialization.Encoding.DER)
    if fmt is ExportFormat.CHAIN:
        return _pem(material.chain)
    if fmt is ExportFormat.P7B:
        return pkcs7.serialize_certificates(list(material.chain), serialization.Encoding.PEM)
    leaf, key = material.require_identity()
    if fmt is ExportFormat.COMBINED:
        return _pem(material.chain) + private_key_pem(key, passphrase)
    if fmt is ExportFormat.P12:
        if not passphrase:
            raise InvalidArgument(
                "expected a passphrase for the PKCS#12 file; none was given",
                hint="give one with --out-passphrase-file FILE or MUTLS_OUT_PASSPHRASE; Java, "
                "Windows and macOS refuse to import PKCS#12 files without one",
            )
        encryption = _p12_encryption(profile, passphrase)
        name = (friendly_name or _default_name(leaf)).encode()
        return pkcs12.serialize_key_and_certificates(
            name,
            key,
            leaf,
            list(material.intermediates) or None,
            encryption,
        )
    raise InvalidArgument(f"unknown export format {fmt!r}")  # pragma: no cover - enum is closed


def _p12_encryption(
    profile: P12Profile, passphrase: bytes
) -> serialization.KeySerializationEncryption:
    builder = serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(50_000)
    if profile is P12Profile.LEGACY:
        return (
            builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
            .hmac_hash(hashes.SHA1())  # noqa: S303 - required by the legacy keystores it serves
            .build(passphrase)
        )
    return (
        builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(passphrase)
    )


def _default_name(leaf: x509.Certificate) -> str:
    return name_to_text(leaf.subject)
