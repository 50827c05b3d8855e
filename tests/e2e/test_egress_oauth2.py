"""Seed 002's three partner examples through the egress proxy, per environment, with the local
stand-in partners (``mutls.runtime.partners``): a bank with mTLS only, an Open Banking API whose
tokens come over mTLS (RFC 8705 ``tls_client_auth``) and are bound to the certificate, and a tax
authority with OAuth2 (``client_secret_basic``) plus headers from secrets."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from mutls.runtime.partners import PartnerName, Partners, start_partners
from mutls.store.models import EgressRequest
from tests.e2e.egress_setup import EgressNode
from tests.e2e.gateway_setup import wait_until

ENVIRONMENTS = ("production", "sandbox")


@dataclass
class World:
    node: EgressNode
    partners: Partners
    token: str


def _identity(partners: Partners, env: str) -> dict[str, object]:
    identity = partners.identities[env]
    return {
        "certificate_pem": identity.cert_path.read_text(),
        "private_key_pem": identity.key_path.read_text(),
        "ca_bundle_pem": partners.ca_path.read_text(),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("egress-oauth2")
    with start_partners(base / "partners") as partners:
        node = EgressNode(base).open()
        try:
            node.secret("partner_cert", {env: _identity(partners, env) for env in ENVIRONMENTS})
            node.secret(
                "ob_oauth",
                {
                    env: {
                        "token_url": partners.token_url,
                        "client_id": partners.openbanking_client_ids[env],
                        "auth_method": "tls_client_auth",
                        "certificate_secret": "partner_cert",
                        "scopes": ["accounts"],
                    }
                    for env in ENVIRONMENTS
                },
                secret_type="oauth2",
            )
            node.secret(
                "tax_oauth",
                {
                    env: {
                        "token_url": partners.tax_token_url,
                        "client_id": partners.tax_clients[env].client_id,
                        "client_secret": partners.tax_clients[env].client_secret,
                        "auth_method": "client_secret_basic",
                        "scopes": ["read:returns"],
                    }
                    for env in ENVIRONMENTS
                },
                secret_type="oauth2",
            )
            node.secret(
                "tax_bad_oauth",
                {
                    "production": {
                        "token_url": partners.tax_token_url,
                        "client_id": partners.tax_clients["production"].client_id,
                        "client_secret": "not-the-secret",
                        "auth_method": "client_secret_basic",
                    }
                },
                secret_type="oauth2",
            )
            node.secret(
                "tax_api_key",
                {env: {"value": partners.tax_clients[env].api_key} for env in ENVIRONMENTS},
                secret_type="string",
            )
            node.route("bank", partners.bank_url, certificate_secret="partner_cert")
            node.route(
                "openbanking",
                partners.openbanking_url,
                certificate_secret="partner_cert",
                oauth2_secret="ob_oauth",
            )
            node.route(
                "tax",
                partners.tax_url,
                certificate_secret="partner_cert",
                oauth2_secret="tax_oauth",
                headers={"X-Api-Key": "{{secret:tax_api_key}}", "X-Environment": "{{environment}}"},
            )
            node.route(
                "tax-bad",
                partners.tax_url,
                certificate_secret="partner_cert",
                oauth2_secret="tax_bad_oauth",
            )
            token = node.token("payments-app")
            node.start()
            yield World(node=node, partners=partners, token=token)
        finally:
            node.stop()


def get(world: World, path: str, env: str = "production") -> httpx.Response:
    return httpx.get(
        world.node.url + path,
        headers={"X-Mutls-Token": world.token, "X-Mutls-Environment": env},
        timeout=30,
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_bank_mtls_only_per_environment(world: World, env: str) -> None:
    """The bank sees the certificate it issued for that environment."""
    response = get(world, "/bank/accounts", env)
    assert response.status_code == 200, response.text
    assert world.partners.identities[env].common_name in response.text


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_open_banking_token_over_mtls_is_fetched_once_and_cached(world: World, env: str) -> None:
    """The token comes from the token endpoint over mTLS (tls_client_auth) once, then from the
    cache; the partner accepts it because it is bound to the same certificate."""
    before = world.partners.counters(PartnerName.OPENBANKING).tokens_issued
    for _ in range(5):
        response = get(world, "/openbanking/accounts", env)
        assert response.status_code == 200, response.text
    assert world.partners.counters(PartnerName.OPENBANKING).tokens_issued == before + 1
    issued = world.partners.issued(PartnerName.OPENBANKING)[-1]
    assert issued.auth_method == "tls_client_auth"
    assert issued.environment == env


def test_concurrent_first_requests_share_one_token_fetch(world: World) -> None:
    """Twenty requests arriving together with no cached token cause one token request."""
    world.partners.revoke_tokens(PartnerName.TAX)
    # a fresh cache key: the first request after revocation refetches once (401 retry)
    assert get(world, "/tax/returns").status_code == 200
    before = world.partners.counters(PartnerName.TAX).tokens_issued
    world.partners.revoke_tokens(PartnerName.TAX)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: get(world, "/tax/returns").status_code, range(20)))
    assert statuses == [200] * 20
    assert world.partners.counters(PartnerName.TAX).tokens_issued == before + 1


def test_revoked_token_is_replaced_after_one_401(world: World) -> None:
    """The partner revokes its tokens early: the app never sees the 401, one new token is
    fetched and the request is sent again."""
    assert get(world, "/openbanking/accounts").status_code == 200
    before = world.partners.counters(PartnerName.OPENBANKING).tokens_issued
    world.partners.revoke_tokens(PartnerName.OPENBANKING)
    response = get(world, "/openbanking/accounts")
    assert response.status_code == 200, response.text
    assert world.partners.counters(PartnerName.OPENBANKING).tokens_issued == before + 1


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_tax_authority_with_oauth2_and_headers_from_secrets(world: World, env: str) -> None:
    """OAuth2 (client_secret_basic) plus the API key and environment headers rendered per
    environment from secrets."""
    response = get(world, "/tax/returns", env)
    assert response.status_code == 200, response.text


def test_wrong_client_secret_is_oauth2_token_failed_with_the_endpoint_error(world: World) -> None:
    response = get(world, "/tax-bad/returns")
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "oauth2_token_failed"
    assert "invalid_client" in error["message"]
    assert "not-the-secret" not in response.text


def test_request_log_records_token_cache_hits_and_no_token(world: World) -> None:
    get(world, "/openbanking/accounts")
    get(world, "/openbanking/accounts")
    platform = world.node.platform
    assert platform is not None

    def rows() -> list[EgressRequest]:
        with platform.db.read() as session:
            found = session.execute(
                select(EgressRequest).where(EgressRequest.route_name == "openbanking")
            ).scalars()
            return [r for r in found if r.oauth2_token == "hit"]

    assert wait_until(rows, 10)
    log = world.node.log()
    for env in ENVIRONMENTS:
        assert world.partners.tax_clients[env].client_secret not in log
        assert world.partners.tax_clients[env].api_key not in log
    assert "Bearer " not in log
