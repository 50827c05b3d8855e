"""Egress routes, app token environments and secrets' strict expiry from the command line,
against a real `mutls up`: the happy path a person follows, and the errors met on the way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mutls.testing import TestCA
from tests.e2e.conftest import Run
from tests.e2e.test_cli_platform import Server, _free_port, start_server

API_KEY = "egress-cli-api-key-value"
TARGET = "https://api.bank.example/v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Own ports for an egress listener, should `mutls up` run one: never the shared defaults.
    running = start_server(
        tmp_path_factory.mktemp("egress-routes"),
        extra_env={
            "MUTLS_EGRESS_LISTEN": f"127.0.0.1:{_free_port()}",
            "MUTLS_EGRESS_METRICS_LISTEN": f"127.0.0.1:{_free_port()}",
        },
    )
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, f"mutls up exited with {code} on Ctrl-C"
    assert running.leaked() == [], f"secret values in the server's debug log {running.log}"


def _secrets(run: Run, server: Server, tmp_path: Path) -> None:
    """A certificate secret and a string secret (an API key), from files, as a person would."""
    identity = TestCA(name="Bank Client CA").issue("client.bank.example")
    server.remember(identity.key_pem())
    server.remember(API_KEY)
    (tmp_path / "client.pem").write_bytes(identity.combined_pem())
    (tmp_path / "api-key.txt").write_text(API_KEY + "\n")
    env = server.env()
    run("secret", "create", "bank_client", "--type", "certificate",
        "--cert", "client.pem", env=env, check=True)  # fmt: skip
    run("secret", "create", "bank_api_key", "--type", "string",
        "--value-file", "api-key.txt", env=env, check=True)  # fmt: skip


def test_egress_route_add_list_show_update_delete(run: Run, server: Server, tmp_path: Path) -> None:
    """An app token limited to environments; a route with a certificate, a header template, a
    sandbox override and an allowed token; list, show, update (headers and environments
    merge), a secret in use cannot be deleted, delete."""
    env = server.env()
    _secrets(run, server, tmp_path)
    token = run(
        "token", "create", "--name", "billing", "--role", "app", "--environment", "sandbox",
        "--environment", "production", "--default-environment", "sandbox", "--json",
        env=env, check=True,
    ).json()  # fmt: skip
    assert isinstance(token["token"], str)
    server.remember(token["token"])
    assert (token["environments"], token["default_environment"]) == (
        ["production", "sandbox"],
        "sandbox",
    )

    added = run(
        "egress", "route", "add", "bank-api", "--target-url", TARGET,
        "--certificate-secret", "{{secret:bank_client}}",
        "--header", "API-Key: {{secret:bank_api_key}}", "--header", "Gov-Vendor-Version: 1.0",
        "--env-target", "sandbox=https://sandbox.bank.example/v1", "--env-insecure", "sandbox",
        "--tls-preset", "tls13", "--allow-token", "billing", "--timeout", "20",
        "--description", "seed 002", "--json", env=env, check=True,
    ).json()  # fmt: skip
    certificate = added["certificate_secret"]
    assert isinstance(certificate, dict)
    assert certificate["name"] == "bank_client"
    assert added["headers"] == {
        "API-Key": "{{secret:bank_api_key}}",
        "Gov-Vendor-Version": "1.0",
    }
    assert added["environments"] == {
        "sandbox": {
            "target_url": "https://sandbox.bank.example/v1",
            "tls_servername": None,
            "tls_reject_unauthorized": False,
        }
    }
    assert added["allowed_tokens"] == [token["id"]]
    assert (added["tls_preset"], added["timeout_seconds"]) == ("tls13", 20)
    warnings = added["warnings"]
    assert isinstance(warnings, list)
    assert [w["code"] for w in warnings] == ["tls_verification_off"]

    listed = run("egress", "route", "list", "--json", env=env, check=True).json()
    routes = listed["egress_routes"]
    assert isinstance(routes, list)
    assert [r["name"] for r in routes] == ["bank-api"]
    table = run("egress", "route", "list", env=env, check=True).stdout
    assert "bank-api" in table
    assert "bank_client" in table
    shown = run("egress", "route", "show", "bank-api", env=env, check=True).stdout
    assert "API-Key: {{secret:bank_api_key}}" in shown
    assert "NOT verified" in shown
    assert "tls_verification_off" in shown

    updated = run(
        "egress", "route", "update", "bank-api", "--header", "gov-vendor-version: 2.0",
        "--env-servername", "sandbox=sb.bank.example", "--env-verify", "sandbox",
        "--json", env=env, check=True,
    ).json()  # fmt: skip
    assert updated["headers"] == {
        "API-Key": "{{secret:bank_api_key}}",
        "gov-vendor-version": "2.0",
    }
    assert updated["environments"] == {
        "sandbox": {
            "target_url": "https://sandbox.bank.example/v1",
            "tls_servername": "sb.bank.example",
            "tls_reject_unauthorized": None,
        }
    }
    assert updated["warnings"] == []
    cleared = run(
        "egress", "route", "update", "bank-api", "--remove-header", "api-key", "--any-token",
        "--timeout", "0", "--certificate-secret", "", "--clear-env", "sandbox",
        "--json", env=env, check=True,
    ).json()  # fmt: skip
    assert cleared["headers"] == {"gov-vendor-version": "2.0"}
    assert (cleared["allowed_tokens"], cleared["timeout_seconds"]) == ([], None)
    assert (cleared["certificate_secret"], cleared["environments"]) == (None, {})
    assert cleared["description"] == "seed 002"

    run("egress", "route", "update", "bank-api", "--certificate-secret", "bank_client",
        env=env, check=True)  # fmt: skip
    in_use = run("secret", "delete", "bank_client", "--yes", "--json", env=env)
    assert in_use.error_code() == "resource_in_use"
    run("egress", "route", "delete", "bank-api", env=env, check=True)
    gone = run("egress", "route", "show", "bank-api", "--json", env=env)
    assert gone.returncode != 0
    assert gone.error_code() == "route_not_found"
    run("secret", "delete", "bank_client", "--yes", env=env, check=True)


def test_egress_route_errors_name_the_problem(run: Run, server: Server) -> None:
    """Plain http, verification off in production, an unknown secret, a non-app token in the
    list, a duplicate, no change and an auditor's delete each fail with their code and exit 1;
    without --json the error has its hint. (The options' own parsing has unit tests.)"""
    env = server.env()

    def code(*args: str, token_env: dict[str, str] | None = None) -> str:
        result = run("egress", "route", *args, "--json", env=token_env or env)
        assert result.returncode == 1, result.stdout
        return result.error_code()

    assert code("add", "r", "--target-url", "http://api.bank.example") == "invalid_argument"
    assert code("add", "r", "--target-url", TARGET, "--env-insecure", "production") == (
        "insecure_tls_refused"
    )
    assert code("add", "r", "--target-url", TARGET, "--certificate-secret", "nope") == (
        "secret_not_found"
    )
    auditor = run(
        "token", "create", "--name", "ro", "--role", "auditor", "--json", env=env, check=True
    ).json()
    assert isinstance(auditor["token"], str)
    server.remember(auditor["token"])
    assert code("add", "r", "--target-url", TARGET, "--allow-token", "ro") == "invalid_argument"
    run("egress", "route", "add", "r", "--target-url", TARGET, env=env, check=True)
    assert code("add", "r", "--target-url", TARGET) == "name_taken"
    assert code("update", "r") == "invalid_argument"

    as_auditor = server.env(auditor["token"])
    listed = run("egress", "route", "list", "--json", env=as_auditor, check=True).json()
    assert listed["egress_routes"]
    assert code("delete", "r", token_env=as_auditor) == "permission_denied"
    text = run("egress", "route", "add", "s", "--target-url", "ftp://x", env=env)
    assert text.returncode == 1
    assert "invalid_argument" in text.stderr
    assert "hint" in text.stderr
    run("egress", "route", "delete", "r", env=env, check=True)


def test_token_environments_are_refused_on_other_roles(run: Run, server: Server) -> None:
    """--environment on an auditor token, or a default outside the list, is invalid_argument."""
    env = server.env()
    for extra in (
        ["--role", "auditor", "--environment", "sandbox"],
        ["--role", "app", "--environment", "sandbox", "--default-environment", "production"],
    ):
        result = run("token", "create", "--name", "t", *extra, "--json", env=env)
        assert result.returncode == 1
        assert result.error_code() == "invalid_argument"
    text = run(
        "token", "create", "--name", "sb", "--role", "app", "--environment", "sandbox",
        env=env, check=True,
    )  # fmt: skip
    server.remember(text.stdout.strip())
    assert "environments sandbox; default sandbox" in text.stderr


def test_secret_update_and_strict_expiry(run: Run, server: Server, tmp_path: Path) -> None:
    """--strict-expiry on create; `secret update` switches it and the description; an update
    without options is refused."""
    env = server.env()
    server.remember(API_KEY)
    (tmp_path / "v.txt").write_text(API_KEY)
    created = run(
        "secret", "create", "strict_key", "--type", "string", "--value-file", "v.txt",
        "--strict-expiry", "--json", env=env, check=True,
    ).json()  # fmt: skip
    assert created["strict_expiry_enforcement"] is True
    shown = run("secret", "show", "strict_key", env=env, check=True).stdout
    assert "Strict expiry" in shown
    updated = run(
        "secret", "update", "strict_key", "--no-strict-expiry", "--description", "bank key",
        "--json", env=env, check=True,
    ).json()  # fmt: skip
    assert (updated["strict_expiry_enforcement"], updated["description"]) == (False, "bank key")
    text = run("secret", "update", "strict_key", "--strict-expiry", env=env, check=True).stdout
    assert "strict expiry  on" in text
    nothing = run("secret", "update", "strict_key", "--json", env=env)
    assert nothing.error_code() == "invalid_argument"
    unknown = run("secret", "update", "nope", "--description", "x", "--json", env=env)
    assert unknown.error_code() == "secret_not_found"


def test_egress_refuses_a_bad_listen_address_before_starting(run: Run, tmp_path: Path) -> None:
    """`mutls egress --listen nonsense` names the problem and exits 1 without opening anything;
    `--help` lists the route commands."""
    result = run("egress", "--listen", "nonsense", env={"MUTLS_DATA_DIR": str(tmp_path / "none")})
    assert result.returncode == 1
    assert "invalid_argument" in result.stderr
    assert "MUTLS_EGRESS_LISTEN" in result.stderr
    assert not (tmp_path / "none").exists()
    helped = run("egress", "--help", check=True).stdout
    assert "route" in helped
