"""Gateway routes from the command line against a real `mutls up`: add, list, show, update,
remove, and the errors a person meets on the way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Run
from tests.e2e.test_cli_platform import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("routes"))
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, f"mutls up exited with {code} on Ctrl-C"
    assert running.leaked() == [], f"secret values in the server's debug log {running.log}"


def test_route_add_list_show_update_remove(run: Run, server: Server) -> None:
    """add (with an account by name) -> list in match order -> show -> update (clear the host,
    replace the accounts) -> remove -> show is route_not_found."""
    env = server.env()
    account = run("account", "create", "acme", "--json", env=env, check=True).json()
    added = run(
        "route", "add", "payments-v2", "--upstream", "http://127.0.0.1:9000",
        "--host", "API.example.com", "--prefix", "/payments/", "--api-version", "v2",
        "--version-header", "Api-Version", "--account", "acme", "--authorization", "basic",
        "--description", "seed 003", "--json", env=env, check=True,
    ).json()  # fmt: skip
    assert added["host"] == "api.example.com"
    assert added["path_prefix"] == "/payments"
    assert added["version_header"] == "api-version"
    assert added["allowed_accounts"] == [account["id"]]
    assert added["mtls"] == "required"
    assert added["authorization"] == "basic"
    run("route", "add", "public", "--upstream", "http://127.0.0.1:9001", "--mtls", "off",
        env=env, check=True)  # fmt: skip

    listed = run("route", "list", "--json", env=env, check=True).json()
    routes = listed["routes"]
    assert isinstance(routes, list)
    assert [r["name"] for r in routes] == ["payments-v2", "public"]
    table = run("route", "list", env=env, check=True).stdout
    assert "payments-v2" in table
    assert "http://127.0.0.1:9001" in table
    shown = run("route", "show", "payments-v2", env=env, check=True).stdout
    assert "v2 (header api-version)" in shown

    updated = run(
        "route", "update", "payments-v2", "--host", "", "--mtls", "optional", "--any-account",
        "--json", env=env, check=True,
    ).json()  # fmt: skip
    assert (updated["host"], updated["mtls"], updated["allowed_accounts"]) == (None, "optional", [])
    assert updated["api_version"] == "v2"

    run("route", "remove", "payments-v2", env=env, check=True)
    gone = run("route", "show", "payments-v2", "--json", env=env)
    assert gone.returncode != 0
    assert gone.error_code() == "route_not_found"


def test_route_errors_name_the_problem(run: Run, server: Server) -> None:
    """https upstream, an unknown account, a duplicate, no change and a read-only token each
    fail with their code and a non-zero exit."""
    env = server.env()
    https = run("route", "add", "r1", "--upstream", "https://127.0.0.1:9443", "--json", env=env)
    assert https.returncode != 0
    assert https.error_code() == "invalid_argument"
    assert "not supported yet" in https.stderr + https.stdout
    unknown = run(
        "route", "add", "r1", "--upstream", "http://127.0.0.1:9000", "--account", "nobody",
        "--json", env=env,
    )  # fmt: skip
    assert unknown.error_code() == "account_not_found"
    run("route", "add", "r1", "--upstream", "http://127.0.0.1:9000", "--prefix", "/r1",
        env=env, check=True)  # fmt: skip
    again = run("route", "add", "r1", "--upstream", "http://127.0.0.1:9000", "--json", env=env)
    assert again.error_code() == "name_taken"
    nothing = run("route", "update", "r1", "--json", env=env)
    assert nothing.error_code() == "invalid_argument"
    missing = run("route", "add", "r2", "--json", env=env)
    assert missing.error_code() == "invalid_argument"

    auditor = run(
        "token", "create", "--name", "ro", "--role", "auditor", "--json", env=env, check=True
    ).json()
    token = auditor["token"]
    assert isinstance(token, str)
    server.remember(token)
    as_auditor = server.env(token)
    assert run("route", "list", "--json", env=as_auditor, check=True).json()["routes"]
    denied = run("route", "remove", "r1", "--json", env=as_auditor)
    assert denied.error_code() == "permission_denied"
    text = run("route", "add", "r3", "--upstream", "ftp://x", env=env)
    assert text.returncode == 1
    assert "invalid_argument" in text.stderr
    assert "hint" in text.stderr
