"""Inspect: expiry status at boundaries, the stable JSON, and what each finding reports."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mutls.errors import MutlsError
from mutls.pki.authority import Profile, sign_csr
from mutls.pki.csr import SubjectSpec, build_csr, parse_san
from mutls.pki.inspect import (
    ExpiryStatus,
    describe_certificate,
    expiry_status,
    inspect_material,
    serial_hex,
)
from mutls.pki.keys import generate_key, public_key_sha256, spki_pin
from mutls.pki.loader import load_material
from mutls.testing import Identity, TestCA

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("before_expiry", "status", "days"),
    [
        (timedelta(days=91), ExpiryStatus.OK, 91),
        (timedelta(days=90), ExpiryStatus.OK, 90),
        (timedelta(days=90) - SECOND, ExpiryStatus.WARNING, 89),
        (timedelta(days=30), ExpiryStatus.WARNING, 30),
        (timedelta(days=30) - SECOND, ExpiryStatus.URGENT, 29),
        (SECOND, ExpiryStatus.URGENT, 0),
        (timedelta(0), ExpiryStatus.EXPIRED, 0),
        (-DAY, ExpiryStatus.EXPIRED, -1),
    ],
    ids=["91d", "90d", "90d-1s", "30d", "30d-1s", "1s", "at-expiry", "1d-after"],
)
def test_expiry_status_boundaries(
    client: Identity, before_expiry: timedelta, status: ExpiryStatus, days: int
) -> None:
    """ok at 90+ days, warning under 90, urgent under 30, expired at notAfter and after."""
    not_after = client.certificate.not_valid_after_utc
    assert expiry_status(client.certificate, not_after - before_expiry) == (status, days)


def test_expiry_status_not_yet_valid(client: Identity) -> None:
    """Before notBefore the status is not_yet_valid; at notBefore it is valid."""
    not_before = client.certificate.not_valid_before_utc
    assert expiry_status(client.certificate, not_before - SECOND)[0] is ExpiryStatus.NOT_YET_VALID
    assert expiry_status(client.certificate, not_before)[0] is ExpiryStatus.OK


def test_expiry_thresholds_are_settings(client: Identity) -> None:
    """warning_days and urgent_days move the boundaries."""
    at = client.certificate.not_valid_after_utc - timedelta(days=100)
    assert expiry_status(client.certificate, at)[0] is ExpiryStatus.OK
    assert expiry_status(client.certificate, at, warning_days=120)[0] is ExpiryStatus.WARNING
    urgent = expiry_status(client.certificate, at, warning_days=200, urgent_days=120)
    assert urgent[0] is ExpiryStatus.URGENT


def test_describe_leaf(server: Identity, now: datetime) -> None:
    """A server leaf is described with names, usages, key, and fingerprints in their formats."""
    report = describe_certificate(server.certificate, now)
    assert report.subject == "CN=server.example.com"
    assert report.subject_common_name == "server.example.com"
    assert report.issuer == "CN=mutls Test Root CA Issuing CA,O=mutls tests"
    assert int(report.serial, 16) == server.certificate.serial_number
    assert report.serial == report.serial.upper()
    assert len(report.serial) % 2 == 0  # whole bytes, as openssl prints serials
    assert report.subject_alt_names == ("DNS:server.example.com", "IP:127.0.0.1")
    assert report.key_usage == ("digitalSignature",)
    assert report.extended_key_usage == ("serverAuth",)
    assert not report.is_ca
    assert not report.self_signed
    assert (report.key.type, report.key.curve) == ("EC", "P-256")
    assert report.spki_sha256 == spki_pin(server.key.public_key())
    assert report.expiry_status is ExpiryStatus.OK
    assert report.days_remaining in (364, 365)
    parts = report.sha256_fingerprint.split(":")
    assert len(parts) == 32
    assert all(len(p) == 2 and p == p.upper() for p in parts)


def test_describe_root(ca: TestCA, now: datetime) -> None:
    """A root is a self-signed CA with its path length and CA key usages."""
    report = describe_certificate(ca.root, now)
    assert report.is_ca
    assert report.self_signed
    assert report.path_length == 1
    assert set(report.key_usage) >= {"keyCertSign", "cRLSign"}


@pytest.mark.openssl
@needs_openssl
def test_fingerprint_matches_openssl(client: Identity, now: datetime) -> None:
    """sha256_fingerprint is exactly what ``openssl x509 -fingerprint -sha256`` prints."""
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
        input=client.cert_pem,
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert (
        describe_certificate(client.certificate, now).sha256_fingerprint
        == out.split("=")[1].strip()
    )


def _with_serial(ca: TestCA, serial: int, now: datetime) -> x509.Certificate:
    key = generate_key()
    csr = build_csr(key, SubjectSpec(common_name="serial.example.com"))
    return sign_csr(
        csr,
        issuer=ca.issuer,
        issuer_key=ca.issuer_key,
        profile=Profile.CLIENT,
        now=now,
        validity=DAY,
        serial=serial,
    )


@pytest.mark.openssl
@needs_openssl
@pytest.mark.parametrize("serial", [0xABCD, 0xABC], ids=["even-digits", "odd-digits"])
def test_serial_matches_openssl(ca: TestCA, now: datetime, serial: int) -> None:
    """serial is printed as ``openssl x509 -serial`` prints it, whatever its digit count."""
    cert = _with_serial(ca, serial, now)
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-serial"],
        input=cert.public_bytes(serialization.Encoding.PEM),
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert describe_certificate(cert, now).serial == out.strip().removeprefix("serial=")


_TOP_LEVEL_KEYS = {
    "kind",
    "source_format",
    "subject",
    "issuer",
    "serial",
    "not_before",
    "not_after",
    "days_remaining",
    "expiry_status",
    "subject_alt_names",
    "key_usage",
    "extended_key_usage",
    "key_type",
    "key_size",
    "sha256_fingerprint",
    "spki_sha256",
    "has_private_key",
    "key_matches",
    "chain",
    "findings",
}


def test_json_shape_for_combined_file(client: Identity, now: datetime) -> None:
    """The JSON of a certificate with chain and key has every documented key and sane values."""
    data = inspect_material(load_material(client.combined_pem()), now).to_dict()
    assert set(data) >= _TOP_LEVEL_KEYS
    assert data["kind"] == "certificate"
    assert data["has_private_key"] is True
    assert data["key_matches"] is True
    assert data["expiry_status"] == "ok"
    assert data["key_type"] == "EC"
    assert data["key_size"] == 256
    assert data["subject_alt_names"] == ["DNS:client.example.com"]
    assert data["extended_key_usage"] == ["clientAuth"]
    assert isinstance(data["chain"], list)
    assert len(data["chain"]) == 2
    assert data["findings"] == []
    assert datetime.fromisoformat(str(data["not_after"])) == client.certificate.not_valid_after_utc


def test_key_only_report(client: Identity, now: datetime) -> None:
    """A key file reports kind private_key with the public key's SHA-256 and no certificate."""
    data = inspect_material(load_material(client.key_pem()), now).to_dict()
    assert data["kind"] == "private_key"
    assert data["has_private_key"] is True
    assert data["key_matches"] is None
    assert "subject" not in data
    private_key = data["private_key"]
    assert isinstance(private_key, dict)
    assert private_key["public_key_sha256"] == public_key_sha256(client.key.public_key())
    assert private_key["public_key_sha256"] == public_key_sha256(client.certificate.public_key())


