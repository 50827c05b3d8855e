"""Load any certificate material a person is likely to have into one :class:`Material`.

Accepted: PEM (certificates, chains, PKCS#8 / PKCS#1 / SEC1 keys, encrypted PKCS#8, legacy
``Proc-Type: 4,ENCRYPTED`` keys, PKCS#7, CSRs; several blocks in any order), DER certificates,
keys and CSRs, PKCS#12 (.p12/.pfx, modern AES and legacy RC2/3DES), PKCS#7 (.p7b/.p7c), and DER in
bare base64. Whatever the input, the result is a value or one :class:`~mutls.errors.MutlsError`;
third-party exceptions never escape.

Sans-IO: bytes in, a value out. No files, no clock.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from mutls.errors import (
    InputTooLarge,
    MutlsError,
    PassphraseRequired,
    UnsupportedFormat,
    WrongPassphrase,
)
from mutls.pki.chain import order_chain
from mutls.pki.kdf_limits import MAX_PKCS12_ITERATIONS, MAX_TOTAL_ITERATIONS, kdf_iterations
from mutls.pki.keys import SigningKey, match_key, public_key_sha256, signing_key
from mutls.pki.material import Finding, Material, Severity, SourceFormat

__all__ = ["DEFAULT_MAX_INPUT", "load_certificates", "load_crl", "load_identity", "load_material"]

#: Largest input accepted. Real certificate material is kilobytes; a full public CA bundle is
#: about 250 KB. Anything bigger is the wrong file, and parsing it would only waste memory.
DEFAULT_MAX_INPUT = 4 * 1024 * 1024

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]{1,64})-----(.*?)-----END ([A-Z0-9 ]{1,64})-----", re.DOTALL
)
_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,64})-----")

_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE"}
_KEY_LABELS = {
    b"PRIVATE KEY",
    b"RSA PRIVATE KEY",
    b"EC PRIVATE KEY",
    b"DSA PRIVATE KEY",
    b"ENCRYPTED PRIVATE KEY",
}
_CSR_LABELS = {b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"}
_PKCS7_LABELS = {b"PKCS7", b"CMS"}
# Blocks that travel with material but carry nothing to load: skipped with a note.
_IGNORED_LABELS = {b"EC PARAMETERS", b"DH PARAMETERS", b"X509 CRL", b"PUBLIC KEY"}

_BASE64_ONLY = re.compile(rb"^[A-Za-z0-9+/=\s]+$")
# OID 1.2.840.113549.1.7.1 (pkcs7-data), the content type every PKCS#12 PFX starts with.
_PKCS7_DATA_OID = bytes.fromhex("06092a864886f70d010701")


@dataclass
class _Parts:
    """What was found in the input, before it is put together."""

    source_format: SourceFormat
    certificates: list[x509.Certificate] = field(default_factory=list)
    keys: list[SigningKey] = field(default_factory=list)
    csrs: list[x509.CertificateSigningRequest] = field(default_factory=list)
    encrypted: bool = False
    unordered: bool = False  # PKCS#7 holds a SET: its order means nothing, so never report it
    findings: list[Finding] = field(default_factory=list)


def load_material(
    data: bytes, passphrase: bytes | None = None, *, max_size: int = DEFAULT_MAX_INPUT
) -> Material:
    """Load certificates, a private key or a CSR from ``data``, whatever the format.

    ``passphrase`` decrypts an encrypted key or a PKCS#12 file; it is ignored (with a finding) when
    nothing is encrypted. Raises a :class:`~mutls.errors.MutlsError` subclass on bad input.
    """
    data = _as_bytes(data)
    with _translated() as noted:
        parts = _parse(data, passphrase, max_size=max_size)
        material = _assemble(parts, passphrase_given=passphrase is not None)
    return _with_notes(material, noted)


def load_identity(
    certificate_data: bytes,
    key_data: bytes | None = None,
    passphrase: bytes | None = None,
    *,
    max_size: int = DEFAULT_MAX_INPUT,
) -> Material:
    """Load a certificate (or chain) and, from a separate input, its private key.

    The key file's passphrase is ``passphrase``; a key already inside the certificate input is
    kept, and a second key is an error.
    """
    certificate_data = _as_bytes(certificate_data)
    key_data = None if key_data is None else _as_bytes(key_data)
    with _translated() as noted:
        material = _load_identity(certificate_data, key_data, passphrase, max_size=max_size)
    return _with_notes(material, noted)


def _load_identity(
    certificate_data: bytes, key_data: bytes | None, passphrase: bytes | None, *, max_size: int
) -> Material:
    parts = _parse(certificate_data, passphrase, max_size=max_size)
    if key_data is not None:
        key_parts = _parse(key_data, passphrase, max_size=max_size)
        if not key_parts.keys:
            what = _describe_parts(key_parts)
            raise UnsupportedFormat(
                f"expected a private key in the key file; found {what}",
                hint="pass the key file you generated together with the CSR",
            )
        parts.keys.extend(key_parts.keys)
        parts.encrypted = parts.encrypted or key_parts.encrypted
        parts.findings.extend(key_parts.findings)
    return _assemble(parts, passphrase_given=passphrase is not None)


def load_certificates(data: bytes, *, max_size: int = DEFAULT_MAX_INPUT) -> list[x509.Certificate]:
    """Every certificate in ``data``, in file order: for CA bundles and trust stores.

    Keys and CSRs in the input are an error: a trust bundle must never carry a private key.
    """
    data = _as_bytes(data)
    with _translated():
        try:
            parts = _parse(data, None, max_size=max_size, allow_encrypted=True)
        except PassphraseRequired:  # an encrypted DER key or a protected PKCS#12
            parts = _Parts(source_format=SourceFormat.DER, encrypted=True)
    if parts.keys or parts.encrypted:
        raise UnsupportedFormat(
            "expected only CA certificates; the bundle also contains a private key",
            hint="remove the private key: a CA bundle is public and is shared freely",
        )
    if not parts.certificates:
        raise UnsupportedFormat(
            f"expected one or more CA certificates; found {_describe_parts(parts)}",
            hint="a CA bundle is the PEM certificates of the CAs you trust, one after another",
        )
    return parts.certificates


# --- parsing ----------------------------------------------------------------------------------

_PARSE_ERRORS = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    IndexError,
    OverflowError,
    x509.InvalidVersion,
)


def _as_bytes(data: bytes) -> bytes:
    """A caller passing text instead of bytes is a programming error, not bad input: TypeError."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    return bytes(data)


