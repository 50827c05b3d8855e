"""`mutls cert convert` and `mutls cert match`: every output format, key protection, secrecy."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mutls.testing import TestCA
from tests.e2e.conftest import Run

SECRET = "s3cret-passphrase-XYZ"


@pytest.fixture
def identity(tmp_path: Path) -> None:
    ca = TestCA()
    client = ca.issue("client.convert.example")
    (tmp_path / "client.pem").write_bytes(client.chain_pem)
    (tmp_path / "client.key").write_bytes(client.key_pem())
    (tmp_path / "client.enc.key").write_bytes(client.key_pem(SECRET.encode()))
    (tmp_path / "other.key").write_bytes(ca.issue("other.convert.example").key_pem())
    (tmp_path / "root.pem").write_bytes(ca.root_pem)


@pytest.mark.usefixtures("identity")
@pytest.mark.parametrize("fmt", ["pem", "der", "chain", "p7b"])
def test_public_formats_round_trip(run: Run, fmt: str) -> None:
    """Certificate-only formats load back as the same leaf."""
    run("cert", "convert", "client.pem", "--to", fmt, "--out", f"out.{fmt}", check=True)
    before = run("cert", "inspect", "client.pem", "--json", check=True).json()
    after = run("cert", "inspect", f"out.{fmt}", "--json", check=True).json()
    assert after["sha256_fingerprint"] == before["sha256_fingerprint"]


@pytest.mark.usefixtures("identity")
def test_combined_pem_puts_certificates_first_and_is_private(run: Run, tmp_path: Path) -> None:
    """--to combined writes certificates then the key, mode 0600, and loads back as a pair."""
    run(
        "cert",
        "convert",
        "client.pem",
        "--key",
        "client.key",
        "--to",
        "combined",
        "--out",
        "combined.pem",
        check=True,
    )
    text = (tmp_path / "combined.pem").read_text()
    assert text.index("BEGIN CERTIFICATE") < text.index("BEGIN PRIVATE KEY")
    assert stat.S_IMODE((tmp_path / "combined.pem").stat().st_mode) == 0o600
    report = run("cert", "inspect", "combined.pem", "--json", check=True).json()
    assert report["key_matches"] is True


@pytest.mark.usefixtures("identity")
def test_remove_and_add_a_passphrase(run: Run, tmp_path: Path) -> None:
    """An encrypted key is decrypted with --no-encrypt and re-encrypted with an out passphrase."""
    env = {"MUTLS_PASSPHRASE": SECRET}
    plain = run(
        "cert",
        "convert",
        "client.enc.key",
        "--to",
        "key",
        "--no-encrypt",
        "--out",
        "plain.key",
        env=env,
        check=True,
    )
    assert SECRET not in plain.stdout + plain.stderr
    assert "ENCRYPTED" not in (tmp_path / "plain.key").read_text()
    (tmp_path / "new-pass.txt").write_text("another passphrase\n")
    run(
        "cert",
        "convert",
        "plain.key",
        "--to",
        "key",
        "--out",
        "again.key",
        "--out-passphrase-file",
        "new-pass.txt",
        check=True,
    )
    assert "BEGIN ENCRYPTED PRIVATE KEY" in (tmp_path / "again.key").read_text()
    assert stat.S_IMODE((tmp_path / "again.key").stat().st_mode) == 0o600
    reopened = run(
        "cert",
        "inspect",
        "again.key",
        "--json",
        env={"MUTLS_PASSPHRASE": "another passphrase"},
        check=True,
    ).json()
    assert reopened["key_was_encrypted"] is True


@pytest.mark.usefixtures("identity")
def test_p12_needs_an_output_passphrase(run: Run, tmp_path: Path) -> None:
    """Rejection: PKCS#12 without any output passphrase source fails and writes nothing."""
    result = run(
        "cert",
        "convert",
        "client.pem",
        "--key",
        "client.key",
        "--to",
        "p12",
        "--out",
        "x.p12",
        "--json",
    )
    assert result.error_code() == "invalid_argument"
    assert not (tmp_path / "x.p12").exists()


