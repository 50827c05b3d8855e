"""Envelope encryption: round trips, the binding to secret/environment/version, and rotation."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutls.errors import DecryptionFailed, MasterKeyUnavailable
from mutls.vault.envelope import Binding, Sealed, open_sealed, rewrap, seal
from mutls.vault.keyring import Keyring, MasterKey

V1 = MasterKey(1, bytes(range(32)))
V2 = MasterKey(2, bytes(range(50, 82)))
RING1 = Keyring({1: V1}, 1)
RING12 = Keyring({1: V1, 2: V2}, 2)
BINDING = Binding(
    secret_id="sec_0001", environment="production", version=3, secret_type="certificate"
)
PLAINTEXT = b'{"private_key_pem":"-----BEGIN PRIVATE KEY-----..."}'


def test_seal_then_open_round_trips() -> None:
    """What is sealed opens again with the same binding and keyring."""
    sealed = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    assert sealed.key_version == 1
    assert PLAINTEXT not in sealed.ciphertext
    assert open_sealed(sealed, binding=BINDING, keyring=RING1) == PLAINTEXT


def test_seal_uses_the_active_version() -> None:
    """New data keys are wrapped by the keyring's active version."""
    assert seal(PLAINTEXT, binding=BINDING, keyring=RING12).key_version == 2


def test_two_seals_of_the_same_plaintext_differ() -> None:
    """Fresh data key and nonces per call: equal values are not recognisable in storage."""
    one = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    two = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    assert one.ciphertext != two.ciphertext
    assert one.wrapped_key != two.wrapped_key
    assert one.ciphertext[:12] != two.ciphertext[:12]


@pytest.mark.parametrize(
    "change",
    [
        {"secret_id": "sec_0002"},
        {"environment": "sandbox"},
        {"version": 4},
        {"secret_type": "string"},
    ],
    ids=["secret_id", "environment", "version", "secret_type"],
)
def test_a_ciphertext_copied_to_another_binding_fails_to_decrypt(change: dict[str, object]) -> None:
    """A ciphertext copied to another secret id, environment or version fails to decrypt."""
    sealed = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    moved = dataclasses.replace(BINDING, **change)  # type: ignore[arg-type]
    with pytest.raises(DecryptionFailed):
        open_sealed(sealed, binding=moved, keyring=RING1)


def test_decryption_failure_names_the_binding_not_the_bytes() -> None:
    """The error says which secret, environment and version, and shows no ciphertext."""
    sealed = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    other = dataclasses.replace(BINDING, environment="sandbox")
    with pytest.raises(DecryptionFailed) as caught:
        open_sealed(sealed, binding=other, keyring=RING1)
    message = caught.value.message
    assert "sec_0001" in message
    assert "sandbox" in message
    assert "version 3" in message
    assert sealed.ciphertext.hex()[:16] not in message
    assert caught.value.code == "secret_decryption_failed"


def test_a_wrapped_key_from_another_value_does_not_open_this_ciphertext() -> None:
    """Mixing one value's wrapped key with another value's ciphertext fails."""
    one = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    two = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    mixed = Sealed(ciphertext=one.ciphertext, wrapped_key=two.wrapped_key, key_version=1)
    with pytest.raises(DecryptionFailed):
        open_sealed(mixed, binding=BINDING, keyring=RING1)


@pytest.mark.parametrize("part", ["ciphertext", "wrapped_key"])
@pytest.mark.parametrize("position", [0, 12, -1])
def test_a_flipped_bit_fails(part: str, position: int) -> None:
    """One flipped bit in the nonce, the body or the tag of either part fails."""
    sealed = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    data = bytearray(getattr(sealed, part))
    data[position] ^= 0x01
    if part == "ciphertext":
        damaged = dataclasses.replace(sealed, ciphertext=bytes(data))
    else:
        damaged = dataclasses.replace(sealed, wrapped_key=bytes(data))
    with pytest.raises(DecryptionFailed):
        open_sealed(damaged, binding=BINDING, keyring=RING1)


def test_a_different_master_key_under_the_same_version_fails() -> None:
    """The wrong key for version 1 is a decryption failure, not garbage plaintext."""
    sealed = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    wrong = Keyring({1: MasterKey(1, bytes(32))}, 1)
    with pytest.raises(DecryptionFailed, match="master key version 1"):
        open_sealed(sealed, binding=BINDING, keyring=wrong)


