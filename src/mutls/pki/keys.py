"""Private and public keys: generate, describe, fingerprint, match, judge strength.

Every key type that X.509 uses in practice is handled the same way: the public half is compared
and fingerprinted through its DER SubjectPublicKeyInfo, which is unambiguous for RSA, EC, EdDSA and
DSA alike (no ``openssl x509 -modulus | md5`` that only works for RSA).
"""

from __future__ import annotations

import base64
import enum
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from mutls.errors import KeyMismatch

__all__ = [
    "SIGNING_KEY_TYPES",
    "KeyInfo",
    "KeyMatch",
    "KeySpec",
    "describe_public_key",
    "generate_key",
    "key_spec_of",
    "key_weakness",
    "match_key",
    "public_key_sha256",
    "signing_key",
    "spki_pin",
]

#: Private keys that can sign a TLS handshake or a certificate: all that X.509 material holds.
SigningKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | dsa.DSAPrivateKey
)
SIGNING_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)


def signing_key(key: PrivateKeyTypes) -> SigningKey | None:
    """``key`` narrowed to a signing key, or None for key-agreement-only keys (DH, X25519)."""
    if isinstance(key, SIGNING_KEY_TYPES):
        return key
    return None


# Curves that every TLS stack and every CA accepts. Anything else is refused as weak or exotic.
_STRONG_CURVES = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}
_MIN_RSA_BITS = 2048  # NIST SP 800-131A; OpenSSL security level 2 refuses less.


class KeySpec(enum.StrEnum):
    """Key algorithms mutls generates. ECDSA P-256 is the default: fast, small and universal."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ED25519 = "ed25519"


def generate_key(spec: KeySpec = KeySpec.EC_P256) -> SigningKey:
    """A new private key of the given kind."""
    if spec is KeySpec.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if spec is KeySpec.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    if spec is KeySpec.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    bits = int(spec.value.split("-")[1])
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_spec_of(key: SigningKey) -> KeySpec:
    """The kind of ``key``, to make a new key like it (renewal with a fresh key). Sizes mutls
    does not generate round up to the next one it does (an RSA 2560 key becomes RSA 3072)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return KeySpec.ED25519
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return KeySpec.EC_P256 if key.curve.key_size <= 256 else KeySpec.EC_P384
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size <= 2048:
            return KeySpec.RSA_2048
        return KeySpec.RSA_3072 if key.key_size <= 3072 else KeySpec.RSA_4096
    return KeySpec.EC_P256


@dataclass(frozen=True, kw_only=True)
class KeyInfo:
    """What a person wants to know about a key, without any secret part."""

    type: str  # "RSA", "EC", "Ed25519", "Ed448", "DSA"
    size: int  # bits of security-relevant size: RSA modulus, curve size, 255/448 for EdDSA
    curve: str | None
    public_key_sha256: str  # hex SHA-256 of the DER SubjectPublicKeyInfo

    def label(self) -> str:
        if self.curve:
            return f"{self.type} {self.curve} ({self.size} bits)"
        return f"{self.type} {self.size} bits"

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "size": self.size,
            "curve": self.curve,
            "public_key_sha256": self.public_key_sha256,
        }


def _spki_der(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_sha256(public_key: PublicKeyTypes) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo: the same for a key and its certificate."""
    return hashlib.sha256(_spki_der(public_key)).hexdigest()


def spki_pin(public_key: PublicKeyTypes) -> str:
    """Base64 SHA-256 of the SubjectPublicKeyInfo, the form used by HPKP, curl's --pinnedpubkey
    and Envoy's ``verify_certificate_spki``."""
    return base64.b64encode(hashlib.sha256(_spki_der(public_key)).digest()).decode("ascii")


def describe_public_key(public_key: PublicKeyTypes) -> KeyInfo:
    fingerprint = public_key_sha256(public_key)
    if isinstance(public_key, rsa.RSAPublicKey):
        return KeyInfo(
            type="RSA", size=public_key.key_size, curve=None, public_key_sha256=fingerprint
        )
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return KeyInfo(
            type="EC",
            size=public_key.curve.key_size,
            curve=_curve_label(public_key.curve.name),
            public_key_sha256=fingerprint,
        )
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyInfo(type="Ed25519", size=255, curve=None, public_key_sha256=fingerprint)
    if isinstance(public_key, ed448.Ed448PublicKey):
        return KeyInfo(type="Ed448", size=448, curve=None, public_key_sha256=fingerprint)
    if isinstance(public_key, dsa.DSAPublicKey):
        return KeyInfo(
            type="DSA", size=public_key.key_size, curve=None, public_key_sha256=fingerprint
        )
    return KeyInfo(
        type=type(public_key).__name__, size=0, curve=None, public_key_sha256=fingerprint
    )


def _curve_label(name: str) -> str:
    return {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(name, name)


def key_weakness(public_key: PublicKeyTypes) -> str | None:
    """Why this key is too weak for mTLS, or None when it is fine."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < _MIN_RSA_BITS:
            return f"RSA keys need at least {_MIN_RSA_BITS} bits; found {public_key.key_size}"
        return None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in _STRONG_CURVES:
            return (
                "EC keys must use P-256, P-384 or P-521; found curve "
                f"{public_key.curve.name} ({public_key.curve.key_size} bits)"
            )
        return None
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return None
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"DSA keys are not accepted by modern TLS; found DSA {public_key.key_size} bits"
    return f"unsupported key type {type(public_key).__name__}"


@dataclass(frozen=True, kw_only=True)
class KeyMatch:
    """The answer to "does this key belong to this certificate", with the evidence."""

    matches: bool
    certificate_public_key_sha256: str
    private_key_public_key_sha256: str

    def to_dict(self) -> dict[str, object]:
        return {
            "matches": self.matches,
            "certificate_public_key_sha256": self.certificate_public_key_sha256,
            "private_key_public_key_sha256": self.private_key_public_key_sha256,
        }

    def raise_for_mismatch(self) -> None:
        if not self.matches:
            raise KeyMismatch(
                "the private key does not belong to the certificate: the certificate's public "
                f"key has SHA-256 {self.certificate_public_key_sha256}, the private key's "
                f"public key has SHA-256 {self.private_key_public_key_sha256}"
            )


def match_key(certificate: x509.Certificate, private_key: PrivateKeyTypes) -> KeyMatch:
    cert_fp = public_key_sha256(certificate.public_key())
    key_fp = public_key_sha256(private_key.public_key())
    return KeyMatch(
        matches=cert_fp == key_fp,
        certificate_public_key_sha256=cert_fp,
        private_key_public_key_sha256=key_fp,
    )
