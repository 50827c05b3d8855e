"""Interop with the openssl CLI, both ways: the seed-004 tutorial into mutls, mutls into openssl."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Run

PASS = "correct horse battery"
TUTORIAL = Path(__file__).parent / "data" / "tutorial004.sh"
CA_PASS = {"MUTLS_PASSPHRASE": "interop ca passphrase"}


@pytest.fixture
def tutorial(tmp_path: Path, openssl: str) -> Path:
    """Run the 004 tutorial's OpenSSL commands as written; returns its CA directory."""
    directory = tmp_path / "myCA"
    subprocess.run(["bash", str(TUTORIAL), str(directory), PASS], check=True, capture_output=True)
    (tmp_path / "pass.txt").write_text(PASS + "\n")  # as `echo` writes it
    return directory


def _openssl(openssl: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_tutorial_pfx_loads_with_chain_and_key(run: Run, tutorial: Path, tmp_path: Path) -> None:
    """The tutorial's client.pfx (encrypted, with CA) inspects: leaf, chain, matching key."""
    report = run(
        "cert",
        "inspect",
        str(tutorial / "certs/client.pfx"),
        "--passphrase-file",
        "pass.txt",
        "--json",
        check=True,
    ).json()
    assert report["source_format"] == "pkcs12"
    assert (
        report["subject"] == "CN=api-client.example.com,O=Example Payments Ltda,ST=Sao Paulo,C=BR"
    )
    assert report["serial"] == "1000"
    assert report["key_matches"] is True
    assert report["extended_key_usage"] == ["clientAuth", "emailProtection"]
    assert isinstance(report["chain"], list)
    assert len(report["chain"]) == 2
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope")
    failed = run(
        "cert",
        "inspect",
        str(tutorial / "certs/client.pfx"),
        "--passphrase-file",
        str(wrong),
        "--json",
    )
    assert failed.error_code() == "wrong_passphrase"
    missing = run("cert", "inspect", str(tutorial / "certs/client.pfx"), "--json")
    assert missing.error_code() == "passphrase_required"


def test_tutorial_encrypted_ca_key_and_csr_inspect(run: Run, tutorial: Path) -> None:
    """The AES-256-encrypted CA key opens with the passphrase file; the CSR shows its subject."""
    key = run(
        "cert",
        "inspect",
        str(tutorial / "private/ca.key.pem"),
        "--passphrase-file",
        "pass.txt",
        "--json",
        check=True,
    ).json()
    assert key["kind"] == "private_key"
    assert key["key_was_encrypted"] is True
    private = key["private_key"]
    assert isinstance(private, dict)
    assert (private["type"], private["size"]) == ("RSA", 4096)
    csr = run("cert", "inspect", str(tutorial / "client.csr.pem"), "--json", check=True).json()
    assert csr["kind"] == "csr"


def test_legacy_proc_type_encrypted_key_loads(run: Run, tutorial: Path, openssl: str) -> None:
    """A legacy `Proc-Type: 4,ENCRYPTED` RSA key loads with the passphrase; wrong one is refused."""
    legacy = tutorial / "legacy.key.pem"
    done = _openssl(
        openssl,
        "rsa",
        "-in",
        "private/client.key.pem",
        "-aes256",
        "-traditional",
        "-passout",
        f"pass:{PASS}",
        "-out",
        str(legacy),
        cwd=tutorial,
    )
    assert done.returncode == 0, done.stderr
    assert "Proc-Type: 4,ENCRYPTED" in legacy.read_text()
    match = run(
        "cert",
        "match",
        str(tutorial / "certs/client.cert.pem"),
        str(legacy),
        "--passphrase-file",
        "pass.txt",
        "--json",
        check=True,
    ).json()
    assert match["matches"] is True
    bad = run(
        "cert",
        "match",
        str(tutorial / "certs/client.cert.pem"),
        str(legacy),
        "--json",
        env={"MUTLS_PASSPHRASE": "wrong"},
    )
    assert bad.error_code() == "wrong_passphrase"


def test_tutorial_client_verifies_against_tutorial_ca(run: Run, tutorial: Path) -> None:
    """A client certificate made by `openssl ca -extensions usr_cert` verifies for clientAuth."""
    result = run(
        "cert",
        "verify",
        str(tutorial / "certs/client.cert.pem"),
        "--ca",
        str(tutorial / "certs/ca.cert.pem"),
        "--json",
        check=True,
    ).json()
    assert result["valid"] is True


def test_mutls_ca_signs_tutorial_csr_and_openssl_verifies_it(
    run: Run, tutorial: Path, tmp_path: Path, openssl: str
) -> None:
    """A CSR made by openssl, signed by a mutls CA, passes `openssl verify -purpose sslclient`."""
    run(
        "ca",
        "init",
        "--dir",
        "ca",
        "--name",
        "Interop Root",
        "--org",
        "Interop",
        "--intermediate",
        env=CA_PASS,
        check=True,
    )
    run(
        "ca",
        "sign",
        str(tutorial / "client.csr.pem"),
        "--dir",
        "ca",
        "--out",
        "leaf.pem",
        env=CA_PASS,
        check=True,
    )
    ok = _openssl(
        openssl,
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        "ca/root.pem",
        "-untrusted",
        "ca/intermediate.pem",
        "leaf.pem",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    as_server = _openssl(
        openssl,
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        "ca/root.pem",
        "-untrusted",
        "ca/intermediate.pem",
        "leaf.pem",
        cwd=tmp_path,
    )
    assert as_server.returncode != 0  # twin: a client profile is not a server certificate
    other = _openssl(
        openssl,
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        str(tutorial / "certs/ca.cert.pem"),
        "leaf.pem",
        cwd=tmp_path,
    )
    assert other.returncode != 0  # twin: another CA's root does not vouch for it


def test_mutls_crl_is_honoured_by_openssl(run: Run, tmp_path: Path, openssl: str) -> None:
    """After `mutls ca revoke` + `mutls ca crl`, `openssl verify -crl_check` says revoked."""
    run("ca", "init", "--dir", "ca", "--name", "CRL Root", "--org", "CRL", env=CA_PASS, check=True)
    run("csr", "new", "--cn", "client.crl.example", check=True)
    run(
        "ca",
        "sign",
        "client.crl.example.csr.pem",
        "--dir",
        "ca",
        "--out",
        "leaf.pem",
        env=CA_PASS,
        check=True,
    )
    run("ca", "crl", "--dir", "ca", env=CA_PASS, check=True)
    args = ["verify", "-crl_check", "-CRLfile", "ca/crl.pem", "-CAfile", "ca/root.pem", "leaf.pem"]
    before = _openssl(openssl, *args, cwd=tmp_path)
    assert before.returncode == 0, before.stdout + before.stderr
    serial = json.loads(run("ca", "list", "--dir", "ca", "--json", check=True).stdout)[0]["serial"]
    run("ca", "revoke", serial, "--dir", "ca", "--reason", "superseded", check=True)
    run("ca", "crl", "--dir", "ca", env=CA_PASS, check=True)
    after = _openssl(openssl, *args, cwd=tmp_path)
    assert after.returncode != 0
    assert "revoked" in (after.stdout + after.stderr).lower()


@pytest.mark.parametrize(
    ("profile", "algorithm"),
    [("modern", "AES-256-CBC"), ("legacy", "pbeWithSHA1And3-KeyTripleDES-CBC")],
)
def test_pkcs12_profiles_open_in_openssl(
    run: Run, tutorial: Path, tmp_path: Path, openssl: str, profile: str, algorithm: str
) -> None:
    """Both PKCS#12 export profiles open in `openssl pkcs12` with the right cipher; not without."""
    (tmp_path / "out-pass.txt").write_text("export pass\n")
    run(
        "cert",
        "convert",
        str(tutorial / "certs/client.cert.pem"),
        "--key",
        str(tutorial / "private/client.key.pem"),
        "--to",
        "p12",
        "--profile",
        profile,
        "--out",
        "client.p12",
        "--out-passphrase-file",
        "out-pass.txt",
        check=True,
    )
    info = _openssl(
        openssl,
        "pkcs12",
        "-in",
        "client.p12",
        "-info",
        "-noout",
        "-passin",
        "pass:export pass",
        cwd=tmp_path,
    )
    assert info.returncode == 0, info.stderr
    assert algorithm in info.stdout + info.stderr
    wrong = _openssl(
        openssl, "pkcs12", "-in", "client.p12", "-noout", "-passin", "pass:wrong", cwd=tmp_path
    )
    assert wrong.returncode != 0
    back = run(
        "cert",
        "inspect",
        "client.p12",
        "--json",
        env={"MUTLS_PASSPHRASE": "export pass"},
        check=True,
    ).json()
    assert back["key_matches"] is True
