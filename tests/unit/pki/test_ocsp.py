"""The OCSP responder's pure core: delegated signer, request parsing (DER and GET), responses.

Responses are read back with cryptography's own OCSP parser and their signatures checked with the
signer's public key; the openssl side of the story is in tests/loopback/test_ocsp_openssl.py.
"""

from __future__ import annotations

import base64
import contextlib
import os
import urllib.parse
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mutls.errors import (
    InvalidArgument,
    KeyMismatch,
    MutlsError,
    NotACA,
    UnsupportedFormat,
    WrongKeyUsage,
)
from mutls.pki.authority import BACKDATE, RevocationReason, build_ca_certificate
from mutls.pki.keys import KeySpec, SigningKey, generate_key
from mutls.pki.ocsp import (
    MAX_NONCE_BYTES,
    MAX_REQUEST_BYTES,
    CertIdHash,
    CertificateStatus,
    CertStatus,
    FailureStatus,
    OcspQuery,
    build_ocsp_signer,
    build_response,
    error_response,
    issuer_hashes,
    matches_issuer,
    parse_request,
    request_from_http_get,
)
from mutls.testing import Identity, TestCA

DAY = timedelta(days=1)
SHA1_OID = "1.3.14.3.2.26"
MD5_OID = "1.2.840.113549.2.5"


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer(ca: TestCA, now: datetime) -> tuple[x509.Certificate, SigningKey]:
    """The delegated OCSP signer of ``ca``'s issuing CA."""
    return build_ocsp_signer(issuer=ca.issuer, issuer_key=ca.issuer_key, now=now)


def _request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    algorithm: hashes.HashAlgorithm | None = None,
    nonce: bytes | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _tlv(tag: int, body: bytes) -> bytes:
    """One DER element; enough of an encoder to build requests cryptography's builder refuses."""
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(p) for p in dotted.split("."))
    out = bytearray([first * 40 + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        remaining = arc >> 7
        while remaining:
            chunk.append(0x80 | (remaining & 0x7F))
            remaining >>= 7
        out.extend(reversed(chunk))
    return _tlv(0x06, bytes(out))


def _raw_request(
    *, algorithm_oid: str = SHA1_OID, hash_size: int = 20, serial: int = 0x1234, count: int = 1
) -> bytes:
    """An OCSPRequest with ``count`` identical single requests (RFC 6960 section 4.1.1)."""
    cert_id = _tlv(
        0x30,
        _tlv(0x30, _oid(algorithm_oid) + b"\x05\x00")
        + _tlv(0x04, b"\x11" * hash_size)
        + _tlv(0x04, b"\x22" * hash_size)
        + _tlv(0x02, serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True)),
    )
    request_list = _tlv(0x30, _tlv(0x30, cert_id) * count)
    return _tlv(0x30, _tlv(0x30, request_list))


def _status(serial: int, now: datetime, kind: CertStatus) -> CertificateStatus:
    if kind is CertStatus.REVOKED:
        return CertificateStatus(
            serial=serial,
            status=kind,
            revoked_at=now - timedelta(hours=1),
            reason=RevocationReason.KEY_COMPROMISE,
        )
    return CertificateStatus(serial=serial, status=kind)


def _respond(
    ca: TestCA,
    signer: tuple[x509.Certificate, SigningKey],
    status: CertificateStatus,
    now: datetime,
    **options: object,
) -> ocsp.OCSPResponse:
    der = build_response(
        issuer=ca.issuer,
        signer_cert=signer[0],
        signer_key=signer[1],
        certificate_serial_status=status,
        this_update=now,
        next_update=now + DAY,
        **options,  # type: ignore[arg-type]
    )
    return ocsp.load_der_ocsp_response(der)


def _verify_signature(response: ocsp.OCSPResponse, signer_cert: x509.Certificate) -> None:
    public_key = signer_cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    algorithm = response.signature_hash_algorithm
    assert algorithm is not None
    public_key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))


# --- the delegated signer ------------------------------------------------------------------------


def test_signer_is_a_delegated_ocsp_signer(
    ca: TestCA, signer: tuple[x509.Certificate, SigningKey], now: datetime
) -> None:
    """The signer has EKU OCSPSigning only, nocheck, digitalSignature, CA:FALSE, AKI and SKI."""
    cert, key = signer
    cert.verify_directly_issued_by(ca.issuer)
    assert cert.public_key() == key.public_key()
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert cert.extensions.get_extension_for_class(x509.OCSPNoCheck).critical is False
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert not usage.value.crl_sign
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuer_ski = ca.issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == issuer_ski.digest
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "mutls Test Root CA Issuing CA OCSP Responder"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "mutls tests"
    assert cert.not_valid_before_utc == (now - BACKDATE).replace(microsecond=0)
    assert cert.not_valid_after_utc == (now + timedelta(days=30)).replace(microsecond=0)


