"""Whatever file a user points at, the CLI answers with one of our error codes, no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mutls.testing import TestCA
from tests.e2e.conftest import Run


def _pem() -> bytes:
    return TestCA(intermediate=False).issue("bad.input.example").cert_pem


CASES: dict[str, tuple[bytes | None, str]] = {
    "one_byte": (b"\x30", "unsupported_format"),
    "empty": (b"", "unsupported_format"),
    "garbage": (os.urandom(4096), "unsupported_format"),
    "truncated_pem": (b"-----BEGIN CERTIFICATE-----\nMIIB", "unsupported_format"),
    "text": (b"hello, this is not a certificate\n", "unsupported_format"),
    "ssh_key": (b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE user@host\n", "unsupported_format"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_files_give_an_error_code(run: Run, tmp_path: Path, case: str) -> None:
    """Each malformed input exits 1 with its stable code, in JSON and as message + hint."""
    data, code = CASES[case]
    assert data is not None
    (tmp_path / "input").write_bytes(data)
    result = run("cert", "inspect", "input", "--json")
    assert result.returncode == 1
    assert result.error_code() == code
    human = run("cert", "inspect", "input")
    assert human.returncode == 1
    assert f"({code})" in human.stderr
    assert "hint" in human.stderr


def test_damaged_base64_in_a_certificate(run: Run, tmp_path: Path) -> None:
    """A PEM whose base64 was altered is named as a damaged block, not a crash."""
    pem = bytearray(_pem())
    middle = len(pem) // 2
    pem[middle : middle + 8] = b"!!!!!!!!"
    (tmp_path / "damaged.pem").write_bytes(bytes(pem))
    result = run("cert", "inspect", "damaged.pem", "--json")
    assert result.error_code() == "unsupported_format"


def test_fifty_megabyte_file_is_too_large(run: Run, tmp_path: Path) -> None:
    """A 50 MB file is refused by size before it is read into memory."""
    with (tmp_path / "big.bin").open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    result = run("cert", "inspect", "big.bin", "--json")
    assert result.error_code() == "input_too_large"


def test_missing_file_and_directory(run: Run, tmp_path: Path) -> None:
    """A path that does not exist, or is a directory, is file_unreadable."""
    assert run("cert", "inspect", "nope.pem", "--json").error_code() == "file_unreadable"
    (tmp_path / "adir").mkdir()
    assert run("cert", "inspect", "adir", "--json").error_code() == "file_unreadable"


def test_key_given_where_a_certificate_is_expected(run: Run, tmp_path: Path) -> None:
    """`cert verify KEY` says not_a_certificate; `cert match CERT CERT` says the key is missing."""
    identity = TestCA(intermediate=False).issue("bad.input.example")
    (tmp_path / "k.pem").write_bytes(identity.key_pem())
    (tmp_path / "c.pem").write_bytes(identity.cert_pem)
    assert run("cert", "verify", "k.pem", "--ca", "c.pem", "--json").error_code() == (
        "not_a_certificate"
    )
    assert run("cert", "match", "c.pem", "c.pem", "--json").error_code() == "missing_private_key"
    assert run("cert", "verify", "c.pem", "--ca", "k.pem", "--json").error_code() == (
        "unsupported_format"
    )


def test_usage_errors_exit_2(run: Run) -> None:
    """Unknown options and formats are usage errors (exit 2), not crashes."""
    result = run("cert", "convert", "x.pem", "--to", "jpeg")
    assert result.returncode == 2


def test_weak_existing_key_is_refused_for_a_csr(run: Run, tmp_path: Path) -> None:
    """csr new --key with an RSA-1024 key says weak_key and writes no CSR; RSA-2048 works."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mutls.pki.export import private_key_pem

    (tmp_path / "weak.key").write_bytes(
        private_key_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024), None)
    )
    (tmp_path / "fine.key").write_bytes(
        private_key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), None)
    )
    weak = run("csr", "new", "--cn", "weak.example.com", "--key", "weak.key", "--json")
    assert weak.error_code() == "weak_key"
    assert not (tmp_path / "weak.example.com.csr.pem").exists()
    fine = run("csr", "new", "--cn", "fine.example.com", "--key", "fine.key", "--json", check=True)
    assert fine.json()["key_created"] is False


def test_unwritable_output_and_bad_ca_country_are_mutls_errors(run: Run, tmp_path: Path) -> None:
    """Writing into a missing directory or a 3-letter CA country gives invalid_argument, not 70."""
    env = {"MUTLS_PASSPHRASE": "bad input ca passphrase"}
    country = run("ca", "init", "--dir", "ca", "--name", "X", "--country", "ZZZ", "--json", env=env)
    assert country.error_code() == "invalid_argument"
    run("ca", "init", "--dir", "ca", "--name", "X", env=env, check=True)
    out = run("ca", "crl", "--dir", "ca", "--out", "/proc/no/such/crl.pem", "--json", env=env)
    assert out.error_code() == "invalid_argument"
    not_crl = run(
        "cert", "verify", "ca/root.pem", "--ca", "ca/root.pem", "--crl", "ca/root.pem", "--json"
    )
    assert not_crl.error_code() == "unsupported_format"
    assert "ParseError" not in not_crl.stdout


def test_server_certificate_for_localhost_gets_a_san(run: Run) -> None:
    """A server CSR for CN=localhost is issued with DNS:localhost, so hostname checks pass."""
    env = {"MUTLS_PASSPHRASE": "bad input ca passphrase"}
    run("ca", "init", "--dir", "ca", "--name", "X", env=env, check=True)
    run("csr", "new", "--cn", "localhost", "--profile", "server", check=True)
    run(
        "ca",
        "sign",
        "localhost.csr.pem",
        "--dir",
        "ca",
        "--profile",
        "server",
        "--out",
        "server.pem",
        env=env,
        check=True,
    )
    ok = run(
        "cert",
        "verify",
        "server.pem",
        "--ca",
        "ca/root.pem",
        "--purpose",
        "server",
        "--hostname",
        "localhost",
        "--json",
    )
    assert ok.returncode == 0, ok.stdout
    fingerprint = run("cert", "inspect", "server.pem", "--json").json()["sha256_fingerprint"]
    human = run("cert", "inspect", "server.pem")
    assert f"SHA-256  {fingerprint}" in human.stdout  # printed verbatim, no emoji for ":AB:"