@pytest.mark.usefixtures("identity")
def test_convert_refuses_to_overwrite_without_force(run: Run, tmp_path: Path) -> None:
    """An existing --out is kept unless --force is given."""
    (tmp_path / "taken.pem").write_text("keep me")
    refused = run("cert", "convert", "client.pem", "--to", "pem", "--out", "taken.pem", "--json")
    assert refused.error_code() == "invalid_argument"
    assert (tmp_path / "taken.pem").read_text() == "keep me"
    run("cert", "convert", "client.pem", "--to", "pem", "--out", "taken.pem", "--force", check=True)
    assert "BEGIN CERTIFICATE" in (tmp_path / "taken.pem").read_text()


@pytest.mark.usefixtures("identity")
def test_key_output_needs_a_key(run: Run) -> None:
    """Rejection: --to combined from a certificate alone is missing_private_key."""
    result = run("cert", "convert", "client.pem", "--to", "combined", "--out", "c.pem", "--json")
    assert result.error_code() == "missing_private_key"


@pytest.mark.usefixtures("identity")
def test_match_reports_both_fingerprints(run: Run) -> None:
    """match: exit 0 with equal fingerprints; mismatch exits 1 with key_mismatch and both."""
    good = run("cert", "match", "client.pem", "client.key", "--json", check=True).json()
    assert good["matches"] is True
    assert good["certificate_public_key_sha256"] == good["private_key_public_key_sha256"]
    bad = run("cert", "match", "client.pem", "other.key", "--json")
    assert bad.returncode == 1
    data = bad.json()
    assert bad.error_code() == "key_mismatch"
    assert data["certificate_public_key_sha256"] != data["private_key_public_key_sha256"]
    human = run("cert", "match", "client.pem", "other.key")
    assert "key_mismatch" in human.stderr
    assert str(data["certificate_public_key_sha256"]) in human.stderr


@pytest.mark.usefixtures("identity")
def test_combined_file_with_wrong_key_is_flagged(run: Run, tmp_path: Path) -> None:
    """A combined PEM holding someone else's key: inspect flags it, verify/convert refuse it."""
    (tmp_path / "wrong.pem").write_text(
        (tmp_path / "client.pem").read_text() + (tmp_path / "other.key").read_text()
    )
    report = run("cert", "inspect", "wrong.pem", "--json", check=True).json()
    assert report["key_matches"] is False
    findings = report["findings"]
    assert isinstance(findings, list)
    codes = [f["code"] for f in findings]
    assert "key_mismatch" in codes
    strict = run("cert", "inspect", "wrong.pem", "--strict", "--json")
    assert strict.returncode == 1
    refused = run("cert", "convert", "wrong.pem", "--to", "combined", "--out", "x.pem", "--json")
    assert refused.error_code() == "key_mismatch"


@pytest.mark.usefixtures("identity")
def test_out_of_order_chain_is_reported_and_fixed(run: Run, tmp_path: Path) -> None:
    """A chain stored issuer-first: verify says chain_out_of_order; convert --to chain fixes it."""
    text = (tmp_path / "client.pem").read_text()
    blocks = [
        b + "-----END CERTIFICATE-----\n"
        for b in text.split("-----END CERTIFICATE-----\n")
        if b.strip()
    ]
    (tmp_path / "reversed.pem").write_text("".join(reversed(blocks)))
    bad = run("cert", "verify", "reversed.pem", "--ca", "root.pem", "--json")
    assert bad.error_code() == "chain_out_of_order"
    run("cert", "convert", "reversed.pem", "--to", "chain", "--out", "fixed.pem", check=True)
    run("cert", "verify", "fixed.pem", "--ca", "root.pem", "--json", check=True)