def test_signer_validity_is_clipped_to_the_issuer(now: datetime) -> None:
    """A CA with 10 days left delegates for 10 days, not the 30 asked for."""
    short = TestCA(now=now, intermediate_validity=timedelta(days=10))
    cert, _ = build_ocsp_signer(issuer=short.issuer, issuer_key=short.issuer_key, now=now)
    assert cert.not_valid_after_utc == short.issuer.not_valid_after_utc


def test_signer_key_spec_is_honoured(ca: TestCA, now: datetime) -> None:
    """key_spec picks the signer's key type; an Ed25519 signer still signs valid responses."""
    cert, key = build_ocsp_signer(
        issuer=ca.issuer, issuer_key=ca.issuer_key, now=now, key_spec=KeySpec.ED25519
    )
    assert key.public_key() == cert.public_key()
    der = build_response(
        issuer=ca.issuer,
        signer_cert=cert,
        signer_key=key,
        certificate_serial_status=CertificateStatus(serial=7, status=CertStatus.GOOD),
        this_update=now,
        next_update=now + DAY,
    )
    response = ocsp.load_der_ocsp_response(der)
    public_key = cert.public_key()
    assert isinstance(public_key, ed25519.Ed25519PublicKey)
    public_key.verify(response.signature, response.tbs_response_bytes)


@pytest.mark.parametrize("validity", [timedelta(0), timedelta(days=91)], ids=["zero", "too-long"])
def test_signer_validity_is_bounded(ca: TestCA, now: datetime, validity: timedelta) -> None:
    """A signer that can never be revoked gets at most 90 days, and more than none."""
    with pytest.raises(InvalidArgument, match="OCSP signer validity"):
        build_ocsp_signer(issuer=ca.issuer, issuer_key=ca.issuer_key, now=now, validity=validity)


def test_signer_needs_a_ca_and_its_key(ca: TestCA, client: Identity, now: datetime) -> None:
    """A leaf cannot delegate OCSP signing; nor can a CA certificate with someone else's key."""
    with pytest.raises(NotACA):
        build_ocsp_signer(issuer=client.certificate, issuer_key=client.key, now=now)
    with pytest.raises(KeyMismatch):
        build_ocsp_signer(issuer=ca.issuer, issuer_key=ca.root_key, now=now)


def test_signer_refuses_naive_now(ca: TestCA, now: datetime) -> None:
    """Time must be timezone-aware."""
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        build_ocsp_signer(issuer=ca.issuer, issuer_key=ca.issuer_key, now=now.replace(tzinfo=None))


# --- requests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        (hashes.SHA1(), CertIdHash.SHA1),
        (hashes.SHA224(), CertIdHash.SHA224),
        (hashes.SHA256(), CertIdHash.SHA256),
        (hashes.SHA384(), CertIdHash.SHA384),
        (hashes.SHA512(), CertIdHash.SHA512),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_request_round_trip(
    ca: TestCA, client: Identity, algorithm: hashes.HashAlgorithm, expected: CertIdHash
) -> None:
    """A request built by cryptography parses to its CertID, hash algorithm and nonce."""
    nonce = os.urandom(32)
    query = parse_request(_request(client.certificate, ca.issuer, algorithm=algorithm, nonce=nonce))
    built = ocsp.load_der_ocsp_request(_request(client.certificate, ca.issuer, algorithm=algorithm))
    assert query == OcspQuery(
        issuer_name_hash=built.issuer_name_hash,
        issuer_key_hash=built.issuer_key_hash,
        hash_algorithm=expected,
        serial=client.certificate.serial_number,
        nonce=nonce,
    )
    assert matches_issuer(query, ca.issuer)


def test_request_without_nonce_by_hash(ca: TestCA) -> None:
    """A request made from hashes and a serial alone parses, with no nonce."""
    name_hash, key_hash = issuer_hashes(ca.issuer, CertIdHash.SHA256)
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(name_hash, key_hash, 0xC0FFEE, hashes.SHA256())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    query = parse_request(der)
    assert query.serial == 0xC0FFEE
    assert query.nonce is None
    assert matches_issuer(query, ca.issuer)