def test_csr_report(now: datetime) -> None:
    """A CSR reports kind csr with its subject."""
    csr = build_csr(
        generate_key(), SubjectSpec(common_name="api.example.com"), [parse_san("api.example.com")]
    )
    report = inspect_material(load_material(csr.public_bytes(serialization.Encoding.PEM)), now)
    assert report.kind == "csr"
    assert report.csr_subject == "CN=api.example.com"
    assert report.csr_subject_alt_names == ("DNS:api.example.com",)


def test_csr_sans_use_the_certificate_format(now: datetime) -> None:
    """CSR SANs are written like certificate SANs: DNS:, IP:, email:, URI:."""
    sans = ["api.example.com", "IP:10.0.0.1", "email:ops@example.com", "URI:spiffe://example.com/a"]
    csr = build_csr(
        generate_key(), SubjectSpec(common_name="api.example.com"), [parse_san(s) for s in sans]
    )
    report = inspect_material(load_material(csr.public_bytes(serialization.Encoding.PEM)), now)
    assert report.csr_subject_alt_names == (
        "DNS:api.example.com",
        "IP:10.0.0.1",
        "email:ops@example.com",
        "URI:spiffe://example.com/a",
    )


def _codes(identity: Identity, at: datetime) -> set[str]:
    report = inspect_material(load_material(identity.chain_pem), at)
    return {f.code for f in report.findings}


