"""Shared, session-scoped material for the unit tests: one clock reading and throwaway CAs.

Every test that needs the time takes ``now`` and passes it on explicitly; nothing below the test
reads the clock again, so a slow run cannot move a boundary.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from mutls.pki.authority import Profile
from mutls.testing import Identity, TestCA


@pytest.fixture(scope="session")
def now() -> datetime:
    """The one clock reading the unit tests use."""
    return datetime.now(UTC)


@pytest.fixture(scope="session")
def ca(now: datetime) -> TestCA:
    """A root with an issuing intermediate (organisation "mutls tests")."""
    return TestCA(now=now)


@pytest.fixture(scope="session")
def other_ca(now: datetime) -> TestCA:
    """An unrelated CA in another organisation."""
    return TestCA(name="Other CA", organization="Other org", now=now)


@pytest.fixture(scope="session")
def client(ca: TestCA, now: datetime) -> Identity:
    """A client certificate for client.example.com, issued by the intermediate of ``ca``."""
    return ca.issue("client.example.com", now=now)


@pytest.fixture(scope="session")
def server(ca: TestCA, now: datetime) -> Identity:
    """A server certificate naming server.example.com and 127.0.0.1."""
    return ca.issue(
        "server.example.com",
        profile=Profile.SERVER,
        sans=["server.example.com", "127.0.0.1"],
        now=now,
    )


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    """One RSA-2048 key for the tests where RSA is the point (generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def weak_rsa_key() -> rsa.RSAPrivateKey:
    """An RSA-1024 key: too weak for mTLS."""
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@pytest.fixture(scope="session")
def three_letter_country_root(now: datetime) -> x509.Certificate:
    """A self-signed CA with ``C=USA``: invalid, but found in old corporate CAs in the wild."""
    key = ec.generate_private_key(ec.SECP256R1())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # cryptography warns about the bad C=
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "USA", _validate=False),
                x509.NameAttribute(NameOID.COMMON_NAME, "Old Corp Root"),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