@pytest.mark.parametrize("spec", [KeySpec.RSA_2048, KeySpec.EC_P384, KeySpec.ED25519])
def test_issuer_hashes_agree_with_cryptography(now: datetime, spec: KeySpec) -> None:
    """issuer_hashes computes the CertID hashes exactly as cryptography does, for every key type."""
    other = TestCA(now=now, intermediate=False, key_spec=spec)
    leaf = other.issue("leaf.example.com", now=now)
    for cert_id_hash in CertIdHash:
        built = ocsp.load_der_ocsp_request(
            _request(leaf.certificate, other.issuer, algorithm=cert_id_hash.algorithm())
        )
        assert issuer_hashes(other.issuer, cert_id_hash) == (
            built.issuer_name_hash,
            built.issuer_key_hash,
        )


def test_matches_issuer_refuses_other_cas(
    ca: TestCA, other_ca: TestCA, client: Identity, now: datetime
) -> None:
    """Another CA, the same CA's root, and a look-alike with the same name and a new key: no."""
    query = parse_request(_request(client.certificate, ca.issuer))
    assert matches_issuer(query, ca.issuer)
    assert not matches_issuer(query, other_ca.issuer)
    assert not matches_issuer(query, ca.root)
    impostor_key = generate_key()
    impostor = build_ca_certificate(
        subject=ca.issuer.subject,
        public_key=impostor_key.public_key(),
        signing_key=impostor_key,
        issuer=None,
        now=now,
        validity=DAY,
        path_length=0,
    )
    assert not matches_issuer(query, impostor)


def _base64_with_all_specials(ca: TestCA, client: Identity) -> tuple[bytes, str]:
    """A request whose base64 contains '+', '/' and '=' (nonces are random: try until it does)."""
    for _ in range(1000):
        der = _request(client.certificate, ca.issuer, nonce=os.urandom(17))
        text = base64.b64encode(der).decode()
        if "+" in text and "/" in text and text.endswith("="):
            return der, text
    raise AssertionError("no request with '+', '/' and '=' in 1000 tries")


def test_get_form_round_trip(ca: TestCA, client: Identity) -> None:
    """The GET path decodes however clients encode it: %2B%2F%3D, raw, space, url-safe, slash."""
    der, text = _base64_with_all_specials(ca, client)
    quoted = urllib.parse.quote(text, safe="")
    assert "%2B" in quoted
    assert "%2F" in quoted
    assert "%3D" in quoted
    forms = {
        "percent-encoded": quoted,
        "lower-case percent": quoted.replace("%2B", "%2b").replace("%2F", "%2f"),
        "raw": text,
        "plus decoded as space": text.replace("+", " "),
        "url-safe, unpadded": text.replace("+", "-").replace("/", "_").rstrip("="),
        "leading slash": "/" + quoted,
    }
    for name, form in forms.items():
        assert request_from_http_get(form) == der, name
    assert parse_request(request_from_http_get(quoted)).serial == client.certificate.serial_number


@pytest.mark.parametrize(
    "segment",
    [
        "",
        "/",
        "====",
        "not base64!",
        "%ZZ",
        "%FF%FE",
        "caf\u00e9",
        "A",
        "A" * (4 * MAX_REQUEST_BYTES + 4),
    ],
    ids=[
        "empty",
        "slash",
        "padding",
        "bang",
        "bad-escape",
        "non-utf8",
        "non-ascii",
        "one-char",
        "huge",
    ],
)
def test_get_form_refuses_garbage(segment: str) -> None:
    """Strings that carry no base64 request are refused as unsupported_format."""
    with pytest.raises(UnsupportedFormat) as caught:
        request_from_http_get(segment)
    assert caught.value.code == "unsupported_format"
    assert "RFC 6960" in caught.value.hint


def test_get_form_of_non_request_fails_in_parse() -> None:
    """Valid base64 of something that is not a request decodes, then parse_request refuses it."""
    with pytest.raises(UnsupportedFormat, match="OCSPRequest"):
        parse_request(request_from_http_get(base64.b64encode(b"hello, world").decode()))


