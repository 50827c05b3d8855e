"""The platform as an operator drives it: a real `mutls up`, then the CLI and curl against its API.

Each server runs as its own process on a free loopback port with a fresh data directory and debug
logging captured to a file. When a server stops, its log is searched for every key, passphrase,
client secret, string value and token the tests handed it: none may appear (the first admin token
appears exactly once, in the banner `mutls up` prints on first start by design).
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import sqlite3
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from mutls.testing import Identity, TestCA
from tests.e2e.conftest import MUTLS, Result, Run
from tests.e2e.gateway_setup import free_port
from tests.secretscan import forms, register_secret

PASSPHRASE = "correct horse battery staple 42"
CLIENT_SECRET = "oauth2-client-secret-Zq8vR2pLx7"
STRING_VALUE = "partner-api-key-Hk3mW9tB5yQ1"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 10.0


# --- the server ----------------------------------------------------------------------------


@dataclass
class Server:
    """One `mutls up` process and what the tests gave it."""

    url: str
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]
    admin_token: str = field(repr=False)
    renew_url: str = ""
    gateway_url: str = ""
    metrics_url: str = ""
    secrets: set[str] = field(default_factory=set, repr=False)

    def env(self, token: str | None = None, **extra: str) -> dict[str, str]:
        """Environment for a CLI run against this server, as the admin unless told otherwise."""
        return {"MUTLS_SERVER": self.url, "MUTLS_TOKEN": token or self.admin_token, **extra}

    def remember(self, value: str | bytes) -> None:
        """A secret value handed to this server: neither its log nor the session's may hold it."""
        register_secret(value)
        text = value.decode() if isinstance(value, bytes) else value
        for raw in text.splitlines() if "-----BEGIN" in text else [text]:
            line = raw.strip()
            if len(line) >= 8 and "-----" not in line:
                self.secrets.add(line)

    def stop(self) -> int:
        """Ctrl-C, as a person at the terminal would; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def leaked(self) -> list[str]:
        """Registered values found in the server's log (shortened, so the report leaks nothing)."""
        log = self.log.read_text(encoding="utf-8", errors="replace")
        found = {v[:6] + "..." for v in self.secrets for f in forms(v) if f in log}
        # The first admin token is printed once on first start, by design; never again.
        if log.count(self.admin_token) != 1:
            found.add("admin token (expected exactly once, in the first-start banner)")
        return sorted(found)


def _clean_env() -> dict[str, str]:
    """This process's environment without any MUTLS_* setting, as the `run` fixture uses."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MUTLS_")}


def _free_port() -> int:
    return free_port()


def start_server(base: Path, *, extra_env: dict[str, str] | None = None) -> Server:
    base.mkdir(parents=True, exist_ok=True)
    data_dir, log = base / "data", base / "mutls-up.log"
    port, renew_port = _free_port(), _free_port()
    gateway_port, metrics_port = _free_port(), _free_port()
    env = _clean_env()
    env.update(
        MUTLS_DATA_DIR=str(data_dir),
        MUTLS_API_LISTEN=f"127.0.0.1:{port}",
        MUTLS_RENEW_LISTEN=f"127.0.0.1:{renew_port}",
        MUTLS_GATEWAY_LISTEN=f"127.0.0.1:{gateway_port}",
        MUTLS_GATEWAY_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
        MUTLS_GATEWAY_POLL_SECONDS="0.2",
        MUTLS_GATEWAY_WORKERS="1",
        MUTLS_EGRESS_LISTEN=f"127.0.0.1:{_free_port()}",
        MUTLS_EGRESS_METRICS_LISTEN=f"127.0.0.1:{_free_port()}",
        MUTLS_EGRESS_POLL_SECONDS="0.2",
        MUTLS_LOG_LEVEL="debug",
    )
    env.update(extra_env or {})
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(MUTLS), "up"],
            cwd=base,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"mutls up exited with code {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"mutls up did not answer /healthz within {_START_TIMEOUT}s; see {log}")
        time.sleep(0.2)
    token = (data_dir / "admin-token").read_text().strip()
    register_secret(token)  # the server's own log is checked for it separately: once, no more
    return Server(
        url=url,
        data_dir=data_dir,
        log=log,
        proc=proc,
        admin_token=token,
        renew_url=f"https://127.0.0.1:{renew_port}",
        gateway_url=f"https://127.0.0.1:{gateway_port}",
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One platform shared by this module's tests; each test uses its own secret names."""
    running = start_server(tmp_path_factory.mktemp("platform"))
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, f"mutls up exited with {code} on Ctrl-C"
    assert running.leaked() == [], f"secret values in the server's debug log {running.log}"


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA(name="Partner Test CA", organization="Partner")


