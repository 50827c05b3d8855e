"""The OCSP responder's pure core (RFC 6960, profiled by RFC 5019): requests in, signed DER out.

No sockets and no store: the caller reads the request off HTTP, looks the serial up, and passes
the certificate's status and the times in. :func:`parse_request` and :func:`request_from_http_get`
raise only :class:`~mutls.errors.UnsupportedFormat` for bad input, which the HTTP adapter answers
with :func:`error_response` ``(FailureStatus.MALFORMED_REQUEST)``. The builders raise
:class:`~mutls.errors.InvalidArgument` and friends for a caller's mistake (an ``internalError``).

Choices, each from what relying parties and the RFCs expect:

* Responses are signed by a **delegated OCSP signer** (RFC 6960 section 4.2.2.2), issued by the
  CA for this purpose only, so the CA key signs certificates and CRLs and nothing online. The signer
  carries ``id-pkix-ocsp-nocheck``: clients do not ask about the responder's own status, so its
  validity is kept short instead (30 days by default, at most :data:`MAX_SIGNER_VALIDITY`).
* The responder ID is the signer's key hash (smaller than the name, and what RFC 5019 prefers),
  and the signer certificate travels in the response so a client needs only the CA chain.
* One certificate per request (RFC 5019 section 2.1.1; also the limit of ``cryptography``'s
  parser). Requests are answered for a serial without loading the certificate itself.
* Responses meant to be pre-signed and cached carry no nonce: a cached response cannot echo a
  fresh nonce. Only a response built for one live request echoes its nonce.

``cryptography`` sets ``producedAt`` from the wall clock when it signs; it cannot be passed in. It
is the only clock reading behind these functions and it only labels the signature. Every time a
client checks (``thisUpdate``, ``nextUpdate``, ``revocationTime``) comes from the caller.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mutls.errors import (
    InvalidArgument,
    KeyMismatch,
    UnsupportedFormat,
    WrongKeyUsage,
)
from mutls.pki.authority import BACKDATE, RevocationReason, require_ca
from mutls.pki.keys import KeySpec, SigningKey, generate_key, match_key

__all__ = [
    "MAX_NONCE_BYTES",
    "MAX_REQUEST_BYTES",
    "MAX_SIGNER_VALIDITY",
    "CertIdHash",
    "CertStatus",
    "CertificateStatus",
    "FailureStatus",
    "OcspQuery",
    "build_ocsp_signer",
    "build_response",
    "error_response",
    "issuer_hashes",
    "matches_issuer",
    "parse_request",
    "request_from_http_get",
]

#: OCSP requests for one certificate are about 100 bytes (a few kilobytes when signed with a
#: certificate chain attached). Anything larger is refused before it is parsed.
MAX_REQUEST_BYTES = 8192
#: RFC 9654 section 2.1: a nonce is 1 to 128 octets; anything else is a malformed request.
MAX_NONCE_BYTES = 128
#: The signer has id-pkix-ocsp-nocheck and so can never be revoked: its lifetime is the exposure
#: window if its key leaks (RFC 6960 section 4.2.2.2.1 asks for a short one).
MAX_SIGNER_VALIDITY = timedelta(days=90)

_SUFFIX = " OCSP Responder"
_CN_MAX = 64  # ub-common-name, RFC 5280 appendix A.1
_HINT = (
    "send one DER-encoded OCSPRequest (RFC 6960) for one certificate, as made by "
    "`openssl ocsp -issuer CA.pem -cert CERT.pem -reqout req.der`"
)
_GET_HINT = (
    "the GET form is the responder URL, a slash, then the URL-encoded base64 of the DER "
    "request (RFC 6960 appendix A.1); use POST with Content-Type application/ocsp-request "
    "for larger requests"
)


class CertIdHash(enum.StrEnum):
    """The hash a CertID uses for the issuer's name and key. SHA-1 is what clients send by default
    (OpenSSL, browsers, RFC 5019); the others are accepted and answered in kind."""

    SHA1 = "sha1"
    SHA224 = "sha224"
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"

    def algorithm(self) -> hashes.HashAlgorithm:
        return _HASHES[self]()


_HASHES: dict[CertIdHash, type[hashes.HashAlgorithm]] = {
    CertIdHash.SHA1: hashes.SHA1,
    CertIdHash.SHA224: hashes.SHA224,
    CertIdHash.SHA256: hashes.SHA256,
    CertIdHash.SHA384: hashes.SHA384,
    CertIdHash.SHA512: hashes.SHA512,
}


class CertStatus(enum.StrEnum):
    """What the responder says about one serial (RFC 6960 section 2.2). Member names are those of
    ``cryptography``'s OCSPCertStatus."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"  # not a serial this CA issued, as far as the responder knows


