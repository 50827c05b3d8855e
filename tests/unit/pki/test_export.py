"""Export: every format round-trips through the importer; passphrases are honoured."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from mutls.errors import (
    InvalidArgument,
    KeyMismatch,
    MissingPrivateKey,
    MutlsError,
    NotACertificate,
)
from mutls.pki.export import ExportFormat, P12Profile, export_material, private_key_pem
from mutls.pki.keys import public_key_sha256
from mutls.pki.loader import load_material
from mutls.pki.material import Material, SourceFormat
from mutls.testing import Identity, TestCA

PASSPHRASE = b"export passphrase"


@pytest.fixture(scope="module")
def material(client: Identity) -> Material:
    return load_material(client.combined_pem())


def _same_key(a: Material, b: Material) -> bool:
    assert a.key is not None
    assert b.key is not None
    return public_key_sha256(a.key.public_key()) == public_key_sha256(b.key.public_key())


def test_pem_round_trip(material: Material, client: Identity) -> None:
    """PEM export is the leaf alone."""
    data = export_material(material, ExportFormat.PEM)
    assert data.count(b"BEGIN CERTIFICATE") == 1
    back = load_material(data)
    assert back.chain == (client.certificate,)
    assert back.key is None


def test_der_round_trip(material: Material, client: Identity) -> None:
    """DER export is the leaf in binary."""
    back = load_material(export_material(material, ExportFormat.DER))
    assert back.source_format is SourceFormat.DER
    assert back.leaf == client.certificate


def test_chain_round_trip(material: Material, client: Identity, ca: TestCA) -> None:
    """Chain export is leaf then intermediate, in order, without the key."""
    data = export_material(material, ExportFormat.CHAIN)
    back = load_material(data)
    assert back.chain == (client.certificate, ca.intermediate)
    assert back.findings == ()
    assert b"PRIVATE KEY" not in data


def test_p7b_round_trip(material: Material, client: Identity, ca: TestCA) -> None:
    """PKCS#7 export loads back as the same chain, with no complaint about order."""
    data = export_material(material, ExportFormat.P7B)
    assert data.startswith(b"-----BEGIN PKCS7-----")
    back = load_material(data)
    assert back.chain == (client.certificate, ca.intermediate)
    assert back.finding("chain_out_of_order") is None


def test_key_plain(material: Material) -> None:
    """Key export without a passphrase is unencrypted PKCS#8."""
    data = export_material(material, ExportFormat.KEY)
    assert b"-----BEGIN PRIVATE KEY-----" in data
    back = load_material(data)
    assert _same_key(back, material)
    assert not back.key_was_encrypted


def test_key_encrypted(material: Material) -> None:
    """Key export with a passphrase is encrypted PKCS#8 that opens only with that passphrase."""
    data = export_material(material, ExportFormat.KEY, passphrase=PASSPHRASE)
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data
    back = load_material(data, PASSPHRASE)
    assert _same_key(back, material)
    assert back.key_was_encrypted
    with pytest.raises(MutlsError) as excinfo:
        load_material(data, b"other")
    assert excinfo.value.code == "wrong_passphrase"


def test_combined_plain(material: Material, client: Identity, ca: TestCA) -> None:
    """Combined export: certificates first, then the key; it loads back as a matching identity."""
    data = export_material(material, ExportFormat.COMBINED)
    assert data.index(b"BEGIN CERTIFICATE") < data.index(b"BEGIN PRIVATE KEY")
    assert data.rindex(b"END CERTIFICATE") < data.index(b"BEGIN PRIVATE KEY")
    back = load_material(data)
    assert back.chain == (client.certificate, ca.intermediate)
    assert back.key_matches is True
    assert back.findings == ()


def test_combined_encrypted(material: Material) -> None:
    """Combined export with a passphrase encrypts the key part."""
    data = export_material(material, ExportFormat.COMBINED, passphrase=PASSPHRASE)
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in data
    back = load_material(data, PASSPHRASE)
    assert back.key_matches is True
    assert back.key_was_encrypted


@pytest.mark.parametrize("profile", list(P12Profile))
def test_p12_round_trip(
    material: Material, client: Identity, ca: TestCA, profile: P12Profile
) -> None:
    """PKCS#12 (modern and legacy) holds key, leaf and intermediate under the passphrase."""
    data = export_material(material, ExportFormat.P12, passphrase=PASSPHRASE, profile=profile)
    back = load_material(data, PASSPHRASE)
    assert back.source_format is SourceFormat.PKCS12
    assert back.chain == (client.certificate, ca.intermediate)
    assert back.key_matches is True
    assert back.key_was_encrypted


def test_p12_friendly_name(material: Material) -> None:
    """The PKCS#12 friendly name defaults to the subject and can be set."""
    default = pkcs12.load_pkcs12(
        export_material(material, ExportFormat.P12, passphrase=PASSPHRASE), PASSPHRASE
    )
    assert default.cert is not None
    assert default.cert.friendly_name == b"CN=client.example.com"
    named = pkcs12.load_pkcs12(
        export_material(
            material, ExportFormat.P12, passphrase=PASSPHRASE, friendly_name="my client"
        ),
        PASSPHRASE,
    )
    assert named.cert is not None
    assert named.cert.friendly_name == b"my client"


@pytest.mark.parametrize("passphrase", [None, b""], ids=["none", "empty"])
def test_p12_requires_passphrase(material: Material, passphrase: bytes | None) -> None:
    """PKCS#12 without a passphrase is refused as invalid_argument, with a hint."""
    with pytest.raises(InvalidArgument) as excinfo:
        export_material(material, ExportFormat.P12, passphrase=passphrase)
    assert excinfo.value.code == "invalid_argument"
    assert excinfo.value.hint


def test_key_formats_need_a_key(client: Identity) -> None:
    """KEY, COMBINED and P12 from a certificate alone: missing_private_key."""
    certificate_only = load_material(client.chain_pem)
    for fmt in (ExportFormat.KEY, ExportFormat.COMBINED, ExportFormat.P12):
        with pytest.raises(MissingPrivateKey):
            export_material(certificate_only, fmt, passphrase=PASSPHRASE)


def test_certificate_formats_need_a_certificate(client: Identity) -> None:
    """PEM, DER, CHAIN and P7B from a key alone: not_a_certificate."""
    key_only = load_material(client.key_pem())
    for fmt in (ExportFormat.PEM, ExportFormat.DER, ExportFormat.CHAIN, ExportFormat.P7B):
        with pytest.raises(NotACertificate):
            export_material(key_only, fmt)


def test_mismatched_key_is_not_exported(client: Identity, server: Identity) -> None:
    """A certificate with somebody else's key is never written as an identity: key_mismatch."""
    mismatched = load_material(client.chain_pem + server.key_pem())
    for fmt in (ExportFormat.COMBINED, ExportFormat.P12):
        with pytest.raises(KeyMismatch):
            export_material(mismatched, fmt, passphrase=PASSPHRASE)


def test_private_key_pem(client: Identity) -> None:
    """private_key_pem writes PKCS#8, encrypted only when a non-empty passphrase is given."""
    assert b"BEGIN PRIVATE KEY" in private_key_pem(client.key, None)
    assert b"BEGIN PRIVATE KEY" in private_key_pem(client.key, b"")
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in private_key_pem(client.key, PASSPHRASE)
