"""The egress proxy against ``openssl s_server -Verify 1``: OpenSSL's own server, requiring a
client certificate, answering HTTP/1.0 with a close-delimited body (``-www``). Without
``-verify_return_error`` s_server accepts a certificate it cannot verify, so the test sets it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from mutls.pki.authority import Profile
from mutls.testing import TestCA
from tests.e2e.egress_setup import EgressNode, certificate_fields
from tests.e2e.gateway_setup import free_port, wait_until


@dataclass
class World:
    node: EgressNode
    token: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is required (make install adds it)")
    base = tmp_path_factory.mktemp("egress-openssl")
    server_ca, client_ca = TestCA(name="S Server CA"), TestCA(name="S Client CA")
    server = server_ca.issue("localhost", profile=Profile.SERVER, sans=["DNS:localhost"])
    (base / "server.pem").write_bytes(server.cert_pem)
    (base / "intermediates.pem").write_bytes(server.chain_pem[len(server.cert_pem) :])
    (base / "server.key").write_bytes(server.key_pem())
    (base / "clients.pem").write_bytes(client_ca.root_pem)
    port = free_port()
    with (base / "s_server.log").open("wb") as log:
        s_server = subprocess.Popen(
            [
                openssl,
                "s_server",
                "-accept",
                f"127.0.0.1:{port}",
                "-cert",
                "server.pem",
                "-key",
                "server.key",
                "-cert_chain",
                "intermediates.pem",
                "-CAfile",
                "clients.pem",
                "-Verify",
                "1",
                "-verify_return_error",  # else s_server logs a bad certificate and goes on
                "-www",
                "-quiet",
            ],
            cwd=base,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    node = EgressNode(base).open()
    try:
        ca_pem = server_ca.root_pem.decode()
        node.secret(
            "ours",
            {"production": certificate_fields(client_ca.issue("ours.example"), ca_pem=ca_pem)},
        )
        node.secret(
            "theirs",
            {
                "production": certificate_fields(
                    TestCA(name="Elsewhere CA").issue("theirs.example"), ca_pem=ca_pem
                )
            },
        )
        node.secret("ca", {"production": {"value": ca_pem}}, secret_type="string")
        url = f"https://localhost:{port}"
        node.route("s-server", url, certificate_secret="ours")
        node.route("s-server-nocert", url, ca_bundle_secret="ca")
        node.route("s-server-stranger", url, certificate_secret="theirs")
        token = node.token()
        node.start()
        yield World(node=node, token=token)
    finally:
        node.stop()
        s_server.terminate()
        s_server.wait(timeout=10)


def get(world: World, path: str) -> httpx.Response:
    return wait_until(
        lambda: httpx.get(
            world.node.url + path, headers={"X-Mutls-Token": world.token}, timeout=20
        ),
        10,
    )


def test_the_certificate_is_accepted_and_the_close_delimited_answer_arrives(world: World) -> None:
    response = get(world, "/s-server/")
    assert response.status_code == 200, response.text
    assert "s_server" in response.text
    assert "CN=ours.example" in response.text or "ours.example" in response.text


def test_no_certificate_is_named(world: World) -> None:
    response = get(world, "/s-server-nocert/")
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "partner_requires_client_certificate"


def test_a_certificate_from_another_ca_is_named(world: World) -> None:
    response = get(world, "/s-server-stranger/")
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "partner_rejected_certificate"
    assert error["reason"] == "unknown_ca"