class FailureStatus(enum.StrEnum):
    """The unsuccessful OCSPResponseStatus values (RFC 6960 section 4.2.1), valued as there.
    Member names are those of ``cryptography``'s OCSPResponseStatus."""

    MALFORMED_REQUEST = "malformedRequest"
    INTERNAL_ERROR = "internalError"
    TRY_LATER = "tryLater"
    SIG_REQUIRED = "sigRequired"
    UNAUTHORIZED = "unauthorized"  # RFC 5019: the responder does not serve this issuer


@dataclass(frozen=True, kw_only=True)
class CertificateStatus:
    """The status of one serial, as the store knows it. ``reason`` None or unspecified is sent
    without a reason code, as on the CRL."""

    serial: int
    status: CertStatus
    revoked_at: datetime | None = None
    reason: RevocationReason | x509.ReasonFlags | None = None

    def __post_init__(self) -> None:
        if self.serial < 0:
            raise InvalidArgument(
                f"expected a non-negative certificate serial; found {self.serial}"
            )
        if self.status is CertStatus.REVOKED:
            if self.revoked_at is None:
                raise InvalidArgument(
                    f"serial {self.serial:x} is revoked but has no revocation time",
                    hint="pass revoked_at, the time the revocation was recorded",
                )
            _require_aware("revoked_at", self.revoked_at)
            if self.reason is x509.ReasonFlags.remove_from_crl:
                raise InvalidArgument(
                    "removeFromCRL is only meaningful in delta CRLs; a revoked certificate "
                    "needs a revocation reason"
                )
        elif self.revoked_at is not None or self.reason is not None:
            raise InvalidArgument(
                f"only a revoked serial has a revocation time or reason; serial "
                f"{self.serial:x} is {self.status.value}"
            )

    def reason_flag(self) -> x509.ReasonFlags | None:
        """The reason code to put in the response; None for no reason or unspecified."""
        reason = self.reason
        if isinstance(reason, RevocationReason):
            reason = reason.to_flag()
        if reason is None or reason is x509.ReasonFlags.unspecified:
            # RFC 5280 section 5.3.1: unspecified is better expressed by leaving the code out.
            return None
        return reason


@dataclass(frozen=True, kw_only=True)
class OcspQuery:
    """What one OCSP request asks: the CertID (issuer hashes and serial) and the nonce, if any."""

    issuer_name_hash: bytes
    issuer_key_hash: bytes
    hash_algorithm: CertIdHash
    serial: int
    nonce: bytes | None = None


# --- the delegated signer ------------------------------------------------------------------------


def build_ocsp_signer(
    *,
    issuer: x509.Certificate,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    now: datetime,
    validity: timedelta = timedelta(days=30),
    key_spec: KeySpec = KeySpec.EC_P256,
) -> tuple[x509.Certificate, SigningKey]:
    """A new key and a delegated OCSP signing certificate for it, issued by ``issuer``.

    RFC 6960 section 4.2.2.2: the certificate is issued by the CA whose certificates it speaks
    for, with the id-kp-OCSPSigning EKU (and nothing else, so the key cannot serve TLS), and
    id-pkix-ocsp-nocheck. It is not a CA and its key usage is digitalSignature only. Its validity
    is clipped to the issuer's.
    """
    _require_aware("now", now)
    require_ca(issuer)
    if not match_key(issuer, issuer_key).matches:
        raise KeyMismatch("the signing key does not belong to the issuing CA certificate")
    if validity <= timedelta(0) or validity > MAX_SIGNER_VALIDITY:
        raise InvalidArgument(
            f"expected an OCSP signer validity between 1 second and "
            f"{MAX_SIGNER_VALIDITY.days} days; found {validity}",
            hint="the signer cannot be revoked (id-pkix-ocsp-nocheck): keep it short and renew",
        )
    not_after = min(now + validity, issuer.not_valid_after_utc)
    if not_after <= now:
        raise InvalidArgument(
            f"the CA {issuer.subject.rfc4514_string()} expired on "
            f"{issuer.not_valid_after_utc.isoformat()}; it cannot delegate OCSP signing",
            hint="renew the CA first",
        )
    key = generate_key(key_spec)
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_signer_name(issuer.subject))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_aki(issuer), critical=False)
    )
    return builder.sign(issuer_key, _algorithm(issuer_key)), key


