"""Envelope encryption of vault values: AES-256-GCM, one data key per value. Sans-IO.

Why an envelope: each value gets its own random data key, and only the 32-byte data key is
encrypted ("wrapped") by the master key. Rotating the master key then rewraps small data keys and
never touches the values, and destroying one wrapped key erases exactly one value.

Why the additional data: the ciphertext and the wrapped key are authenticated together with the
secret id, environment, version and type they were written for (:class:`Binding`). A ciphertext
copied to another secret, another environment or another version row in the database fails to
decrypt instead of silently serving the wrong credential. The wrapped key's additional data also
carries the master key version, so a wrapped key cannot be relabelled as another version's.

Nonces are random 96-bit values. Data keys encrypt one message each, so their nonce never repeats;
a master key wraps one data key per stored value, far below the 2^32 random-nonce limit that NIST
SP 800-38D sets for one GCM key.

Data keys live in local variables for one call; nothing is cached here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mutls.errors import DecryptionFailed
from mutls.vault.keyring import KEY_BYTES, Keyring, MasterKey

__all__ = ["AAD_FORMAT_VERSION", "Binding", "Sealed", "open_sealed", "rewrap", "seal"]

#: Bumped if the additional-data encoding ever changes; part of every AAD.
AAD_FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
WRAPPED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES

VALUE_PURPOSE = "value"
DATA_KEY_PURPOSE = "data-key"


@dataclass(frozen=True, kw_only=True)
class Binding:
    """Where a value belongs. It is not stored with the ciphertext: it is the row's own identity."""

    secret_id: str
    environment: str
    version: int
    secret_type: str

    def aad(self, purpose: str, *, key_version: int | None = None) -> bytes:
        """Canonical additional data: compact JSON with sorted keys, so one binding has one
        encoding and distinct bindings never share one (JSON quotes and escapes every string)."""
        fields: dict[str, object] = {
            "v": AAD_FORMAT_VERSION,
            "purpose": purpose,
            "secret_id": self.secret_id,
            "environment": self.environment,
            "version": self.version,
            "secret_type": self.secret_type,
        }
        if key_version is not None:
            fields["key_version"] = key_version
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
            "ascii"
        )

    def describe(self) -> str:
        return (
            f"secret {self.secret_id} ({self.secret_type}), environment {self.environment}, "
            f"version {self.version}"
        )


@dataclass(frozen=True, kw_only=True)
class Sealed:
    """What is stored for one value: ciphertext, wrapped data key, and the wrapping version."""

    ciphertext: bytes = field(repr=False)  # nonce || AES-GCM(data key, plaintext) || tag
    wrapped_key: bytes = field(repr=False)  # nonce || AES-GCM(master key, data key) || tag
    key_version: int

    def __repr__(self) -> str:
        return (
            f"Sealed(ciphertext=<{len(self.ciphertext)} bytes>, "
            f"wrapped_key=<{len(self.wrapped_key)} bytes>, key_version={self.key_version})"
        )


def seal(plaintext: bytes, *, binding: Binding, keyring: Keyring) -> Sealed:
    """Encrypt ``plaintext`` under a fresh data key, wrapped by the keyring's active version."""
    data_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = nonce + AESGCM(data_key).encrypt(
        nonce, bytes(plaintext), binding.aad(VALUE_PURPOSE)
    )
    master = keyring.active
    return Sealed(
        ciphertext=ciphertext,
        wrapped_key=_wrap(data_key, master, binding),
        key_version=master.version,
    )


def open_sealed(sealed: Sealed, *, binding: Binding, keyring: Keyring) -> bytes:
    """The plaintext, or DecryptionFailed when the value does not belong to ``binding``."""
    master = keyring.get(sealed.key_version)  # MasterKeyUnavailable when the version is gone
    data_key = _unwrap(sealed, master, binding)
    if len(sealed.ciphertext) < NONCE_BYTES + TAG_BYTES:
        raise _failed(
            binding,
            f"expected a ciphertext of at least {NONCE_BYTES + TAG_BYTES} bytes; found "
            f"{len(sealed.ciphertext)}",
        )
    nonce, body = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
    try:
        return AESGCM(data_key).decrypt(nonce, body, binding.aad(VALUE_PURPOSE))
    except InvalidTag:
        raise _failed(
            binding, "the value's authentication tag does not match this binding"
        ) from None


def rewrap(sealed: Sealed, *, binding: Binding, keyring: Keyring) -> Sealed:
    """The same value with its data key wrapped by the keyring's active version (rotation).

    The ciphertext is returned untouched: only the 60-byte wrapped key changes.
    """
    data_key = _unwrap(sealed, keyring.get(sealed.key_version), binding)
    master = keyring.active
    return Sealed(
        ciphertext=sealed.ciphertext,
        wrapped_key=_wrap(data_key, master, binding),
        key_version=master.version,
    )


def _wrap(data_key: bytes, master: MasterKey, binding: Binding) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    aad = binding.aad(DATA_KEY_PURPOSE, key_version=master.version)
    return nonce + AESGCM(master.key).encrypt(nonce, data_key, aad)


def _unwrap(sealed: Sealed, master: MasterKey, binding: Binding) -> bytes:
    if len(sealed.wrapped_key) != WRAPPED_KEY_BYTES:
        raise _failed(
            binding,
            f"expected a wrapped data key of {WRAPPED_KEY_BYTES} bytes; found "
            f"{len(sealed.wrapped_key)}",
        )
    nonce, body = sealed.wrapped_key[:NONCE_BYTES], sealed.wrapped_key[NONCE_BYTES:]
    aad = binding.aad(DATA_KEY_PURPOSE, key_version=master.version)
    try:
        return AESGCM(master.key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise _failed(
            binding,
            f"the data key does not unwrap with master key version {master.version} for this "
            "binding",
        ) from None


def _failed(binding: Binding, why: str) -> DecryptionFailed:
    return DecryptionFailed(
        f"could not decrypt {binding.describe()}: expected a value sealed for exactly this "
        f"secret, environment and version; {why}"
    )
