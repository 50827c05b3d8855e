"""Keys: generation, description, SPKI fingerprints and pins, matching, strength."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from mutls.errors import KeyMismatch
from mutls.pki.keys import (
    KeySpec,
    describe_public_key,
    generate_key,
    key_spec_of,
    key_weakness,
    match_key,
    public_key_sha256,
    spki_pin,
)
from mutls.testing import Identity, TestCA


def _spki(key: PrivateKeyTypes) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("spec", "kind", "size", "curve"),
    [
        (KeySpec.EC_P256, "EC", 256, "P-256"),
        (KeySpec.EC_P384, "EC", 384, "P-384"),
        (KeySpec.ED25519, "Ed25519", 255, None),
    ],
)
def test_generate_key_makes_the_requested_kind(
    spec: KeySpec, kind: str, size: int, curve: str | None
) -> None:
    """generate_key returns a key of the kind named by the spec, described accordingly."""
    info = describe_public_key(generate_key(spec).public_key())
    assert (info.type, info.size, info.curve) == (kind, size, curve)


def test_generate_key_default_is_p256() -> None:
    """The default key is ECDSA P-256."""
    key = generate_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


def test_generate_key_rsa_2048() -> None:
    """RSA specs produce RSA keys of the named size."""
    key = generate_key(KeySpec.RSA_2048)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048


def test_describe_rsa_and_labels(rsa_key: rsa.RSAPrivateKey) -> None:
    """RSA keys are described by modulus size; labels read naturally with and without a curve."""
    info = describe_public_key(rsa_key.public_key())
    assert (info.type, info.size, info.curve) == ("RSA", 2048, None)
    assert info.label() == "RSA 2048 bits"
    p256 = describe_public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
    assert p256.label() == "EC P-256 (256 bits)"
    assert set(p256.to_dict()) == {"type", "size", "curve", "public_key_sha256"}


def test_describe_ed448() -> None:
    """Ed448 keys are recognised."""
    info = describe_public_key(ed448.Ed448PrivateKey.generate().public_key())
    assert (info.type, info.size) == ("Ed448", 448)


def test_public_key_sha256_is_hex_sha256_of_spki() -> None:
    """public_key_sha256 is the hex SHA-256 of the DER SubjectPublicKeyInfo."""
    key = ec.generate_private_key(ec.SECP256R1())
    assert public_key_sha256(key.public_key()) == hashlib.sha256(_spki(key)).hexdigest()


def test_spki_pin_is_base64_sha256_of_spki() -> None:
    """spki_pin is base64(SHA-256(SPKI)), the form curl --pinnedpubkey and HPKP use."""
    key = ec.generate_private_key(ec.SECP256R1())
    expected = base64.b64encode(hashlib.sha256(_spki(key)).digest()).decode()
    assert spki_pin(key.public_key()) == expected
    assert len(spki_pin(key.public_key())) == 44


def test_spki_pin_same_for_certificate_and_key(client: Identity) -> None:
    """The pin computed from a certificate equals the pin computed from its private key."""
    assert spki_pin(client.certificate.public_key()) == spki_pin(client.key.public_key())


def test_match_key_ec(client: Identity) -> None:
    """An EC certificate matches its own key."""
    result = match_key(client.certificate, client.key)
    assert result.matches
    assert result.certificate_public_key_sha256 == result.private_key_public_key_sha256
    result.raise_for_mismatch()


def test_match_key_ec_mismatch(client: Identity) -> None:
    """An EC certificate does not match another EC key, and raise_for_mismatch says key_mismatch."""
    result = match_key(client.certificate, ec.generate_private_key(ec.SECP256R1()))
    assert not result.matches
    assert result.certificate_public_key_sha256 != result.private_key_public_key_sha256
    with pytest.raises(KeyMismatch) as excinfo:
        result.raise_for_mismatch()
    assert excinfo.value.code == "key_mismatch"
    assert result.certificate_public_key_sha256 in excinfo.value.message
    assert set(result.to_dict()) == {
        "matches",
        "certificate_public_key_sha256",
        "private_key_public_key_sha256",
    }


def test_match_key_rsa(ca: TestCA, now: datetime, weak_rsa_key: rsa.RSAPrivateKey) -> None:
    """An RSA certificate matches its own key and not another RSA key."""
    identity = ca.issue("rsa.example.com", key_spec=KeySpec.RSA_2048, now=now)
    assert match_key(identity.certificate, identity.key).matches
    assert not match_key(identity.certificate, weak_rsa_key).matches


def test_match_key_ed25519(ca: TestCA, now: datetime) -> None:
    """An Ed25519 certificate matches its own key and not another Ed25519 key."""
    identity = ca.issue("ed.example.com", key_spec=KeySpec.ED25519, now=now)
    assert match_key(identity.certificate, identity.key).matches
    assert not match_key(identity.certificate, ed25519.Ed25519PrivateKey.generate()).matches


def test_match_key_across_types(client: Identity) -> None:
    """An EC certificate does not match an Ed25519 key (no type confusion)."""
    assert not match_key(client.certificate, ed25519.Ed25519PrivateKey.generate()).matches


def test_rsa_1024_is_weak(weak_rsa_key: rsa.RSAPrivateKey) -> None:
    """RSA below 2048 bits is weak, and the reason names the size found."""
    reason = key_weakness(weak_rsa_key.public_key())
    assert reason is not None
    assert "1024" in reason


def test_rsa_2048_is_fine(rsa_key: rsa.RSAPrivateKey) -> None:
    """RSA 2048 is accepted."""
    assert key_weakness(rsa_key.public_key()) is None


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_nist_curves_are_fine(curve: ec.EllipticCurve) -> None:
    """P-256, P-384 and P-521 are accepted."""
    assert key_weakness(ec.generate_private_key(curve).public_key()) is None


def test_secp256k1_is_weak() -> None:
    """secp256k1 (a curve TLS stacks refuse) is reported, naming the curve."""
    reason = key_weakness(ec.generate_private_key(ec.SECP256K1()).public_key())
    assert reason is not None
    assert "secp256k1" in reason


def test_eddsa_is_fine() -> None:
    """Ed25519 and Ed448 are accepted."""
    assert key_weakness(ed25519.Ed25519PrivateKey.generate().public_key()) is None
    assert key_weakness(ed448.Ed448PrivateKey.generate().public_key()) is None


def test_dsa_is_weak() -> None:
    """DSA keys are refused whatever their size."""
    key = dsa.generate_private_key(key_size=1024)
    reason = key_weakness(key.public_key())
    assert reason is not None
    assert "DSA" in reason
    assert describe_public_key(key.public_key()).type == "DSA"


@pytest.mark.parametrize("spec", list(KeySpec))
def test_key_spec_of_names_the_kind_of_key_it_was_made_as(spec: KeySpec) -> None:
    assert key_spec_of(generate_key(spec)) is spec