# --- helpers -------------------------------------------------------------------------------


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _identity_files(
    server: Server, identity: Identity, directory: Path, stem: str, *, passphrase: str | None
) -> tuple[Path, Path]:
    """The identity's chain and key as files; every form of the key is remembered as secret."""
    server.remember(identity.key_pem())
    key_pem = identity.key_pem(passphrase.encode() if passphrase else None)
    server.remember(key_pem)
    cert = _write(directory / f"{stem}.pem", identity.chain_pem)
    key = _write(directory / f"{stem}.key.pem", key_pem)
    return cert, key


def _error(result: Result) -> str:
    """The error code of a failed ``--json`` run (and proof that it did fail)."""
    assert result.returncode != 0, result.stdout
    return result.error_code()


def _obj(value: object) -> dict[str, object]:
    assert isinstance(value, dict)
    return value


def _names(answer: dict[str, object]) -> list[object]:
    secrets = answer["secrets"]
    assert isinstance(secrets, list)
    return [_obj(s)["name"] for s in secrets]


def _env_metadata(secret: dict[str, object], env: str) -> dict[str, object]:
    environments = _obj(secret["environments"])
    return _obj(_obj(environments[env])["metadata"])


def _create_string(run: Run, server: Server, name: str, tmp_path: Path) -> dict[str, object]:
    value = f"{STRING_VALUE}-{name}"
    server.remember(value)
    _write(tmp_path / f"{name}.txt", value + "\n")
    return run(
        "secret",
        "create",
        name,
        "--type",
        "string",
        "--value-file",
        f"{name}.txt",
        "--json",
        env=server.env(),
        check=True,
    ).json()


# --- acceptance ----------------------------------------------------------------------------


def test_certificate_secret_with_two_environments(
    run: Run, server: Server, ca: TestCA, tmp_path: Path
) -> None:
    """A certificate secret gets production and sandbox values, shows days left, and rotates."""
    server.remember(PASSPHRASE)
    _write(tmp_path / "passphrase.txt", PASSPHRASE + "\n")
    _write(tmp_path / "partner-ca.pem", ca.root_pem)
    prod = ca.issue("client.prod.example")
    cert, key = _identity_files(server, prod, tmp_path, "prod", passphrase=PASSPHRASE)
    env = server.env()

    created = run(
        "secret",
        "create",
        "partner-client",
        "--type",
        "certificate",
        "--cert",
        cert.name,
        "--key",
        key.name,
        "--passphrase-file",
        "passphrase.txt",
        "--ca-bundle",
        "partner-ca.pem",
        "--description",
        "client certificate for the partner API",
        env=env,
        check=True,
    )
    assert "created certificate secret partner-client" in created.stdout
    assert "days remaining" in created.stdout

    sandbox = ca.issue("client.sandbox.example", validity=timedelta(days=20))
    server.remember(sandbox.key_pem())
    _write(tmp_path / "sandbox-combined.pem", sandbox.combined_pem())
    run(
        "secret",
        "set",
        "partner-client",
        "--env",
        "sandbox",
        "--cert",
        "sandbox-combined.pem",
        env=env,
        check=True,
    )

    listed = run("secret", "list", "--name", "partner-client", env=env, check=True).stdout
    assert "partner-client" in listed
    assert "production, sandbox" in listed
    assert "days remaining (urgent)" in listed or "days remaining (warning)" in listed
    assert "(sandbox)" in listed  # the soonest expiry is the 20-day sandbox certificate

    shown = run("secret", "show", "partner-client", env=env, check=True).stdout
    assert "CN=client.prod.example" in shown
    assert "CN=client.sandbox.example" in shown
    assert shown.count("days remaining") == 2
    assert "passphrase yes" in shown

    secret = run("secret", "show", "partner-client", "--json", env=env, check=True).json()
    production = _env_metadata(secret, "production")
    assert production["has_private_key"] is True
    assert production["has_passphrase"] is True
    assert production["expiry_status"] == "ok"
    assert isinstance(production["days_remaining"], int)
    assert 363 <= production["days_remaining"] <= 365
    first_sandbox = _env_metadata(secret, "sandbox")["fingerprint_sha256"]
    assert PASSPHRASE not in json.dumps(secret)

    rotated = ca.issue("client.sandbox.example", validity=timedelta(days=90))
    new_cert, new_key = _identity_files(server, rotated, tmp_path, "sandbox2", passphrase=None)
    updated = run(
        "secret",
        "set",
        "partner-client",
        "--env",
        "sandbox",
        "--cert",
        new_cert.name,
        "--key",
        new_key.name,
        "--json",
        env=env,
        check=True,
    ).json()
    assert _obj(_obj(updated["environments"])["sandbox"])["version"] == 2
    assert _env_metadata(updated, "sandbox")["fingerprint_sha256"] != first_sandbox

    expiring = run("secret", "list", "--expiring-within", "30", "--json", env=env, check=True)
    assert "partner-client" not in _names(expiring.json())  # the 20-day sandbox value was replaced

    events = run(
        "audit", "list", "--resource-id", str(secret["id"]), "--json", env=env, check=True
    ).json()["events"]
    assert isinstance(events, list)
    actions = [(_obj(e)["action"], _obj(e)["environment"]) for e in events]
    assert actions[0] == ("secret.update", "sandbox")  # newest first
    assert ("secret.create", None) in actions or ("secret.create", "production") in actions
    assert len(actions) == 3

    table = run("audit", "list", "--resource-id", str(secret["id"]), env=env, check=True).stdout
    assert "secret.update" in table
    assert "secret.create" in table

    verified = run("audit", "verify", env=env, check=True)
    assert "audit chain intact" in verified.stdout