def test_raw_request_helper_builds_a_valid_request() -> None:
    """The hand-made DER below is a real request when asked for one SHA-1 CertID (so the refusals
    that follow are about the one thing changed)."""
    query = parse_request(_raw_request())
    assert query.serial == 0x1234
    assert query.hash_algorithm is CertIdHash.SHA1


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (b"", "do not parse"),
        (b"junk", "do not parse"),
        (b"\x30\x00", "do not parse"),
        (_raw_request(count=2), "exactly one certificate"),
        (_raw_request(count=0), "exactly one certificate"),
        (_raw_request(algorithm_oid=MD5_OID, hash_size=16), "SHA-1 or SHA-2"),
        (_raw_request(hash_size=5), "20-byte sha1 issuer hashes"),
        (_raw_request(serial=-5), "non-negative certificate serial"),
        (b"\x30" * (MAX_REQUEST_BYTES + 1), "at most 8192 bytes"),
    ],
    ids=[
        "empty",
        "junk",
        "empty-sequence",
        "two-certs",
        "no-certs",
        "md5",
        "short-hash",
        "negative-serial",
        "huge",
    ],
)
def test_malformed_requests_are_refused(der: bytes, message: str) -> None:
    """Bytes that are not one well-formed request for one certificate: unsupported_format."""
    with pytest.raises(UnsupportedFormat, match=message):
        parse_request(der)


def test_truncated_request_is_refused(ca: TestCA, client: Identity) -> None:
    """A real request cut short at any point is refused, never half-read."""
    der = _request(client.certificate, ca.issuer, nonce=os.urandom(16))
    for end in range(len(der)):
        with pytest.raises(UnsupportedFormat):
            parse_request(der[:end])


@pytest.mark.parametrize("size", [0, MAX_NONCE_BYTES + 1], ids=["empty", "too-long"])
def test_nonce_length_is_checked(ca: TestCA, client: Identity, size: int) -> None:
    """RFC 9654: a nonce of 0 or more than 128 octets is a malformed request."""
    with pytest.raises(UnsupportedFormat, match="nonce of 1 to 128 bytes"):
        parse_request(_request(client.certificate, ca.issuer, nonce=b"\x01" * size))
    assert parse_request(
        _request(client.certificate, ca.issuer, nonce=b"\x01" * MAX_NONCE_BYTES)
    ).nonce == (b"\x01" * MAX_NONCE_BYTES)


def test_unknown_critical_extension_is_refused(ca: TestCA, client: Identity) -> None:
    """An extension the responder does not understand is ignored, unless it is critical."""
    extension = x509.UnrecognizedExtension(
        x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"
    )
    for critical in (False, True):
        der = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(client.certificate, ca.issuer, hashes.SHA1())
            .add_extension(extension, critical=critical)
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        if critical:
            with pytest.raises(UnsupportedFormat, match=r"1\.3\.6\.1\.4\.1\.99999\.1"):
                parse_request(der)
        else:
            assert parse_request(der).serial == client.certificate.serial_number


# --- responses -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CertStatus), ids=str)
def test_response_reads_back_and_verifies(
    ca: TestCA,
    client: Identity,
    signer: tuple[x509.Certificate, SigningKey],
    now: datetime,
    kind: CertStatus,
) -> None:
    """Good, revoked and unknown responses parse with the right status, times, reason, CertID,
    responder key hash and included signer, and their signature verifies with the signer's key."""
    serial = client.certificate.serial_number
    response = _respond(ca, signer, _status(serial, now, kind), now)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is ocsp.OCSPCertStatus[kind.name]
    assert response.serial_number == serial
    assert response.this_update_utc == now.replace(microsecond=0)
    assert response.next_update_utc == (now + DAY).replace(microsecond=0)
    if kind is CertStatus.REVOKED:
        assert response.revocation_time_utc == (now - timedelta(hours=1)).replace(microsecond=0)
        assert response.revocation_reason is x509.ReasonFlags.key_compromise
    else:
        assert response.revocation_time_utc is None
        assert response.revocation_reason is None
    query = parse_request(_request(client.certificate, ca.issuer))
    assert isinstance(response.hash_algorithm, hashes.SHA1)
    assert response.issuer_name_hash == query.issuer_name_hash
    assert response.issuer_key_hash == query.issuer_key_hash
    signer_cert = signer[0]
    ski = signer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert response.responder_key_hash == ski.digest
    assert response.responder_name is None
    assert response.certificates == [signer_cert]
    assert list(response.extensions) == []  # no nonce: cacheable
    _verify_signature(response, signer_cert)
    signer_cert.verify_directly_issued_by(ca.issuer)


def test_response_signature_fails_with_another_key(
    ca: TestCA, client: Identity, signer: tuple[x509.Certificate, SigningKey], now: datetime
) -> None:
    """The signature check above can fail: another signer's key does not verify it."""
    response = _respond(
        ca, signer, _status(client.certificate.serial_number, now, CertStatus.GOOD), now
    )
    stranger, _ = build_ocsp_signer(issuer=ca.issuer, issuer_key=ca.issuer_key, now=now)
    with pytest.raises(InvalidSignature):
        _verify_signature(response, stranger)