def _signer_name(issuer_name: x509.Name) -> x509.Name:
    """The issuer's name with its CN replaced by "<issuer CN> OCSP Responder"."""
    cns = issuer_name.get_attributes_for_oid(NameOID.COMMON_NAME)
    base = cns[0].value if cns and isinstance(cns[0].value, str) else ""
    cn = (base[: _CN_MAX - len(_SUFFIX)] + _SUFFIX).strip()
    kept = [a for a in issuer_name if a.oid != NameOID.COMMON_NAME]
    return x509.Name([*kept, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


# --- requests ------------------------------------------------------------------------------------


def parse_request(der: bytes) -> OcspQuery:
    """The CertID and nonce of a DER OCSPRequest; :class:`~mutls.errors.UnsupportedFormat` for
    anything that is not one well-formed request for exactly one certificate.

    A request signature (optionalSignature) is not checked: this responder answers anyone, as
    RFC 5019 responders do, and its answers are public anyway.
    """
    if len(der) > MAX_REQUEST_BYTES:
        raise UnsupportedFormat(
            f"expected an OCSP request of at most {MAX_REQUEST_BYTES} bytes; "
            f"found {len(der)} bytes",
            hint=_HINT,
        )
    try:
        request = ocsp.load_der_ocsp_request(der)
    except NotImplementedError:
        # cryptography's only NotImplementedError here: a requestList that is not exactly one.
        raise UnsupportedFormat(
            "expected an OCSP request for exactly one certificate; found a request for none or "
            "for several",
            hint="send one request per certificate (RFC 5019 section 2.1.1)",
        ) from None
    except ValueError as exc:
        raise UnsupportedFormat(
            f"expected a DER-encoded OCSPRequest; found {len(der)} bytes that do not parse as "
            f"one ({_first_line(exc)})",
            hint=_HINT,
        ) from None
    try:
        algorithm = request.hash_algorithm
    except UnsupportedAlgorithm:
        raise UnsupportedFormat(
            "expected a CertID hashed with SHA-1 or SHA-2; found another hash algorithm",
            hint="ask again with the default SHA-1 CertID (`openssl ocsp` without -md5 etc.)",
        ) from None
    cert_id_hash = _cert_id_hash(algorithm)
    if cert_id_hash is None:
        raise UnsupportedFormat(
            f"expected a CertID hashed with SHA-1 or SHA-2; found {algorithm.name}",
            hint="ask again with the default SHA-1 CertID",
        )
    name_hash, key_hash = request.issuer_name_hash, request.issuer_key_hash
    if len(name_hash) != algorithm.digest_size or len(key_hash) != algorithm.digest_size:
        raise UnsupportedFormat(
            f"expected {algorithm.digest_size}-byte {algorithm.name} issuer hashes in the CertID; "
            f"found {len(name_hash)} and {len(key_hash)} bytes",
            hint=_HINT,
        )
    if request.serial_number < 0:
        # RFC 5280 section 4.1.2.2: serials are positive; no certificate has a negative one.
        raise UnsupportedFormat(
            f"expected a non-negative certificate serial in the CertID; found "
            f"{request.serial_number}",
            hint=_HINT,
        )
    return OcspQuery(
        issuer_name_hash=name_hash,
        issuer_key_hash=key_hash,
        hash_algorithm=cert_id_hash,
        serial=request.serial_number,
        nonce=_request_nonce(request),
    )


def _request_nonce(request: ocsp.OCSPRequest) -> bytes | None:
    try:
        extensions = list(request.extensions)
    except (ValueError, x509.DuplicateExtension) as exc:
        raise UnsupportedFormat(
            f"expected well-formed OCSP request extensions; found ones that do not parse "
            f"({_first_line(exc)})",
            hint=_HINT,
        ) from None
    nonce: bytes | None = None
    for extension in extensions:
        if isinstance(extension.value, x509.OCSPNonce):
            nonce = extension.value.nonce
        elif extension.critical:
            # RFC 6960 section 4.4: unrecognised extensions are ignored unless marked critical.
            raise UnsupportedFormat(
                f"expected no critical OCSP request extension other than the nonce; found "
                f"{extension.oid.dotted_string} marked critical",
                hint="drop the extension or mark it non-critical",
            )
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_BYTES:
        raise UnsupportedFormat(
            f"expected a nonce of 1 to {MAX_NONCE_BYTES} bytes (RFC 9654); found "
            f"{len(nonce)} bytes",
            hint="send a 32-byte random nonce, or none",
        )
    return nonce


def request_from_http_get(path_segment: str) -> bytes:
    """The DER request carried in a GET URL (RFC 6960 appendix A.1): everything in the path after
    the responder's own prefix, percent-encoded or not.

    Accepted as clients send it in practice: ``%2B %2F %3D`` or the raw ``+ / =``, a space where a
    proxy decoded ``+`` as form data, the URL-safe alphabet and missing padding.
    """
    if len(path_segment) > 4 * MAX_REQUEST_BYTES:  # generous: percent-encoding triples a byte
        raise UnsupportedFormat(
            f"expected an OCSP GET path of at most {4 * MAX_REQUEST_BYTES} characters; found "
            f"{len(path_segment)}",
            hint=_GET_HINT,
        )
    try:
        text = urllib.parse.unquote_to_bytes(path_segment).decode("ascii").lstrip("/")
    except UnicodeDecodeError:
        raise UnsupportedFormat(
            "expected base64 after the responder URL; found non-ASCII characters", hint=_GET_HINT
        ) from None
    # '+' turned into ' ' by an intermediary that treated the path as form data (CFSSL and
    # Boulder make the same repair); the URL-safe alphabet mapped to the standard one.
    text = text.replace(" ", "+").replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    if not text.strip("="):
        raise UnsupportedFormat(
            "expected a base64 OCSP request in the URL; found none", hint=_GET_HINT
        )
    try:
        der = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise UnsupportedFormat(
            "expected base64 after the responder URL; found characters outside the base64 "
            "alphabet or a bad length",
            hint=_GET_HINT,
        ) from None
    if len(der) > MAX_REQUEST_BYTES:
        raise UnsupportedFormat(
            f"expected an OCSP request of at most {MAX_REQUEST_BYTES} bytes; found {len(der)}",
            hint=_GET_HINT,
        )
    return der


def matches_issuer(query: OcspQuery, issuer: x509.Certificate) -> bool:
    """Whether the query's CertID names ``issuer`` (its subject and its key, by the query's hash).

    A responder answers ``unauthorized`` for an issuer it does not serve (RFC 5019 section 2.2.3).
    """
    name_hash, key_hash = issuer_hashes(issuer, query.hash_algorithm)
    return query.issuer_name_hash == name_hash and query.issuer_key_hash == key_hash


def issuer_hashes(issuer: x509.Certificate, algorithm: CertIdHash) -> tuple[bytes, bytes]:
    """The CertID's issuerNameHash and issuerKeyHash for ``issuer``: the hash of its DER subject,
    and of its subjectPublicKey BIT STRING contents (RFC 6960 section 4.1.1)."""
    name = issuer.subject.public_bytes()
    key = _subject_public_key_bits(issuer.public_key())
    return hashlib.new(algorithm.value, name).digest(), hashlib.new(algorithm.value, key).digest()


# --- responses -----------------------------------------------------------------------------------


def build_response(
    *,
    issuer: x509.Certificate,
    signer_cert: x509.Certificate,
    signer_key: CertificateIssuerPrivateKeyTypes,
    certificate_serial_status: CertificateStatus,
    this_update: datetime,
    next_update: datetime,
    nonce: bytes | None = None,
    issued_certificate: x509.Certificate | None = None,
    cert_id_hash: CertIdHash = CertIdHash.SHA1,
) -> bytes:
    """A successful, signed BasicOCSPResponse (DER) for one serial of ``issuer``.

    ``signer_cert`` is the delegated signer from :func:`build_ocsp_signer` (or the CA itself); it
    is included in the response and named by key hash. The CertID is computed from ``issuer`` and
    the serial, so no certificate needs to be loaded; ``issued_certificate``, when given, is only
    checked to be that serial of that issuer. ``cert_id_hash`` must be the one the client used
    (:attr:`OcspQuery.hash_algorithm`): clients match CertIDs hash and all.

    Pre-signed responses, cached until the status changes or ``next_update`` nears, are built
    with ``nonce=None``: a cached response cannot echo a request's nonce, and clients that follow
    RFC 5019 do not require one. Pass ``nonce`` only when signing for one live request.
    """
    status = certificate_serial_status
    _require_aware("this_update", this_update)
    _require_aware("next_update", next_update)
    if next_update <= this_update:
        raise InvalidArgument(
            f"expected next_update after this_update; found {next_update.isoformat()} <= "
            f"{this_update.isoformat()}"
        )
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_BYTES:
        raise InvalidArgument(
            f"expected a nonce of 1 to {MAX_NONCE_BYTES} bytes; found {len(nonce)} bytes"
        )
    _check_signer(issuer, signer_cert, signer_key, next_update)
    if issued_certificate is not None:
        _check_issued(issued_certificate, issuer, status.serial)
    name_hash, key_hash = issuer_hashes(issuer, cert_id_hash)
    revoked = status.status is CertStatus.REVOKED
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=name_hash,
            issuer_key_hash=key_hash,
            serial_number=status.serial,
            algorithm=cert_id_hash.algorithm(),
            cert_status=ocsp.OCSPCertStatus[status.status.name],
            this_update=this_update,
            next_update=next_update,
            revocation_time=status.revoked_at if revoked else None,
            revocation_reason=status.reason_flag() if revoked else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
        .certificates([signer_cert])
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    response = builder.sign(signer_key, _algorithm(signer_key))
    return response.public_bytes(serialization.Encoding.DER)


def error_response(status: FailureStatus) -> bytes:
    """An unsigned OCSPResponse (DER) with only an error status (RFC 6960 section 4.2.1)."""
    return _error_response(status)


@cache
def _error_response(status: FailureStatus) -> bytes:
    response = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus[status.name])
    return response.public_bytes(serialization.Encoding.DER)


def _check_signer(
    issuer: x509.Certificate,
    signer_cert: x509.Certificate,
    signer_key: CertificateIssuerPrivateKeyTypes,
    next_update: datetime,
) -> None:
    """Refuse a response that every client would reject: it would only surface as a soft-fail."""
    if not match_key(signer_cert, signer_key).matches:
        raise KeyMismatch("the OCSP signing key does not belong to the OCSP signer certificate")
    if signer_cert == issuer:
        return  # the CA answers for itself (RFC 6960 section 4.2.2.2, first case)
    try:
        signer_cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise InvalidArgument(
            f"expected an OCSP signer issued by {issuer.subject.rfc4514_string()}; found one "
            f"issued by {signer_cert.issuer.rfc4514_string()}",
            hint="clients accept a delegated signer only from the CA that issued the certificate; "
            "create one with build_ocsp_signer for this CA",
        ) from None
    try:
        usages = signer_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        raise WrongKeyUsage(
            "expected an OCSP signer certificate with the OCSPSigning extended key usage; "
            f"{signer_cert.subject.rfc4514_string()} does not have it",
            hint="create the signer with build_ocsp_signer",
        )
    if next_update > signer_cert.not_valid_after_utc:
        raise InvalidArgument(
            f"the response would outlive its signer: next_update {next_update.isoformat()}, the "
            f"signer expires {signer_cert.not_valid_after_utc.isoformat()}",
            hint="renew the OCSP signer before it is this close to expiry",
        )


def _check_issued(certificate: x509.Certificate, issuer: x509.Certificate, serial: int) -> None:
    if certificate.serial_number != serial:
        raise InvalidArgument(
            f"expected the certificate with serial {serial:x}; found serial "
            f"{certificate.serial_number:x}"
        )
    if certificate.issuer != issuer.subject:
        raise InvalidArgument(
            f"expected a certificate issued by {issuer.subject.rfc4514_string()}; found one "
            f"issued by {certificate.issuer.rfc4514_string()}"
        )


# --- helpers -------------------------------------------------------------------------------------


def _cert_id_hash(algorithm: hashes.HashAlgorithm) -> CertIdHash | None:
    for member, kind in _HASHES.items():
        if isinstance(algorithm, kind):
            return member
    return None


def _subject_public_key_bits(public_key: CertificatePublicKeyTypes) -> bytes:
    """The contents of the subjectPublicKey BIT STRING, without its unused-bits octet.

    SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT
    STRING }, DER from cryptography, so the walk below never meets indefinite lengths.
    """
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _, body, _ = _tlv(spki, 0)
    _, _, after_algorithm = _tlv(spki, body)
    tag, start, end = _tlv(spki, after_algorithm)
    assert tag == 0x03, "SubjectPublicKeyInfo ends with a BIT STRING"
    assert spki[start] == 0, "public keys are whole octets"
    return spki[start + 1 : end]


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at ``offset``."""
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    return tag, start, start + length


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _algorithm(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    # EdDSA signs the message itself; every other key type signs a SHA-256 digest.
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def _require_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidArgument(
            f"expected {name} as a timezone-aware UTC datetime; found a naive one"
        )


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