def test_expired_leaf_finding(client: Identity) -> None:
    """After notAfter the report has certificate_expired."""
    assert "certificate_expired" in _codes(client, client.certificate.not_valid_after_utc + DAY)


def test_not_yet_valid_finding(client: Identity) -> None:
    """Before notBefore the report has certificate_not_yet_valid."""
    at = client.certificate.not_valid_before_utc - DAY
    assert "certificate_not_yet_valid" in _codes(client, at)


def test_expiring_findings(client: Identity) -> None:
    """Within 90 days: expires_soon_warning; within 30: expires_soon_urgent; else none of them."""
    not_after = client.certificate.not_valid_after_utc
    assert "expires_soon_warning" in _codes(client, not_after - timedelta(days=60))
    assert "expires_soon_urgent" in _codes(client, not_after - timedelta(days=10))
    assert _codes(client, not_after - timedelta(days=200)) == set()


def test_weak_key_finding(ca: TestCA, now: datetime, weak_rsa_key: rsa.RSAPrivateKey) -> None:
    """An RSA-1024 leaf is reported as weak_key."""
    csr = build_csr(weak_rsa_key, SubjectSpec(common_name="weak.example.com"))
    cert = sign_csr(
        csr,
        issuer=ca.issuer,
        issuer_key=ca.issuer_key,
        profile=Profile.CLIENT,
        now=now,
        validity=DAY,
    )
    report = inspect_material(load_material(cert.public_bytes(serialization.Encoding.PEM)), now)
    assert "weak_key" in {f.code for f in report.findings}


def test_leaf_alone_is_chain_incomplete(client: Identity, now: datetime) -> None:
    """A leaf without its issuer reports chain_incomplete; with the intermediate it does not."""
    alone = inspect_material(load_material(client.cert_pem), now)
    assert "chain_incomplete" in {f.code for f in alone.findings}
    assert "chain_incomplete" not in _codes(client, now)


def test_damaged_public_key_is_reported_at_load(client: Identity, now: datetime) -> None:
    """A certificate whose public key cannot be decoded is refused at load, naming the damage."""
    der = bytearray(client.certificate.public_bytes(serialization.Encoding.DER))
    spki = client.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der[der.index(spki) + len(spki) - 5] ^= 0x01
    with pytest.raises(MutlsError) as caught:
        inspect_material(load_material(bytes(der)), now)
    assert caught.value.code == "unsupported_format"
    assert "damaged" in caught.value.message


def test_invalid_country_length_inspects_without_warning(
    three_letter_country_root: x509.Certificate, now: datetime
) -> None:
    """Inspecting a CA with ``C=USA`` reports it without a library warning leaking out."""
    material = load_material(three_letter_country_root.public_bytes(serialization.Encoding.PEM))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = inspect_material(material, now)
    assert report.certificate is not None
    assert "C=USA" in report.certificate.subject


@pytest.mark.parametrize(
    ("serial", "expected"),
    [(0x1, "01"), (0xAB, "AB"), (0x1AB, "01AB"), (0x134AF4A1, "134AF4A1"), (0x34AF4A1, "034AF4A1")],
)
def test_serial_hex_pads_to_whole_bytes(serial: int, expected: str) -> None:
    """Serials print as openssl prints them, so an odd-length serial gains a leading zero."""
    assert serial_hex(serial) == expected
