"""The README tour as a user runs it: CA, CSR, sign, inspect, verify, revoke, and each failure."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from tests.e2e.conftest import Run

CA_PASS = {"MUTLS_PASSPHRASE": "tour ca passphrase"}


def _make_ca(run: Run, directory: str = "ca", name: str = "Tour Root CA") -> None:
    run(
        "ca",
        "init",
        "--dir",
        directory,
        "--name",
        name,
        "--org",
        "Tour",
        "--intermediate",
        env=CA_PASS,
        check=True,
    )


def _issue(run: Run, cn: str, *, ca: str = "ca", profile: str = "client") -> Path:
    run("csr", "new", "--cn", cn, "--country", "CA", "--org", "Tour", check=True)
    run(
        "ca",
        "sign",
        f"{cn}.csr.pem",
        "--dir",
        ca,
        "--chain",
        "--out",
        f"{cn}.pem",
        "--profile",
        profile,
        env=CA_PASS,
        check=True,
    )
    return Path(f"{cn}.pem")


def test_tour_issues_a_client_certificate_that_verifies(run: Run, tmp_path: Path) -> None:
    """ca init → csr new → ca sign → inspect → verify succeeds, with the key written 0600."""
    _make_ca(run)
    _issue(run, "client.tour.example")
    key = tmp_path / "client.tour.example.key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca" / "root.key.pem").stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "ca" / "root.key.pem").read_bytes()
    report = run(
        "cert", "inspect", "client.tour.example.pem", "--key", str(key), "--json", check=True
    ).json()
    assert report["subject"] == "CN=client.tour.example,O=Tour,C=CA"
    assert report["extended_key_usage"] == ["clientAuth"]
    assert report["key_matches"] is True
    assert report["expiry_status"] == "ok"
    assert isinstance(report["chain"], list)
    assert len(report["chain"]) == 2
    verified = run(
        "cert", "verify", "client.tour.example.pem", "--ca", "ca/root.pem", "--json", check=True
    ).json()
    assert verified["valid"] is True
    assert isinstance(verified["chain"], list)
    assert len(verified["chain"]) == 3


def test_verify_against_another_ca_names_unknown_issuer(run: Run) -> None:
    """Rejection twin: a certificate from CA A does not verify against CA B's root."""
    _make_ca(run, "ca")
    run(
        "ca",
        "init",
        "--dir",
        "other",
        "--name",
        "Other Root",
        "--org",
        "Elsewhere",
        env=CA_PASS,
        check=True,
    )
    _issue(run, "client.tour.example")
    result = run("cert", "verify", "client.tour.example.pem", "--ca", "other/root.pem", "--json")
    assert result.returncode == 1
    assert result.error_code() == "unknown_issuer"


def test_verify_without_intermediate_names_missing_intermediate(run: Run, tmp_path: Path) -> None:
    """Rejection twin: the leaf alone, without its issuing CA, is a missing intermediate."""
    _make_ca(run)
    run("csr", "new", "--cn", "client.tour.example", "--country", "CA", check=True)
    run(
        "ca",
        "sign",
        "client.tour.example.csr.pem",
        "--dir",
        "ca",
        "--out",
        "leaf.pem",
        env=CA_PASS,
        check=True,
    )
    result = run("cert", "verify", "leaf.pem", "--ca", "ca/root.pem", "--json")
    assert result.returncode == 1
    assert result.error_code() == "missing_intermediate"
    fixed = run(
        "cert",
        "verify",
        "leaf.pem",
        "--ca",
        "ca/root.pem",
        "--untrusted",
        "ca/intermediate.pem",
        "--json",
    )
    assert fixed.returncode == 0


def test_server_certificate_used_as_client_is_wrong_key_usage(run: Run) -> None:
    """Rejection twin: a serverAuth certificate is refused for the client purpose."""
    _make_ca(run)
    _issue(run, "api.tour.example", profile="server")
    ok = run(
        "cert",
        "verify",
        "api.tour.example.pem",
        "--ca",
        "ca/root.pem",
        "--purpose",
        "server",
        "--hostname",
        "api.tour.example",
        "--json",
    )
    assert ok.returncode == 0
    wrong = run("cert", "verify", "api.tour.example.pem", "--ca", "ca/root.pem", "--json")
    assert wrong.error_code() == "wrong_key_usage"
    mismatch = run(
        "cert",
        "verify",
        "api.tour.example.pem",
        "--ca",
        "ca/root.pem",
        "--purpose",
        "server",
        "--hostname",
        "other.example",
        "--json",
    )
    assert mismatch.error_code() == "name_mismatch"


def test_verify_at_a_future_time_reports_expiry(run: Run) -> None:
    """Rejection twin: --at after notAfter gives certificate_expired; before notBefore, not yet."""
    _make_ca(run)
    _issue(run, "client.tour.example")
    late = run(
        "cert",
        "verify",
        "client.tour.example.pem",
        "--ca",
        "ca/root.pem",
        "--at",
        "2099-01-01",
        "--json",
    )
    assert late.error_code() == "certificate_expired"
    early = run(
        "cert",
        "verify",
        "client.tour.example.pem",
        "--ca",
        "ca/root.pem",
        "--at",
        "2001-01-01",
        "--json",
    )
    assert early.error_code() == "certificate_not_yet_valid"
    bad = run(
        "cert",
        "verify",
        "client.tour.example.pem",
        "--ca",
        "ca/root.pem",
        "--at",
        "yesterday",
        "--json",
    )
    assert bad.error_code() == "invalid_argument"


