"""The verified peer of a handshake, full and resumed, and its RFC 9440 header values."""

from __future__ import annotations

import base64
import contextlib

import pytest
from OpenSSL import SSL
from OpenSSL._util import lib

from mutls.gateway.peer import PeerCache, peer_headers
from mutls.pki.authority import Profile
from mutls.pki.material import Material, SourceFormat
from mutls.testing import Identity, TestCA
from mutls.tls.gateway_context import GatewayTlsPolicy, TlsVersion, gateway_server_context


def _server_context(ca: TestCA, version: TlsVersion) -> SSL.Context:
    server = ca.issue("localhost", profile=Profile.SERVER, sans=["DNS:localhost"])
    material = Material(
        source_format=SourceFormat.PEM, leaf=server.certificate, chain=server.chain, key=server.key
    )
    policy = GatewayTlsPolicy(minimum=version, maximum=version)
    return gateway_server_context(material, [ca.root, *ca.intermediates], policy)


def _client_context(client: Identity) -> SSL.Context:
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.use_certificate(client.certificate)
    for extra in client.chain[1:]:
        context.add_extra_chain_cert(extra)
    context.use_privatekey(client.key)
    return context


def _handshake(
    server_context: SSL.Context, client_context: SSL.Context, session: SSL.Session | None = None
) -> tuple[SSL.Connection, SSL.Connection]:
    server = SSL.Connection(server_context, None)
    server.set_accept_state()
    client = SSL.Connection(client_context, None)
    client.set_connect_state()
    if session is not None:
        client.set_session(session)
    for _ in range(10):
        with contextlib.suppress(SSL.WantReadError):
            client.do_handshake()
        with contextlib.suppress(SSL.WantReadError):
            server.bio_write(client.bio_read(65536))
        with contextlib.suppress(SSL.WantReadError):
            server.do_handshake()
        with contextlib.suppress(SSL.WantReadError):
            client.bio_write(server.bio_read(65536))
        with contextlib.suppress(SSL.WantReadError):
            client.recv(1)  # reads the session ticket (TLS 1.3)
    return server, client


@pytest.mark.parametrize("version", [TlsVersion.TLS1_2, TlsVersion.TLS1_3])
def test_a_resumed_session_maps_to_the_same_chain(version: TlsVersion) -> None:
    """Resumption keeps no verified path; the peer is rebuilt from issuer names, identically."""
    ca = TestCA()
    client = ca.issue("client.acme.example")
    server_context = _server_context(ca, version)
    client_context = _client_context(client)
    first, first_client = _handshake(server_context, client_context)
    anchors = [ca.root, *ca.intermediates]
    full = PeerCache(anchors=anchors).get(first)
    assert full is not None
    assert len(full.ca_fingerprints) == 2  # the issuing intermediate, then the root
    session = first_client.get_session()
    assert session is not None
    second, _ = _handshake(server_context, client_context, session)
    assert lib.SSL_session_reused(second._ssl) == 1  # really resumed
    resumed = PeerCache(anchors=anchors).get(second)  # an empty cache: the worst case
    assert resumed == full


def test_without_a_certificate_there_is_no_peer() -> None:
    ca = TestCA()
    server, _ = _handshake(
        _server_context(ca, TlsVersion.TLS1_3), SSL.Context(SSL.TLS_CLIENT_METHOD)
    )
    assert PeerCache().get(server) is None


def test_rfc9440_values_are_byte_sequences_of_the_der() -> None:
    ca = TestCA()
    client = ca.issue("client.acme.example")
    server, _ = _handshake(_server_context(ca, TlsVersion.TLS1_3), _client_context(client))
    peer = PeerCache(anchors=[ca.root]).get(server)
    assert peer is not None
    cert, chain = peer_headers(peer)
    assert cert == b":" + base64.b64encode(peer.der) + b":"
    assert chain == b":" + base64.b64encode(peer.chain_der[0]) + b":"
    assert peer.client_auth
    assert peer.names == ("client.acme.example", "client.acme.example")
