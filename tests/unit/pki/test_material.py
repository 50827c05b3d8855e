"""Material: the loaded value; findings stay data until a caller requires an identity."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mutls.errors import KeyMismatch, MissingPrivateKey, NotACertificate
from mutls.pki.loader import load_material
from mutls.pki.material import Finding, Material, Severity, SourceFormat
from mutls.testing import Identity


def test_identity_is_returned_when_complete(client: Identity) -> None:
    """require_identity returns the leaf and its key when both are present and match."""
    material = Material(
        source_format=SourceFormat.PEM,
        leaf=client.certificate,
        chain=(client.certificate,),
        key=client.key,
    )
    leaf, key = material.require_identity()
    assert leaf == client.certificate
    assert key is client.key
    assert material.has_private_key
    assert material.key_matches is True


def test_key_only_is_not_a_certificate(client: Identity) -> None:
    """A key alone: require_certificate says not_a_certificate and names what was found."""
    material = Material(source_format=SourceFormat.PEM, key=client.key)
    with pytest.raises(NotACertificate) as excinfo:
        material.require_certificate()
    assert excinfo.value.code == "not_a_certificate"
    assert "private key" in excinfo.value.message
    assert material.key_matches is None


def test_csr_is_not_a_certificate() -> None:
    """A CSR where a certificate was expected: not_a_certificate, naming the CSR."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "a.example.com")]))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(NotACertificate) as excinfo:
        Material(source_format=SourceFormat.DER, csr=csr).require_certificate()
    assert "CSR" in excinfo.value.message


def test_certificate_without_key(client: Identity) -> None:
    """A certificate alone: require_key and require_identity say missing_private_key."""
    material = load_material(client.cert_pem)
    assert not material.has_private_key
    assert material.key_matches is None
    with pytest.raises(MissingPrivateKey) as excinfo:
        material.require_identity()
    assert excinfo.value.code == "missing_private_key"
    assert excinfo.value.hint


def test_mismatched_key_refused_by_require_identity(client: Identity, server: Identity) -> None:
    """A certificate with somebody else's key: key_matches False, require_identity key_mismatch."""
    material = Material(source_format=SourceFormat.PEM, leaf=client.certificate, key=server.key)
    assert material.key_matches is False
    with pytest.raises(KeyMismatch):
        material.require_identity()


def test_finding_lookup_and_shape() -> None:
    """finding() returns the finding with that code, or None; to_dict has the stable keys."""
    finding = Finding(code="chain_out_of_order", severity=Severity.WARNING, message="m", hint="h")
    material = Material(source_format=SourceFormat.PEM, findings=(finding,))
    assert material.finding("chain_out_of_order") is finding
    assert material.finding("key_mismatch") is None
    assert finding.to_dict() == {
        "code": "chain_out_of_order",
        "severity": "warning",
        "message": "m",
        "hint": "h",
    }


def test_repr_never_shows_the_key(client: Identity) -> None:
    """The private key is left out of repr, so logging a Material cannot leak it."""
    material = load_material(client.combined_pem())
    assert "key=" not in repr(material).replace("key_was_encrypted", "")
    assert "PRIVATE" not in repr(material)