def test_nonce_is_echoed(
    ca: TestCA, client: Identity, signer: tuple[x509.Certificate, SigningKey], now: datetime
) -> None:
    """A response built for a live request carries that request's nonce."""
    nonce = os.urandom(32)
    query = parse_request(_request(client.certificate, ca.issuer, nonce=nonce))
    response = _respond(
        ca,
        signer,
        _status(query.serial, now, CertStatus.GOOD),
        now,
        nonce=query.nonce,
    )
    echoed = response.extensions.get_extension_for_class(x509.OCSPNonce)
    assert echoed.value.nonce == nonce
    assert echoed.critical is False


def test_response_answers_in_the_query_hash(
    ca: TestCA, client: Identity, signer: tuple[x509.Certificate, SigningKey], now: datetime
) -> None:
    """A SHA-256 CertID is answered with a SHA-256 CertID that equals the request's."""
    query = parse_request(_request(client.certificate, ca.issuer, algorithm=hashes.SHA256()))
    response = _respond(
        ca,
        signer,
        _status(query.serial, now, CertStatus.GOOD),
        now,
        cert_id_hash=query.hash_algorithm,
    )
    assert isinstance(response.hash_algorithm, hashes.SHA256)
    assert (response.issuer_name_hash, response.issuer_key_hash) == (
        query.issuer_name_hash,
        query.issuer_key_hash,
    )


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (None, None),
        (RevocationReason.UNSPECIFIED, None),
        (x509.ReasonFlags.unspecified, None),
        (RevocationReason.SUPERSEDED, x509.ReasonFlags.superseded),
        (x509.ReasonFlags.aa_compromise, x509.ReasonFlags.aa_compromise),
    ],
    ids=["none", "unspecified", "unspecified-flag", "superseded", "aa-compromise-flag"],
)
def test_revocation_reason(
    ca: TestCA,
    signer: tuple[x509.Certificate, SigningKey],
    now: datetime,
    reason: RevocationReason | x509.ReasonFlags | None,
    expected: x509.ReasonFlags | None,
) -> None:
    """Reasons come as RevocationReason or ReasonFlags; unspecified is sent as no reason code."""
    status = CertificateStatus(
        serial=42, status=CertStatus.REVOKED, revoked_at=now - DAY, reason=reason
    )
    assert _respond(ca, signer, status, now).revocation_reason is expected


def test_issued_certificate_is_checked(
    ca: TestCA,
    other_ca: TestCA,
    client: Identity,
    server: Identity,
    signer: tuple[x509.Certificate, SigningKey],
    now: datetime,
) -> None:
    """The optional certificate must be the serial answered for and come from the issuer."""
    good = _status(client.certificate.serial_number, now, CertStatus.GOOD)
    by_cert = _respond(ca, signer, good, now, issued_certificate=client.certificate)
    assert by_cert.serial_number == client.certificate.serial_number
    with pytest.raises(InvalidArgument, match="expected the certificate with serial"):
        _respond(ca, signer, good, now, issued_certificate=server.certificate)
    stranger = other_ca.issue("client.example.com", now=now).certificate
    mismatched = _status(stranger.serial_number, now, CertStatus.GOOD)
    with pytest.raises(InvalidArgument, match="expected a certificate issued by"):
        _respond(ca, signer, mismatched, now, issued_certificate=stranger)


def test_ca_may_sign_for_itself(ca: TestCA, now: datetime) -> None:
    """The CA itself is an authorised responder (RFC 6960 section 4.2.2.2, first case)."""
    response = _respond(ca, (ca.issuer, ca.issuer_key), _status(5, now, CertStatus.GOOD), now)
    assert response.certificates == [ca.issuer]
    _verify_signature(response, ca.issuer)


def test_signer_of_another_ca_is_refused(ca: TestCA, other_ca: TestCA, now: datetime) -> None:
    """A delegated signer speaks only for the CA that issued it: clients would reject it."""
    foreign = build_ocsp_signer(issuer=other_ca.issuer, issuer_key=other_ca.issuer_key, now=now)
    with pytest.raises(InvalidArgument, match="expected an OCSP signer issued by"):
        _respond(ca, foreign, _status(5, now, CertStatus.GOOD), now)


