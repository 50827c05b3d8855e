"""CSR building: subject names, SAN parsing, signatures for every key type."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from mutls.errors import InvalidArgument
from mutls.pki.csr import SubjectSpec, build_csr, build_name, csr_like, parse_san
from mutls.pki.keys import generate_key
from mutls.testing import TestCA


def test_build_name_orders_fields_and_skips_empty() -> None:
    """Given fields appear in C, ST, L, O, OU, CN order; None and empty fields are left out."""
    name = build_name(
        SubjectSpec(
            common_name="api.example.com",
            country="CA",
            state="",
            locality="Ottawa",
            organization="Acme",
            organizational_unit=None,
        )
    )
    assert [a.oid for a in name] == [
        NameOID.COUNTRY_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.COMMON_NAME,
    ]
    assert name.rfc4514_string() == "CN=api.example.com,O=Acme,L=Ottawa,C=CA"


@pytest.mark.parametrize(
    "subject",
    [
        SubjectSpec(common_name="a.example.com", country="CAN"),
        SubjectSpec(common_name="x" * 65),
    ],
    ids=["three-letter-country", "long-cn"],
)
def test_build_name_rejects_invalid_fields(subject: SubjectSpec) -> None:
    """A country that is not two letters or a CN over 64 characters is invalid_argument."""
    with pytest.raises(InvalidArgument) as excinfo:
        build_name(subject)
    assert excinfo.value.code == "invalid_argument"
    assert excinfo.value.hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DNS:api.example.com", x509.DNSName("api.example.com")),
        ("dns:api.example.com", x509.DNSName("api.example.com")),
        ("api.example.com", x509.DNSName("api.example.com")),
        ("IP:10.0.0.1", x509.IPAddress(ipaddress.ip_address("10.0.0.1"))),
        ("10.0.0.1", x509.IPAddress(ipaddress.ip_address("10.0.0.1"))),
        ("::1", x509.IPAddress(ipaddress.ip_address("::1"))),
        ("IP:::1", x509.IPAddress(ipaddress.ip_address("::1"))),
        (
            "URI:spiffe://example.com/api",
            x509.UniformResourceIdentifier("spiffe://example.com/api"),
        ),
        ("email:ops@example.com", x509.RFC822Name("ops@example.com")),
    ],
)
def test_parse_san(text: str, expected: x509.GeneralName) -> None:
    """SAN text in typed and bare forms becomes the right GeneralName."""
    assert parse_san(text) == expected


@pytest.mark.parametrize("text", ["IP:999.1.1.1", "IP:example.com", "", "DNS:", "bücher.de"])
def test_parse_san_rejects(text: str) -> None:
    """Bad IPs, empty names and non-ASCII DNS names are invalid_argument."""
    with pytest.raises(InvalidArgument):
        parse_san(text)


def test_build_csr_ec_with_sans() -> None:
    """An EC CSR carries the subject and SANs and its signature verifies."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [parse_san("api.example.com"), parse_san("IP:10.0.0.1")]
    csr = build_csr(key, SubjectSpec(common_name="api.example.com", country="CA"), sans)
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=api.example.com,C=CA"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == sans


def test_build_csr_without_sans_has_no_san_extension() -> None:
    """No SANs given: the CSR has no SubjectAlternativeName extension at all."""
    csr = build_csr(
        ec.generate_private_key(ec.SECP256R1()), SubjectSpec(common_name="a.example.com")
    )
    with pytest.raises(x509.ExtensionNotFound):
        csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_build_csr_ed25519() -> None:
    """Ed25519 keys sign CSRs (no separate digest)."""
    csr = build_csr(ed25519.Ed25519PrivateKey.generate(), SubjectSpec(common_name="a.example.com"))
    assert csr.is_signature_valid
    assert csr.signature_hash_algorithm is None


def test_build_csr_rsa(rsa_key: rsa.RSAPrivateKey) -> None:
    """RSA keys sign CSRs with SHA-256."""
    csr = build_csr(rsa_key, SubjectSpec(common_name="a.example.com"))
    assert csr.is_signature_valid
    assert csr.signature_hash_algorithm is not None
    assert csr.signature_hash_algorithm.name == "sha256"


def test_csr_like_asks_for_exactly_the_names_of_a_certificate() -> None:
    ca = TestCA(name="Like CA", organization="Like")
    old = ca.issue("svc.like.example", sans=["svc.like.example", "IP:10.0.0.7"]).certificate
    key = generate_key()
    csr = csr_like(old, key)
    assert csr.is_signature_valid
    assert csr.subject == old.subject
    san = x509.SubjectAlternativeName
    assert (
        csr.extensions.get_extension_for_class(san).value
        == old.extensions.get_extension_for_class(san).value
    )
    assert csr.public_key() == key.public_key()
