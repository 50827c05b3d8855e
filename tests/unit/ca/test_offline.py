"""The offline CA directory: serial spelling, passphrase rules, locking-free reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mutls.ca.offline import IssuedRecord, OfflineCA, _Index, _normalise_serial
from mutls.errors import InvalidArgument, SerialNotFound


@pytest.mark.parametrize("spelling", ["abc", "ABC", "0abc", "0x0ABC", "0a:bc", " 0ABC "])
def test_serial_spellings_normalise_to_openssl_form(spelling: str) -> None:
    """Every common way to type serial 0xABC finds the record stored as 0ABC (openssl's form)."""
    assert _normalise_serial(spelling) == "0ABC"
    record = IssuedRecord(
        serial="0ABC",
        subject="CN=x",
        profile="client",
        not_before="2026-01-01T00:00:00+00:00",
        not_after="2027-01-01T00:00:00+00:00",
        sha256_fingerprint="00",
    )
    assert _Index(records=[record]).find(spelling) is record


def test_bad_serial_and_unknown_serial() -> None:
    """Rejection twins: non-hex text is invalid_argument; an unknown serial is serial_not_found."""
    with pytest.raises(InvalidArgument):
        _normalise_serial("not-hex")
    with pytest.raises(SerialNotFound):
        _Index().find("01")


def test_ca_key_files_are_private_and_encrypted(tmp_path: Path) -> None:
    """init writes keys 0600 and encrypted, and refuses a passphrase shorter than 8."""
    with pytest.raises(InvalidArgument):
        OfflineCA.init(tmp_path / "x", name="X", passphrase=b"short", now=datetime.now(UTC))
    ca = OfflineCA.init(tmp_path / "ca", name="X", passphrase=b"long enough", now=datetime.now(UTC))
    key = ca.directory / "root.key.pem"
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert not (tmp_path / "x").exists()
