"""Kept-alive connections that the other side closes just as the egress proxy reuses them.

A token endpoint or a partner API may close an idle keep-alive connection at the moment the proxy
sends a request on it. The request then meets a close and no answer. The proxy sends it once
more on a new connection, for the token fetch and for an app's request alike. A fresh connection
that closes unanswered is a failure, never a loop. The server here is a real TLS server on
127.0.0.1. It answers the first request of each connection. When told to, it closes the
connection on the next request without answering."""

from __future__ import annotations

import json
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from mutls.pki.authority import Profile
from mutls.testing import TestCA
from tests.e2e.egress_setup import EgressNode, MtlsPartner, certificate_fields


class _ClosingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _ClosingHandler)
        self.context = context
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = 0
        self.issued = 0
        self.unanswered = 0
        self.close_reused = False
        """Close a connection's second and later requests unanswered (an idle-close race)."""
        self.close_all = False
        """Close every request unanswered."""

    def get_request(self) -> tuple[ssl.SSLSocket, object]:
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True), address


class _ClosingHandler(socketserver.StreamRequestHandler):
    server: _ClosingServer

    def handle(self) -> None:
        server = self.server
        with server.lock:
            server.connections += 1
        on_this_connection = 0
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = self.rfile.readline()
                if not line:
                    return
                head += line
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.rfile.read(length)
            on_this_connection += 1
            with server.lock:
                server.requests += 1
                refuse = server.close_all or (server.close_reused and on_this_connection > 1)
                if refuse:
                    server.unanswered += 1
                else:
                    server.issued += 1
                    number = server.issued
            if refuse:
                return  # closes the connection without a byte of answer
            if head.startswith(b"POST /token "):
                answer = {
                    "access_token": f"token-{number}",
                    "token_type": "Bearer",
                    "expires_in": 0,
                }
            else:
                answer = {"served": number}
            body = json.dumps(answer).encode()
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )


@dataclass
class World:
    node: EgressNode
    endpoint: _ClosingServer
    """The token endpoint of route ``api``."""
    api: _ClosingServer
    """The partner API of route ``plain`` (TLS, no client certificate, no token)."""
    token: str


def _serve(context: ssl.SSLContext) -> _ClosingServer:
    server = _ClosingServer(context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("egress-keepalive")
    server_ca = TestCA(name="Partner Server CA")
    client_ca = TestCA(name="Partner Client CA")
    partner = MtlsPartner(server_ca=server_ca, client_ca=client_ca).start(base / "partner")
    identity = server_ca.issue("localhost", profile=Profile.SERVER, sans=["DNS:localhost"])
    (base / "token.pem").write_bytes(identity.chain_pem)
    (base / "token.key").write_bytes(identity.key_pem())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(base / "token.pem", base / "token.key")
    endpoint, api = _serve(context), _serve(context)
    node = EgressNode(base).open()
    ca_pem = server_ca.root_pem.decode()
    try:
        node.secret("cert", {"production": certificate_fields(client_ca.issue("app.example"))})
        node.secret("partner_ca", {"production": {"value": ca_pem}}, secret_type="string")
        node.secret(
            "oauth",
            {
                "production": {
                    "token_url": f"https://localhost:{endpoint.server_address[1]}/token",
                    "client_id": "app",
                    "client_secret": "token-endpoint-secret",
                    "auth_method": "client_secret_post",
                }
            },
            secret_type="oauth2",
        )
        node.route(
            "api",
            partner.url,
            certificate_secret="cert",
            ca_bundle_secret="partner_ca",
            oauth2_secret="oauth",
        )
        node.route(
            "plain", f"https://localhost:{api.server_address[1]}", ca_bundle_secret="partner_ca"
        )
        token = node.token("app")
        node.start()
        yield World(node=node, endpoint=endpoint, api=api, token=token)
    finally:
        node.stop()
        for server in (endpoint, api):
            server.shutdown()
            server.server_close()
        partner.stop()


def _get(world: World, route: str = "api") -> httpx.Response:
    return httpx.get(
        f"{world.node.url}/{route}/accounts", headers={"X-Mutls-Token": world.token}, timeout=30
    )


def test_a_kept_alive_connection_closed_unanswered_is_replaced_once(world: World) -> None:
    endpoint = world.endpoint
    first = _get(world)  # a token (it expires at once), over a new kept-alive connection
    assert first.status_code == 200, first.text
    endpoint.close_reused = True
    try:
        before = (endpoint.connections, endpoint.issued, endpoint.unanswered)
        second = _get(world)  # the token is spent: the next fetch reuses that connection
    finally:
        endpoint.close_reused = False
    assert second.status_code == 200, second.text
    connections, issued, unanswered = (
        endpoint.connections - before[0],
        endpoint.issued - before[1],
        endpoint.unanswered - before[2],
    )
    # the reused connection was closed unanswered; a new one got the token
    assert (unanswered, issued, connections) == (1, 1, 1)


def test_a_new_connection_closed_unanswered_fails_without_a_loop(world: World) -> None:
    endpoint = world.endpoint
    assert _get(world).status_code == 200
    endpoint.close_all = True
    try:
        before = endpoint.requests
        refused = _get(world)
        tries = endpoint.requests - before
    finally:
        endpoint.close_all = False
    assert refused.status_code == 502, refused.text
    error = refused.json()["error"]
    assert error["code"] == "oauth2_token_failed", error
    assert tries == 2  # the reused connection, then one new one: no more
    assert "token-endpoint-secret" not in refused.text


def test_an_app_request_on_a_closed_kept_alive_connection_goes_again_once(world: World) -> None:
    api = world.api
    assert _get(world, "plain").status_code == 200  # leaves a kept-alive connection in the pool
    api.close_reused = True
    try:
        before = (api.connections, api.issued, api.unanswered)
        again = _get(world, "plain")
    finally:
        api.close_reused = False
    assert again.status_code == 200, again.text
    assert "served" in again.json()
    assert (
        api.unanswered - before[2],
        api.issued - before[1],
        api.connections - before[0],
    ) == (1, 1, 1)


def test_an_app_request_closed_unanswered_twice_is_partner_connection_closed(
    world: World,
) -> None:
    api = world.api
    assert _get(world, "plain").status_code == 200
    api.close_all = True
    try:
        before = api.requests
        refused = _get(world, "plain")
        tries = api.requests - before
    finally:
        api.close_all = False
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"]["code"] == "partner_connection_closed", refused.text
    assert tries == 2