def test_encrypted_key_prompts_for_its_passphrase_on_a_terminal(
    server: Server, ca: TestCA, tmp_path: Path
) -> None:
    """On a terminal, an encrypted key with no passphrase given is asked for, hidden, once."""
    cert, key = _identity_files(
        server, ca.issue("prompted.example"), tmp_path, "prompted", passphrase=PASSPHRASE
    )
    server.remember(PASSPHRASE)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [str(MUTLS), "secret", "create", "prompted", "--type", "certificate",
         "--cert", cert.name, "--key", key.name],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**_clean_env(), **server.env()},
        start_new_session=True,  # no controlling terminal: the prompt must use this pty
    )  # fmt: skip
    os.close(secondary)
    try:
        # The prompt turns echo off just before it reads: only then is typing safe.
        deadline = time.monotonic() + 60
        while termios.tcgetattr(primary)[3] & termios.ECHO:
            assert proc.poll() is None, "mutls exited instead of asking for the passphrase"
            assert time.monotonic() < deadline, "mutls never asked for the passphrase"
            time.sleep(0.05)
        os.write(primary, PASSPHRASE.encode() + b"\n")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    assert proc.returncode == 0, err.decode()
    assert b"Passphrase for the private key" in err
    assert PASSPHRASE.encode() not in out + err
    assert b"created certificate secret prompted" in out