def test_revoke_then_crl_makes_verify_fail(run: Run) -> None:
    """verify --crl passes before revocation and says certificate_revoked after revoke + crl."""
    _make_ca(run)
    _issue(run, "client.tour.example")
    run("ca", "crl", "--dir", "ca", env=CA_PASS, check=True)
    clean = run(
        "cert",
        "verify",
        "client.tour.example.pem",
        "--ca",
        "ca/root.pem",
        "--crl",
        "ca/crl.pem",
        "--json",
        check=True,
    ).json()
    assert clean["crl_checked"] is True
    records = json.loads(run("ca", "list", "--dir", "ca", "--json", check=True).stdout)
    assert [r["status"] for r in records] == ["live"]
    serial = records[0]["serial"]
    run("ca", "revoke", serial, "--dir", "ca", "--reason", "keyCompromise", check=True)
    crl = run("ca", "crl", "--dir", "ca", "--json", env=CA_PASS, check=True).json()
    assert crl["revoked"] == [serial]
    assert crl["crl_number"] == 2
    revoked = run(
        "cert",
        "verify",
        "client.tour.example.pem",
        "--ca",
        "ca/root.pem",
        "--crl",
        "ca/crl.pem",
        "--json",
    )
    assert revoked.error_code() == "certificate_revoked"
    records = json.loads(run("ca", "list", "--dir", "ca", "--json", check=True).stdout)
    assert [(r["status"], r["reason"]) for r in records] == [("revoked", "keyCompromise")]
    again = run("ca", "revoke", serial, "--dir", "ca", "--json")
    assert again.error_code() == "already_revoked"
    unknown = run("ca", "revoke", "DEADBEEF", "--dir", "ca", "--json")
    assert unknown.error_code() == "serial_not_found"


def test_bad_csr_is_refused_naming_every_rule_and_writes_nothing(run: Run, tmp_path: Path) -> None:
    """csr new with a bad subject exits 1 with csr_policy_violation and leaves no key or CSR."""
    result = run(
        "csr", "new", "--cn", "*.tour.example", "--country", "XX", "--org", "A&B", "--json"
    )
    assert result.returncode == 1
    error = result.json()["error"]
    assert isinstance(error, dict)
    assert error["code"] == "csr_policy_violation"
    rules = {v["rule"] for v in error["violations"]}
    assert rules == {"country_code", "subject_characters", "no_wildcards"}
    assert list(tmp_path.iterdir()) == []


def test_ca_sign_refuses_bad_openssl_csr_and_wrong_passphrase(
    run: Run, openssl: str, tmp_path: Path
) -> None:
    """The CA applies the CSR rules to a CSR made by openssl, and needs the right passphrase."""
    _make_ca(run)
    subprocess.run(
        [
            openssl,
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "bad.csr",
            "-subj",
            "/C=CA/O=A(B)/CN=nothost",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    refused = run("ca", "sign", "bad.csr", "--dir", "ca", "--json", env=CA_PASS)
    error = refused.json()["error"]
    assert isinstance(error, dict)
    assert error["code"] == "csr_policy_violation"
    assert {v["rule"] for v in error["violations"]} == {"subject_characters", "common_name_fqdn"}
    run("csr", "new", "--cn", "client.tour.example", check=True)
    wrong = run(
        "ca",
        "sign",
        "client.tour.example.csr.pem",
        "--dir",
        "ca",
        "--json",
        env={"MUTLS_PASSPHRASE": "not the passphrase"},
    )
    assert wrong.error_code() == "wrong_passphrase"
    assert "not the passphrase" not in wrong.stdout + wrong.stderr
    assert run("ca", "list", "--dir", "ca", "--json").stdout.strip() == "[]"


def test_ca_init_refuses_short_passphrase_and_existing_ca(run: Run) -> None:
    """A CA passphrase under 8 characters is refused; a second init never overwrites a CA."""
    short = run(
        "ca", "init", "--dir", "ca", "--name", "X", "--json", env={"MUTLS_PASSPHRASE": "short"}
    )
    assert short.error_code() == "invalid_argument"
    _make_ca(run)
    again = run("ca", "init", "--dir", "ca", "--name", "X", "--json", env=CA_PASS)
    assert again.error_code() == "ca_already_exists"
    missing = run("ca", "list", "--dir", "nowhere", "--json")
    assert missing.error_code() == "ca_not_initialized"


def test_no_terminal_and_no_passphrase_is_a_clear_error(run: Run) -> None:
    """With no terminal and no passphrase source, signing fails at once with a hint, never hangs."""
    _make_ca(run)
    run("csr", "new", "--cn", "client.tour.example", check=True)
    result = run("ca", "sign", "client.tour.example.csr.pem", "--dir", "ca", "--json")
    assert result.returncode == 1
    assert result.error_code() == "invalid_argument"
    error = result.json()["error"]
    assert isinstance(error, dict)
    assert "MUTLS_PASSPHRASE" in str(error["hint"])
