"""The API of an account's own CAs (seed 004): upload, list, remove, and who may do it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from mutls.ca.trust import match_account
from mutls.testing import TestCA
from tests.loopback.api.conftest import Api


def customer_chain(name: str = "Acme Root CA") -> tuple[TestCA, str]:
    ca = TestCA(name=name, organization="Acme")
    assert ca.intermediate is not None
    pem = ca.root_pem + ca.intermediate.public_bytes(serialization.Encoding.PEM)
    return ca, pem.decode()


def test_upload_list_map_and_remove(api: Api) -> None:
    """An admin uploads a chain (201), it is listed, its leaf maps, removal stops the mapping."""
    account = api.account("acme")
    ca, pem = customer_chain()
    created = api.call(
        "POST",
        "/admin/accounts/acme/cas",
        json={"chain_pem": pem, "name": "acme-ca", "subject_patterns": ["*.acme.example"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["account_id"] == account
    assert body["name"] == "acme-ca"
    assert body["subject"] == "CN=Acme Root CA Issuing CA,O=Acme"
    assert body["subject_patterns"] == ["*.acme.example"]
    assert body["chain_subjects"][-1] == "CN=Acme Root CA,O=Acme"

    listed = api.call(
        "GET", f"/admin/accounts/{account}/cas", role="manage-mtls", account_id=account
    )
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()["cas"]] == [body["id"]]

    leaf = ca.issue("client.acme.example")
    match = match_account(api.db, leaf.certificate, leaf.chain, now=api.now())
    assert match is not None
    assert match.account_id == account

    removed = api.call("DELETE", f"/admin/accounts/acme/cas/{body['id']}")
    assert removed.status_code == 200
    assert match_account(api.db, leaf.certificate, leaf.chain, now=api.now()) is None
    assert api.call("GET", "/admin/accounts/acme/cas").json()["cas"] == []
    again = api.call("DELETE", f"/admin/accounts/acme/cas/{body['id']}")
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "trusted_ca_not_found"


@pytest.mark.parametrize(("role", "scoped"), [("manage-mtls", True), ("admin", True)])
def test_only_platform_admins_upload(api: Api, role: str, scoped: bool) -> None:
    """manage-mtls, and even the account's own admin, get 403: trusting a CA is the provider's
    decision. Nothing is stored."""
    account = api.account("acme")
    _, pem = customer_chain()
    response = api.call(
        "POST",
        f"/admin/accounts/{account}/cas",
        role=role,
        account_id=account if scoped else None,
        json={"chain_pem": pem},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert api.call("GET", f"/admin/accounts/{account}/cas").json()["cas"] == []


def test_another_accounts_cas_are_404(api: Api) -> None:
    """A token of account A listing B's CAs gets the same 404 as for no account at all."""
    a, b = api.account("alpha"), api.account("bravo")
    _, pem = customer_chain()
    assert api.call("POST", f"/admin/accounts/{b}/cas", json={"chain_pem": pem}).status_code == 201
    for ref in (b, "bravo", "nobody"):
        response = api.call("GET", f"/admin/accounts/{ref}/cas", role="manage-mtls", account_id=a)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "account_not_found"
    assert (
        api.call("POST", "/admin/accounts/nobody/cas", json={"chain_pem": pem}).status_code == 404
    )


@pytest.mark.parametrize(
    ("chain_pem", "code"),
    [
        ("not a certificate", None),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None),
    ],
)
def test_bad_pem_is_422(api: Api, chain_pem: str, code: str | None) -> None:
    """Garbage is a 422 with the loader's code; nothing is stored."""
    api.account("acme")
    response = api.call("POST", "/admin/accounts/acme/cas", json={"chain_pem": chain_pem})
    assert response.status_code == 422
    assert response.json()["error"]["code"] not in ("internal_error", "invalid_request")
    assert api.call("GET", "/admin/accounts/acme/cas").json()["cas"] == []


def test_leaf_expired_and_rootless_uploads_are_422_with_their_codes(api: Api) -> None:
    """A leaf is not_a_ca, an expired CA certificate_expired, a lone intermediate unknown_issuer."""
    api.account("acme")
    ca, _ = customer_chain()
    expired = TestCA(name="Old", now=api.now() - timedelta(days=20), validity=timedelta(days=5))
    assert ca.intermediate is not None
    cases = {
        "not_a_ca": ca.issue("client.acme.example").chain_pem + ca.root_pem,
        "certificate_expired": expired.root_pem,
        "unknown_issuer": ca.intermediate.public_bytes(serialization.Encoding.PEM),
    }
    for code, pem in cases.items():
        response = api.call("POST", "/admin/accounts/acme/cas", json={"chain_pem": pem.decode()})
        assert response.status_code == 422, code
        assert response.json()["error"]["code"] == code


def test_duplicate_upload_is_409(api: Api) -> None:
    """The same chain twice is 409 ca_already_trusted."""
    api.account("acme")
    _, pem = customer_chain()
    assert api.call("POST", "/admin/accounts/acme/cas", json={"chain_pem": pem}).status_code == 201
    response = api.call("POST", "/admin/accounts/acme/cas", json={"chain_pem": pem})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "ca_already_trusted"


@pytest.mark.usefixtures("platform_ca")
def test_the_platform_ca_cannot_become_a_customer_ca(api: Api) -> None:
    """Uploading the platform's own chain would map every issued certificate to one account."""
    api.account("acme")
    chain = api.client.get("/ca/platform/chain.pem")
    assert chain.status_code == 200
    response = api.call("POST", "/admin/accounts/acme/cas", json={"chain_pem": chain.text})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "ca_already_trusted"