def test_oauth2_and_string_secrets_never_come_back(
    run: Run, server: Server, tmp_path: Path
) -> None:
    """OAuth2 and string secrets are stored; no answer carries the client secret or the value."""
    env = server.env()
    server.remember(CLIENT_SECRET)
    _write(tmp_path / "client-secret.txt", CLIENT_SECRET + "\n")
    oauth = run(
        "secret",
        "create",
        "partner-oauth",
        "--type",
        "oauth2",
        "--token-url",
        "https://auth.partner.example/oauth2/token",
        "--client-id",
        "mutls-client",
        "--client-secret-file",
        "client-secret.txt",
        "--scope",
        "payments:read",
        "--scope",
        "payments:write",
        "--json",
        env=env,
        check=True,
    ).json()
    assert oauth["secret_type"] == "oauth2"

    server.remember(STRING_VALUE)
    stdin_run = subprocess.run(
        [str(MUTLS), "secret", "create", "partner-api-key", "--type", "string", "--value-stdin"],
        input=STRING_VALUE + "\n",
        env={**_clean_env(), **server.env()},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert stdin_run.returncode == 0, stdin_run.stderr

    for name in ("partner-oauth", "partner-api-key"):
        shown = run("secret", "show", name, "--json", env=env, check=True).stdout
        assert CLIENT_SECRET not in shown
        assert STRING_VALUE not in shown
    listed = run("secret", "list", "--type", "oauth2", "--json", env=env, check=True).json()
    assert _names(listed) == ["partner-oauth"]


def test_delete_asks_first_and_needs_yes_without_a_terminal(
    run: Run, server: Server, tmp_path: Path
) -> None:
    """Without a terminal, delete refuses unless --yes; with it the secret is gone (404)."""
    created = _create_string(run, server, "to-delete", tmp_path)
    env = server.env()
    refused = run("secret", "delete", "to-delete", "--json", env=env)
    assert _error(refused) == "invalid_argument"
    assert run("secret", "show", "to-delete", env=env).returncode == 0
    run("secret", "delete", "to-delete", "--yes", env=env, check=True)
    gone = run("secret", "show", str(created["id"]), "--json", env=env)
    assert _error(gone) == "secret_not_found"


def test_accounts_users_and_tokens(run: Run, server: Server) -> None:
    """Accounts, users and tokens round-trip; a new token is printed once, alone on stdout."""
    env = server.env()
    account = run(
        "account", "create", "acme", "--display-name", "Acme Corp", "--json", env=env, check=True
    ).json()
    assert (
        run("account", "show", "acme", "--json", env=env, check=True).json()["id"] == account["id"]
    )
    assert "acme" in run("account", "list", env=env, check=True).stdout

    user = run(
        "user",
        "create",
        "ops@acme.example",
        "--role",
        "manage-mtls",
        "--account",
        "acme",
        "--name",
        "Acme Ops",
        "--json",
        env=env,
        check=True,
    ).json()
    disabled = run("user", "disable", str(user["id"]), "--json", env=env, check=True).json()
    assert disabled["disabled"] is True
    run("user", "enable", str(user["id"]), env=env, check=True)
    assert "ops@acme.example" in run("user", "list", "--account", "acme", env=env).stdout

    created = run(
        "token", "create", "--name", "acme-ci", "--role", "manage-mtls", "--account", "acme",
        env=env, check=True,
    )  # fmt: skip
    token = created.stdout.strip()
    server.remember(token)
    assert created.stdout == token + "\n"  # nothing else on stdout: `> file` captures it whole
    assert "only time" in created.stderr
    assert token not in created.stderr
    me = run("whoami", "--json", env=server.env(token), check=True).json()
    assert me["role"] == "manage-mtls"
    assert me["account_id"] == account["id"]

    listed = run("token", "list", "--json", env=env, check=True).stdout
    assert token not in listed
    run("token", "revoke", str(me["token_id"]), env=env, check=True)
    revoked = run("whoami", "--json", env=server.env(token))
    assert _error(revoked) == "invalid_token"


def test_admin_token_file_is_the_fallback(run: Run, server: Server, tmp_path: Path) -> None:
    """With no token given, the CLI reads <MUTLS_DATA_DIR or ./mutls-data>/admin-token."""
    by_env = run(
        "whoami",
        "--json",
        env={"MUTLS_SERVER": server.url, "MUTLS_DATA_DIR": str(server.data_dir)},
        check=True,
    )
    assert by_env.json()["role"] == "admin"
    (tmp_path / "mutls-data").mkdir()
    shutil.copy(server.data_dir / "admin-token", tmp_path / "mutls-data" / "admin-token")
    by_cwd = run("--server", server.url, "whoami", "--json", check=True)
    assert by_cwd.json()["role"] == "admin"
    by_file = run(
        "--server", server.url, "--token-file", "mutls-data/admin-token", "whoami", check=True
    )
    assert "admin" in by_file.stdout
    forged = {"MUTLS_SERVER": server.url, "MUTLS_TOKEN": "mutls_" + "B" * 43}
    wins = run("--token-file", "mutls-data/admin-token", "whoami", "--json", env=forged)
    assert wins.returncode == 0, wins.stdout  # an option beats the environment
    both = run("--token", "x", "--token-file", "mutls-data/admin-token", "whoami", "--json")
    assert _error(both) == "invalid_argument"


def test_curl_creates_and_reads_a_secret_as_the_readme_shows(
    run: Run, server: Server, ca: TestCA, tmp_path: Path
) -> None:
    """POST and GET /admin/secrets with curl; the CLI then sees the same secret."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("the curl command is required for this test (make install adds it)")
    identity = ca.issue("client.curl.example")
    server.remember(identity.key_pem())
    body = {
        "name": "curl-client",
        "secret_type": "certificate",
        "environments": {
            "production": {
                "certificate_pem": identity.chain_pem.decode(),
                "private_key_pem": identity.key_pem().decode(),
            },
            "sandbox": {"certificate_pem": identity.combined_pem().decode()},
        },
    }
    _write(tmp_path / "secret.json", json.dumps(body))
    auth = f"Authorization: Bearer {server.admin_token}"

    def curl_json(*args: str) -> tuple[int, dict[str, object]]:
        proc = subprocess.run(
            [curl, "-sS", "-o", "answer.json", "-w", "%{http_code}", "-H", auth, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return int(proc.stdout), json.loads((tmp_path / "answer.json").read_text())

    status, created = curl_json(
        "-H", "Content-Type: application/json", "-d", "@secret.json", f"{server.url}/admin/secrets"
    )
    assert status == 201, created
    assert sorted(_obj(created["environments"])) == ["production", "sandbox"]
    status, fetched = curl_json(f"{server.url}/admin/secrets/curl-client")
    assert status == 200
    assert fetched["id"] == created["id"]
    assert isinstance(_env_metadata(fetched, "production")["days_remaining"], int)
    assert "PRIVATE KEY" not in json.dumps(fetched)

    unauthenticated = subprocess.run(
        [curl, "-sS", f"{server.url}/admin/secrets"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(unauthenticated.stdout)["error"]["code"] == "authentication_required"

    shown = run("secret", "show", "curl-client", env=server.env(), check=True).stdout
    assert "CN=client.curl.example" in shown


# --- rejection twins -----------------------------------------------------------------------


def test_no_token_is_authentication_required(run: Run, server: Server) -> None:
    """No token anywhere (no option, no variable, no admin-token file) is a 401 with its code."""
    result = run("secret", "list", "--json", env={"MUTLS_SERVER": server.url})
    assert _error(result) == "authentication_required"
    text = run("secret", "list", env={"MUTLS_SERVER": server.url})
    assert text.returncode != 0
    assert "--token-file" in text.stderr  # the hint says how to give one


def test_wrong_token_is_invalid_token(run: Run, server: Server) -> None:
    """A token the server never issued is refused with invalid_token."""
    forged = "mutls_" + "A" * 43
    result = run("secret", "list", "--json", env=server.env(forged))
    assert _error(result) == "invalid_token"
    garbled = run("--token", "not a token", "secret", "list", "--json", env=server.env())
    assert _error(garbled) == "invalid_argument"
    assert "not a token" not in garbled.stdout + garbled.stderr


def test_auditor_may_read_but_not_create_secrets(run: Run, server: Server, tmp_path: Path) -> None:
    """An auditor token lists secrets and the audit log, and gets permission_denied on create."""
    created = run(
        "token", "create", "--name", "auditor", "--role", "auditor", "--json",
        env=server.env(), check=True,
    ).json()  # fmt: skip
    token = str(created["token"])
    server.remember(token)
    auditor = server.env(token)
    run("secret", "list", env=auditor, check=True)
    run("audit", "list", "--limit", "3", env=auditor, check=True)
    server.remember(STRING_VALUE + "-auditor")
    _write(tmp_path / "value.txt", STRING_VALUE + "-auditor")
    refused = run(
        "secret",
        "create",
        "auditor-made",
        "--type",
        "string",
        "--value-file",
        "value.txt",
        "--json",
        env=auditor,
    )
    assert _error(refused) == "permission_denied"
    missing = run("secret", "show", "auditor-made", "--json", env=server.env())
    assert _error(missing) == "secret_not_found"


def test_bad_certificate_material_is_named_by_the_loader(
    run: Run, server: Server, ca: TestCA, tmp_path: Path
) -> None:
    """Garbage, a key of another certificate, an expired certificate, a missing or wrong
    passphrase: each is refused with the loader's code, and nothing is stored."""
    env = server.env()
    _write(tmp_path / "garbage.pem", b"this is not a certificate at all\n")
    garbage = run(
        "secret", "create", "bad-1", "--type", "certificate", "--cert", "garbage.pem", "--json",
        env=env,
    )  # fmt: skip
    assert _error(garbage) == "unsupported_format"

    one, other = ca.issue("one.example"), ca.issue("other.example")
    cert, _ = _identity_files(server, one, tmp_path, "one", passphrase=None)
    _, other_key = _identity_files(server, other, tmp_path, "other", passphrase=None)
    mismatch = run(
        "secret", "create", "bad-2", "--type", "certificate", "--cert", cert.name,
        "--key", other_key.name, "--json", env=env,
    )  # fmt: skip
    assert _error(mismatch) == "key_mismatch"

    expired = ca.issue("expired.example", now=datetime.now(UTC) - timedelta(days=400))
    _write(tmp_path / "expired.pem", expired.combined_pem())
    server.remember(expired.key_pem())
    old = run(
        "secret", "create", "bad-3", "--type", "certificate", "--cert", "expired.pem", "--json",
        env=env,
    )  # fmt: skip
    assert _error(old) == "certificate_expired"

    locked_cert, locked_key = _identity_files(
        server, ca.issue("locked.example"), tmp_path, "locked", passphrase=PASSPHRASE
    )
    args = ("secret", "create", "bad-4", "--type", "certificate", "--cert", locked_cert.name)
    no_pass = run(*args, "--key", locked_key.name, "--json", env=env)
    assert _error(no_pass) == "passphrase_required"
    server.remember("not the passphrase")
    wrong = run(
        *args, "--key", locked_key.name, "--json",
        env={**env, "MUTLS_PASSPHRASE": "not the passphrase"},
    )  # fmt: skip
    assert _error(wrong) == "wrong_passphrase"

    listed = run("secret", "list", "--name", "bad-", "--json", env=env, check=True).json()
    assert listed["secrets"] == []


def test_value_options_must_match_the_type(run: Run, server: Server, tmp_path: Path) -> None:
    """A string secret given --cert, or a secret given no value, is refused before any call."""
    _write(tmp_path / "x.pem", b"-----BEGIN CERTIFICATE-----\n")
    wrong = run(
        "secret", "create", "mixed", "--type", "string", "--cert", "x.pem", "--json",
        env=server.env(),
    )  # fmt: skip
    assert _error(wrong) == "invalid_argument"
    empty = run("secret", "create", "empty", "--type", "oauth2", "--json", env=server.env())
    assert _error(empty) == "invalid_argument"


def test_unreachable_server_says_how_to_start_it(run: Run) -> None:
    """Nothing listening on --server is server_unreachable with a hint, not a traceback."""
    url = f"http://127.0.0.1:{_free_port()}"
    result = run("--server", url, "--token", "mutls_" + "A" * 43, "whoami", "--json")
    assert _error(result) == "server_unreachable"
    text = run("secret", "list", env={"MUTLS_SERVER": url})
    assert text.returncode == 1
    assert "mutls up" in text.stderr


# --- tampering, shutdown and the log -------------------------------------------------------


def test_audit_verify_local_names_an_edited_row(run: Run, tmp_path: Path) -> None:
    """Ctrl-C stops `mutls up` with 0; then an edit of audit row 2 in the SQLite file makes
    `mutls audit verify --local` exit 1 naming row 2; the debug log holds no secret."""
    server = start_server(tmp_path / "platform")
    try:
        _create_string(run, server, "before-tamper", tmp_path)
        report = run("audit", "verify", "--json", env=server.env(), check=True).json()
        assert report["ok"] is True
        assert report["first_break"] is None
        anchor = f"{report['head_seq']}:{report['head_hash']}"
    finally:
        started = time.monotonic()
        code = server.stop()
    assert code == 0
    assert time.monotonic() - started < _STOP_TIMEOUT

    local = {"MUTLS_DATA_DIR": str(server.data_dir)}
    intact = run("audit", "verify", "--local", "--anchor", anchor, env=local, check=True)
    assert "audit chain intact" in intact.stdout

    with sqlite3.connect(server.data_dir / "mutls.db") as db:
        db.execute("UPDATE audit_events SET actor='x' WHERE seq=2")
    db.close()

    broken = run("audit", "verify", "--local", env=local)
    assert broken.returncode == 1
    assert "row 2" in broken.stderr
    assert str(report["head_hash"]) in broken.stderr  # the head, for the operator's records
    as_json = run("audit", "verify", "--local", "--json", env=local)
    assert as_json.returncode == 1
    first_break = _obj(as_json.json()["first_break"])
    assert first_break["seq"] == 2
    assert first_break["kind"] == "altered"

    nowhere = run("audit", "verify", "--local", "--json", env={"MUTLS_DATA_DIR": "absent"})
    assert _error(nowhere) == "database_unavailable"
    assert not (tmp_path / "absent").exists()  # looking never creates an empty database

    assert server.leaked() == [], f"secret values in the server's debug log {server.log}"
