"""PKCS#12 files are checked for absurd key-derivation costs before they are opened."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    KeySerializationEncryption,
    PrivateFormat,
    pkcs12,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from mutls.errors import UnsupportedFormat
from mutls.pki.kdf_limits import MAX_PKCS12_ITERATIONS, kdf_iterations
from mutls.pki.loader import load_material
from mutls.testing import Identity


def p12(identity: Identity, rounds: int | None) -> bytes:
    encryption: KeySerializationEncryption
    if rounds is None:
        encryption = BestAvailableEncryption(b"pw")
    else:
        encryption = (
            PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(rounds)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .build(b"pw")
        )
    return pkcs12.serialize_key_and_certificates(
        b"n", identity.key, identity.certificate, None, encryption
    )


def test_default_exports_report_their_iteration_counts(client: Identity) -> None:
    assert kdf_iterations(p12(client, 3000)) == [3000, 3000, 2048]
    assert max(kdf_iterations(p12(client, None))) <= 100_000
    assert load_material(p12(client, None), b"pw").key is not None


def test_a_pkcs12_asking_for_too_many_iterations_is_refused(client: Identity) -> None:
    hostile = p12(client, MAX_PKCS12_ITERATIONS + 1)
    with pytest.raises(UnsupportedFormat, match="key-derivation iterations") as caught:
        load_material(hostile, b"pw")
    assert "1,000,001" in caught.value.message


def test_the_limit_itself_is_accepted(client: Identity) -> None:
    assert load_material(p12(client, 1000), b"pw").key is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_the_scan_never_fails_on_arbitrary_bytes(data: bytes) -> None:
    assert all(isinstance(n, int) for n in kdf_iterations(data))