def test_a_wrapped_key_relabelled_as_another_version_fails() -> None:
    """The master key version is authenticated with the wrapped key."""
    sealed = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    same_key_as_v2 = Keyring({1: V1, 2: MasterKey(2, V1.key)}, 1)
    with pytest.raises(DecryptionFailed):
        open_sealed(
            dataclasses.replace(sealed, key_version=2), binding=BINDING, keyring=same_key_as_v2
        )


def test_an_unknown_master_key_version_is_unavailable() -> None:
    """A value wrapped by a version the keyring lacks: master_key_unavailable, not garbage."""
    sealed = seal(PLAINTEXT, binding=BINDING, keyring=RING12)
    with pytest.raises(MasterKeyUnavailable, match="version 2"):
        open_sealed(sealed, binding=BINDING, keyring=RING1)


@pytest.mark.parametrize(
    ("ciphertext_len", "wrapped_len"), [(27, 60), (0, 60), (100, 59), (100, 0), (100, 61)]
)
def test_malformed_lengths_are_decryption_failures(ciphertext_len: int, wrapped_len: int) -> None:
    """Truncated or padded stored bytes fail cleanly with DecryptionFailed."""
    sealed = seal(b"x" * 100, binding=BINDING, keyring=RING1)
    broken = Sealed(
        ciphertext=(sealed.ciphertext * 2)[:ciphertext_len],
        wrapped_key=(sealed.wrapped_key * 2)[:wrapped_len],
        key_version=1,
    )
    with pytest.raises(DecryptionFailed):
        open_sealed(broken, binding=BINDING, keyring=RING1)


def test_rewrap_moves_the_data_key_to_the_active_version() -> None:
    """After rewrap the value opens with version 2 alone, even once version 1 is gone."""
    sealed = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    rewrapped = rewrap(sealed, binding=BINDING, keyring=RING12)
    assert rewrapped.key_version == 2
    assert rewrapped.ciphertext == sealed.ciphertext
    assert rewrapped.wrapped_key != sealed.wrapped_key
    only_v2 = Keyring({2: V2}, 2)
    assert open_sealed(rewrapped, binding=BINDING, keyring=only_v2) == PLAINTEXT
    with pytest.raises(MasterKeyUnavailable):
        open_sealed(sealed, binding=BINDING, keyring=only_v2)


def test_rewrap_checks_the_binding() -> None:
    """Rewrapping under the wrong binding fails instead of laundering a moved value."""
    sealed = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    with pytest.raises(DecryptionFailed):
        rewrap(sealed, binding=dataclasses.replace(BINDING, version=9), keyring=RING12)


def test_sealed_repr_shows_lengths_only() -> None:
    """repr(Sealed) gives sizes and the version, never the bytes."""
    sealed = seal(PLAINTEXT, binding=BINDING, keyring=RING1)
    text = repr(sealed)
    assert text == (
        f"Sealed(ciphertext=<{len(sealed.ciphertext)} bytes>, wrapped_key=<60 bytes>, "
        "key_version=1)"
    )


def test_aad_is_canonical_and_separates_purposes() -> None:
    """The additional data is stable for a binding and differs by purpose and master version."""
    assert BINDING.aad("value") == dataclasses.replace(BINDING).aad("value")
    assert BINDING.aad("value") != BINDING.aad("data-key")
    assert BINDING.aad("data-key", key_version=1) != BINDING.aad("data-key", key_version=2)
    # Field boundaries cannot be shifted: JSON quotes every string.
    left = Binding(secret_id='a","environment":"b', environment="c", version=1, secret_type="t")
    right = Binding(secret_id="a", environment='b","environment":"c', version=1, secret_type="t")
    assert left.aad("value") != right.aad("value")


@given(st.binary(max_size=4096))
def test_any_plaintext_round_trips(plaintext: bytes) -> None:
    """Every byte string, empty included, seals and opens unchanged."""
    sealed = seal(plaintext, binding=BINDING, keyring=RING12)
    assert open_sealed(sealed, binding=BINDING, keyring=RING12) == plaintext