class _Notes(list[str]):
    """Library warnings seen while loading (BER instead of DER, over-long name fields)."""


@contextlib.contextmanager
def _translated() -> Iterator[_Notes]:
    """Every third-party failure becomes one of our errors; library warnings become notes."""
    notes = _Notes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield notes
        except MutlsError:
            raise
        except _PARSE_ERRORS as exc:
            raise UnsupportedFormat(
                f"expected certificate material; part of the input is malformed ({_safe(exc)})"
            ) from None
    notes.extend(dict.fromkeys(str(w.message).splitlines()[0][:200] for w in caught))


def _with_notes(material: Material, notes: _Notes) -> Material:
    if not notes:
        return material
    extra = tuple(
        Finding(
            code="nonstandard_encoding",
            severity=Severity.WARNING,
            message=f"the input is not strictly valid DER/X.509: {note}",
            hint="strict TLS stacks may refuse it; ask the issuer to re-issue it",
        )
        for note in notes
    )
    return dataclasses.replace(material, findings=material.findings + extra)


def _checked(cert: x509.Certificate, where: str) -> x509.Certificate:
    """Decode every field now, so damage is reported at load time and not deep inside a check."""
    try:
        cert.public_key()
        _ = (cert.subject, cert.issuer, cert.extensions)
        _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.signature_algorithm_oid)
    except (*_PARSE_ERRORS, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise UnsupportedFormat(f"{where} is damaged: {_safe(exc)}") from None
    return cert


def _parse(
    data: bytes,
    passphrase: bytes | None,
    *,
    max_size: int,
    allow_encrypted: bool = False,
) -> _Parts:
    if len(data) > max_size:
        raise InputTooLarge(
            f"expected certificate material of at most {max_size} bytes; found {len(data)} bytes"
        )
    if not data.strip():
        raise UnsupportedFormat("expected certificate material; the input is empty")
    # Every caller runs this inside _translated(), which turns any parser failure not
    # translated below into UnsupportedFormat.
    if _PEM_BEGIN.search(data):
        return _parse_pem(data, passphrase, allow_encrypted=allow_encrypted)
    return _parse_binary(data, passphrase, SourceFormat.DER)


def _parse_pem(data: bytes, passphrase: bytes | None, *, allow_encrypted: bool) -> _Parts:
    parts = _Parts(source_format=SourceFormat.PEM)
    blocks = list(_PEM_BLOCK.finditer(data))
    begins = _PEM_BEGIN.findall(data)
    if len(blocks) < len(begins) or not blocks:
        label = (begins[len(blocks)] if len(begins) > len(blocks) else begins[0]).decode()
        raise UnsupportedFormat(
            f"expected a complete PEM block; the {label} block has no matching END line",
            hint="the file is truncated or was pasted incompletely; copy it again in full",
        )
    for index, block in enumerate(blocks, start=1):
        label, end_label = block.group(1), block.group(3)
        name = label.decode()
        if label != end_label:
            raise UnsupportedFormat(
                f"expected PEM block {index} to end with END {name}; "
                f"found END {end_label.decode()}",
                hint="the file was assembled incorrectly; copy each block in full",
            )
        pem = block.group(0)
        if label in _CERT_LABELS:
            parts.certificates.append(_pem_certificate(pem, index))
        elif label in _KEY_LABELS:
            encrypted = label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in pem
            if encrypted and allow_encrypted:
                parts.encrypted = True
                continue
            key = _pem_key(pem, passphrase if encrypted else None, encrypted, index)
            parts.keys.append(key)
            parts.encrypted = parts.encrypted or encrypted
        elif label in _CSR_LABELS:
            parts.csrs.append(_pem_csr(pem, index))
        elif label in _PKCS7_LABELS:
            parts.certificates.extend(_pkcs7(pem, pem=True))
            parts.unordered = True
        elif label == b"TRUSTED CERTIFICATE":
            raise UnsupportedFormat(
                f"PEM block {index} is an OpenSSL TRUSTED CERTIFICATE, which carries trust "
                "settings mutls does not read",
                hint="convert it with `openssl x509 -in FILE -out plain.pem` and load that",
            )
        elif label == b"OPENSSH PRIVATE KEY":
            raise UnsupportedFormat(
                f"PEM block {index} is an OpenSSH private key; TLS needs an X.509 key",
                hint="convert it with `ssh-keygen -p -m PKCS8 -f FILE` and load that",
            )
        elif label in _IGNORED_LABELS:
            parts.findings.append(
                Finding(
                    code="ignored_block",
                    severity=Severity.INFO,
                    message=f"PEM block {index} ({name}) is not needed and was skipped",
                )
            )
        else:
            raise UnsupportedFormat(f"PEM block {index} has the unknown type {name}")
    return parts


def _unused_passphrase() -> Finding:
    return Finding(
        code="passphrase_not_needed",
        severity=Severity.INFO,
        message="a passphrase was given but nothing in the input is encrypted",
    )


def _pem_certificate(pem: bytes, index: int) -> x509.Certificate:
    try:
        return _checked(x509.load_pem_x509_certificate(pem), f"PEM block {index} (CERTIFICATE)")
    except MutlsError:
        raise
    except (ValueError, x509.InvalidVersion) as exc:
        raise UnsupportedFormat(
            f"PEM block {index} (CERTIFICATE) is damaged: {_safe(exc)}",
            hint="the base64 text was altered or cut; copy the certificate again from its source",
        ) from None


def _pem_csr(pem: bytes, index: int) -> x509.CertificateSigningRequest:
    try:
        return _checked_csr(x509.load_pem_x509_csr(pem))
    except (*_PARSE_ERRORS, x509.InvalidVersion, x509.DuplicateExtension) as exc:
        raise UnsupportedFormat(
            f"PEM block {index} (CERTIFICATE REQUEST) is damaged: {_safe(exc)}",
            hint="create the CSR again, or copy it again in full",
        ) from None


def _checked_csr(csr: x509.CertificateSigningRequest) -> x509.CertificateSigningRequest:
    """Decode the key and names now (a damaged key otherwise fails later, inside inspect)."""
    csr.public_key()
    _ = (csr.subject, csr.extensions, csr.signature_algorithm_oid)
    return csr


def _usable(key: PrivateKeyTypes) -> SigningKey:
    usable = signing_key(key)
    if usable is None:
        raise UnsupportedFormat(
            f"expected a signing key (RSA, EC, Ed25519); found a {type(key).__name__}, which "
            "can only agree on keys and cannot authenticate a TLS handshake"
        )
    return usable


def _pem_key(pem: bytes, passphrase: bytes | None, encrypted: bool, index: int) -> SigningKey:
    if encrypted and passphrase is None:
        raise PassphraseRequired(f"PEM block {index} is an encrypted private key; no passphrase")
    try:
        return _usable(serialization.load_pem_private_key(pem, passphrase))
    except TypeError:
        # "password was given but key is not encrypted" and its reverse: decided above.
        raise PassphraseRequired(
            f"PEM block {index} is an encrypted private key; no passphrase"
        ) from None
    except ValueError as exc:
        if encrypted:
            raise WrongPassphrase(
                f"could not decrypt the private key in PEM block {index}: wrong passphrase or "
                "corrupt key (PEM key encryption cannot tell the two apart)"
            ) from None
        raise UnsupportedFormat(
            f"PEM block {index} (private key) is damaged or of an unsupported type: {_safe(exc)}",
        ) from None
    except UnsupportedAlgorithm as exc:
        raise UnsupportedFormat(
            f"PEM block {index} uses an unsupported key algorithm or cipher: {_safe(exc)}",
            hint="re-export the key as PKCS#8: `openssl pkcs8 -topk8 -in KEY -out key.pem`",
        ) from None


def _parse_binary(data: bytes, passphrase: bytes | None, fmt: SourceFormat) -> _Parts:
    parts = _Parts(source_format=fmt)
    # A certificate is by far the most common binary input: try it first.
    try:
        certificate = x509.load_der_x509_certificate(data)
    except (ValueError, x509.InvalidVersion):
        pass
    else:
        parts.certificates.append(_checked(certificate, "the certificate"))
        return parts
    if _looks_like_pkcs12(data):
        return _parse_pkcs12(data, passphrase)
    try:
        certs = _pkcs7(data, pem=False)
    except UnsupportedFormat:
        pass
    else:
        parts.source_format = SourceFormat.PKCS7
        parts.certificates.extend(certs)
        parts.unordered = True
        return parts
    try:
        parts.csrs.append(_checked_csr(x509.load_der_x509_csr(data)))
    except (ValueError, x509.InvalidVersion):
        pass
    else:
        return parts
    key = _der_key(data, passphrase, parts)
    if key is not None:
        parts.keys.append(key)
        return parts
    if fmt is SourceFormat.DER and _BASE64_ONLY.match(data):
        try:
            decoded = base64.b64decode(b"".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if decoded:
            return _parse_binary(decoded, passphrase, SourceFormat.BASE64)
    raise UnsupportedFormat(
        "expected PEM, DER, PKCS#12 or PKCS#7 certificate material; "
        f"found {_sniff(data)} that none of these parsers accepts"
    )


def _der_key(data: bytes, passphrase: bytes | None, parts: _Parts) -> SigningKey | None:
    try:
        return _usable(serialization.load_der_private_key(data, None))
    except TypeError:
        # Encrypted PKCS#8 in DER.
        if passphrase is None:
            raise PassphraseRequired(
                "the input is an encrypted private key; no passphrase"
            ) from None
    except (ValueError, UnsupportedAlgorithm):
        return None
    try:
        key = serialization.load_der_private_key(data, passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise WrongPassphrase(
            "could not decrypt the private key: wrong passphrase or corrupt key"
        ) from None
    parts.encrypted = True
    return _usable(key)


def _looks_like_pkcs12(data: bytes) -> bool:
    """A PFX is SEQUENCE { INTEGER 3, ContentInfo { pkcs7-data ... } }: check just that prefix."""
    if len(data) < 24 or data[0] != 0x30:
        return False
    length_byte = data[1]
    offset = 2 + (length_byte & 0x7F if length_byte & 0x80 else 0)
    return (
        data[offset : offset + 3] == b"\x02\x01\x03"
        and _PKCS7_DATA_OID in data[offset : offset + 32]
    )


def _parse_pkcs12(data: bytes, passphrase: bytes | None) -> _Parts:
    parts = _Parts(source_format=SourceFormat.PKCS12)
    iterations = kdf_iterations(data)
    if iterations and (
        max(iterations) > MAX_PKCS12_ITERATIONS or sum(iterations) > MAX_TOTAL_ITERATIONS
    ):
        raise UnsupportedFormat(
            f"expected a PKCS#12 file with at most {MAX_PKCS12_ITERATIONS:,} key-derivation "
            f"iterations; this one asks for {max(iterations):,} "
            f"({sum(iterations):,} in all); opening it would tie up the CPU",
            hint="export it again with default settings (openssl pkcs12 -export, or "
            "`mutls cert convert --to p12`)",
        )
    # Files exported "without a password" use either no password or the empty one.
    attempts: Sequence[bytes | None] = [passphrase] if passphrase is not None else [None, b""]
    loaded = None
    for attempt in attempts:
        try:
            loaded = pkcs12.load_pkcs12(data, attempt)
            break
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
    if loaded is None:
        if passphrase is None:
            raise PassphraseRequired("the PKCS#12 file is protected by a passphrase; none given")
        raise WrongPassphrase(
            "could not open the PKCS#12 file: wrong passphrase or damaged file",
        )
    parts.encrypted = passphrase is not None and passphrase != b""
    if loaded.key is not None:
        parts.keys.append(_usable(loaded.key))
    if loaded.cert is not None:
        parts.certificates.append(_checked(loaded.cert.certificate, "the PKCS#12 certificate"))
    parts.certificates.extend(
        _checked(c.certificate, "a PKCS#12 CA certificate") for c in loaded.additional_certs
    )
    return parts


def _pkcs7(data: bytes, *, pem: bool) -> list[x509.Certificate]:
    try:
        if pem:
            certs = pkcs7.load_pem_pkcs7_certificates(data)
        else:
            certs = pkcs7.load_der_pkcs7_certificates(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UnsupportedFormat(f"the PKCS#7 bundle could not be read: {_safe(exc)}") from None
    return [_checked(c, "a PKCS#7 certificate") for c in certs]


# --- assembling ---------------------------------------------------------------------------------


def _assemble(parts: _Parts, *, passphrase_given: bool) -> Material:
    findings = list(parts.findings)
    if passphrase_given and not parts.encrypted:
        findings.append(_unused_passphrase())
    if len(parts.keys) > 1:
        fps = ", ".join(public_key_sha256(k.public_key())[:16] for k in parts.keys)
        raise UnsupportedFormat(
            f"expected at most one private key; found {len(parts.keys)} (public keys {fps}...)",
            hint="keep one certificate and its key per file",
        )
    key = parts.keys[0] if parts.keys else None
    if len(parts.csrs) > 1:
        raise UnsupportedFormat(f"expected at most one CSR; found {len(parts.csrs)}")
    csr = parts.csrs[0] if parts.csrs else None
    leaf: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()
    extras: tuple[x509.Certificate, ...] = ()
    if parts.certificates:
        ordered = order_chain(parts.certificates, key=key)
        leaf, chain, extras = ordered.leaf, ordered.chain, ordered.extras
        if ordered.reordered and not parts.unordered:
            findings.append(
                Finding(
                    code="chain_out_of_order",
                    severity=Severity.WARNING,
                    message="the certificates are not stored leaf first, each followed by its "
                    "issuer; mutls reordered them",
                    hint="strict TLS peers reject an out-of-order chain; write it in order with "
                    "`mutls cert convert FILE --to chain`",
                )
            )
        if extras:
            findings.append(
                Finding(
                    code="unrelated_certificates",
                    severity=Severity.WARNING,
                    message=f"{len(extras)} certificate(s) in the input are not part of the "
                    "leaf's chain",
                    hint="a certificate file should hold one leaf and its own issuers only",
                )
            )
        if key is not None and not match_key(leaf, key).matches:
            findings.append(
                Finding(
                    code="key_mismatch",
                    severity=Severity.ERROR,
                    message="the private key does not belong to the certificate",
                    hint="use the key that was generated together with this certificate's CSR",
                )
            )
    return Material(
        source_format=parts.source_format,
        leaf=leaf,
        chain=chain,
        extra_certificates=extras,
        key=key,
        csr=csr,
        key_was_encrypted=parts.encrypted,
        findings=tuple(findings),
    )


def _describe_parts(parts: _Parts) -> str:
    found: list[str] = []
    if parts.certificates:
        found.append(f"{len(parts.certificates)} certificate(s)")
    if parts.csrs:
        found.append("a certificate signing request")
    if parts.encrypted and not parts.keys:
        found.append("an encrypted private key")
    return " and ".join(found) or "nothing usable"


def _sniff(data: bytes) -> str:
    """A short, safe description of unknown input (never its content)."""
    if data.startswith(b"\x30"):
        return f"a {len(data)}-byte DER structure"
    if data.startswith(b"ssh-") or data.startswith(b"ecdsa-sha2"):
        return "an SSH public key"
    try:
        data[:512].decode("ascii")
    except UnicodeDecodeError:
        return f"{len(data)} bytes of binary data"
    return f"{len(data)} bytes of text without a PEM header"


def _safe(exc: BaseException) -> str:
    """A third-party exception message, shortened; never echoes input bytes."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def load_crl(data: bytes, *, max_size: int = DEFAULT_MAX_INPUT) -> x509.CertificateRevocationList:
    """A certificate revocation list in PEM or DER."""
    if len(data) > max_size:
        raise InputTooLarge(f"expected a CRL of at most {max_size} bytes; found {len(data)} bytes")
    try:
        if b"-----BEGIN X509 CRL-----" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise UnsupportedFormat(
            "expected a certificate revocation list (CRL) in PEM or DER; the input is not one",
            hint="download the CRL again from the CA's CRL distribution point",
        ) from None