def test_signer_without_ocsp_eku_is_refused(ca: TestCA, client: Identity, now: datetime) -> None:
    """A client certificate of the same CA is not an OCSP signer."""
    with pytest.raises(WrongKeyUsage, match="OCSPSigning"):
        _respond(ca, (client.certificate, client.key), _status(5, now, CertStatus.GOOD), now)


def test_signer_key_must_match(
    ca: TestCA, signer: tuple[x509.Certificate, SigningKey], now: datetime
) -> None:
    """A response signed with a key that is not the signer certificate's is refused."""
    with pytest.raises(KeyMismatch):
        _respond(ca, (signer[0], ca.issuer_key), _status(5, now, CertStatus.GOOD), now)


def test_response_times_are_checked(
    ca: TestCA, signer: tuple[x509.Certificate, SigningKey], now: datetime
) -> None:
    """next_update after this_update, within the signer's life, and aware datetimes only."""

    def attempt(this_update: datetime, next_update: datetime, nonce: bytes | None = None) -> bytes:
        return build_response(
            issuer=ca.issuer,
            signer_cert=signer[0],
            signer_key=signer[1],
            certificate_serial_status=_status(5, now, CertStatus.GOOD),
            this_update=this_update,
            next_update=next_update,
            nonce=nonce,
        )

    with pytest.raises(InvalidArgument, match="next_update after this_update"):
        attempt(now, now)
    with pytest.raises(InvalidArgument, match="outlive its signer"):
        attempt(now, now + timedelta(days=31))
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        attempt(now.replace(tzinfo=None), now + DAY)
    with pytest.raises(InvalidArgument, match="nonce of 1 to 128 bytes"):
        attempt(now, now + DAY, nonce=b"")
    assert attempt(now, now + DAY)


def test_certificate_status_is_consistent(now: datetime) -> None:
    """Revoked needs a time; good and unknown have neither time nor reason."""
    with pytest.raises(InvalidArgument, match="no revocation time"):
        CertificateStatus(serial=1, status=CertStatus.REVOKED)
    with pytest.raises(InvalidArgument, match="only a revoked serial"):
        CertificateStatus(serial=1, status=CertStatus.GOOD, reason=RevocationReason.SUPERSEDED)
    with pytest.raises(InvalidArgument, match="only a revoked serial"):
        CertificateStatus(serial=1, status=CertStatus.UNKNOWN, revoked_at=now)
    with pytest.raises(InvalidArgument, match="non-negative"):
        CertificateStatus(serial=-1, status=CertStatus.GOOD)
    with pytest.raises(InvalidArgument, match="removeFromCRL"):
        CertificateStatus(
            serial=1,
            status=CertStatus.REVOKED,
            revoked_at=now,
            reason=x509.ReasonFlags.remove_from_crl,
        )
    with pytest.raises(InvalidArgument, match="timezone-aware"):
        CertificateStatus(serial=1, status=CertStatus.REVOKED, revoked_at=now.replace(tzinfo=None))


@pytest.mark.parametrize("failure", list(FailureStatus), ids=str)
def test_error_responses(failure: FailureStatus) -> None:
    """Each failure status encodes as an unsigned response with that status and nothing else."""
    response = ocsp.load_der_ocsp_response(error_response(failure))
    assert response.response_status.name == failure.name
    assert error_response(failure) == error_response(failure)


# --- fuzzing -------------------------------------------------------------------------------------

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(data=st.binary(max_size=512))
def test_parse_request_fuzz(data: bytes) -> None:
    """Any bytes give an OcspQuery or a MutlsError, never a traceback."""
    with contextlib.suppress(MutlsError):
        assert isinstance(parse_request(data), OcspQuery)


@_FUZZ
@given(data=st.data())
def test_parse_request_fuzz_mutated(data: st.DataObject) -> None:
    """A real request with bytes changed, cut or inserted gives an OcspQuery or a MutlsError."""
    der = bytearray(_raw_request(serial=0x7FFF_FFFF))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(der) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            der[position] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del der[position]
        else:
            der.insert(position, data.draw(st.integers(0, 255)))
        if not der:
            break
    with contextlib.suppress(MutlsError):
        assert isinstance(parse_request(bytes(der)), OcspQuery)


@_FUZZ
@given(segment=st.text(max_size=300))
def test_request_from_http_get_fuzz(segment: str) -> None:
    """Any path text gives bytes or a MutlsError, never a traceback."""
    with contextlib.suppress(MutlsError):
        assert isinstance(request_from_http_get(segment), bytes)
