"""A listener certificate that renews itself (``mutls up``'s renewal listener): renewed at two
thirds of its life, not before; a failed issuance keeps the current certificate and is retried
``RENEW_RETRY`` later; real handshakes on loopback get the current certificate, with and
without SNI, while a connection opened before keeps its own."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from mutls.ca.server_identity import RENEW_RETRY
from mutls.pki.authority import Profile
from mutls.pki.material import Material, SourceFormat
from mutls.runtime.server_certs import RenewingServerCertificate
from mutls.testing import TestCA
from mutls.tls.context import ClientCertMode, server_context

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LIFE = timedelta(days=90)
SERVING_LIFE = timedelta(seconds=60)
"""For the handshake test, whose client checks validity against the real clock."""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Issuer:
    """Issues server certificates (90 days unless told) from a test CA; fails while ``failing``
    is set."""

    def __init__(self, ca: TestCA, life: timedelta = LIFE) -> None:
        self.ca, self.life = ca, life
        self.failing = False
        self.issued = 0

    def __call__(self, now: datetime) -> Material:
        if self.failing:
            raise OSError("the CA key is not readable")
        self.issued += 1
        identity = self.ca.issue(
            "127.0.0.1", profile=Profile.SERVER, sans=["IP:127.0.0.1", "DNS:localhost"], now=now,
            validity=self.life,
        )  # fmt: skip
        return Material(
            source_format=SourceFormat.PEM,
            leaf=identity.certificate,
            chain=identity.chain,
            key=identity.key,
        )


def _build(material: Material) -> ssl.SSLContext:
    return server_context(material, client_cert=ClientCertMode.NONE)


@pytest.fixture
def ca() -> TestCA:
    return TestCA(name="Listener Test CA", now=START - timedelta(days=1))


def test_renewed_at_two_thirds_and_not_before(ca: TestCA) -> None:
    clock, issue = Clock(), Issuer(ca)
    certificate = RenewingServerCertificate("test listener", issue=issue, build=_build, clock=clock)
    first = certificate.context.current
    clock.now = START + LIFE * 2 / 3 - timedelta(seconds=1)
    assert certificate.renew_if_due() is False
    assert (issue.issued, certificate.context.current) == (1, first)
    clock.now = START + LIFE * 2 / 3
    assert certificate.renew_if_due() is True
    assert issue.issued == 2
    assert certificate.context.current is not first
    assert certificate.renew_at == clock.now + LIFE * 2 / 3


def test_a_failed_issuance_keeps_the_certificate_and_retries_later(
    ca: TestCA, caplog: pytest.LogCaptureFixture
) -> None:
    clock, issue = Clock(), Issuer(ca)
    certificate = RenewingServerCertificate("test listener", issue=issue, build=_build, clock=clock)
    first, material = certificate.context.current, certificate.material
    clock.now = START + LIFE * 2 / 3
    issue.failing = True
    assert certificate.renew_if_due() is False
    assert (certificate.context.current, certificate.material) == (first, material)
    assert certificate.renew_at == clock.now + RENEW_RETRY
    assert "keeping the current one" in caplog.text
    clock.now += RENEW_RETRY - timedelta(seconds=1)
    assert certificate.renew_if_due() is False  # not retried every tick
    issue.failing = False
    clock.now += timedelta(seconds=1)
    assert certificate.renew_if_due() is True
    assert certificate.context.current is not first


@pytest.fixture
def serving(ca: TestCA) -> Iterator[tuple[RenewingServerCertificate, Clock, int]]:
    """A TLS server on 127.0.0.1 using the certificate's front context, answering each
    connection with one byte after the handshake."""
    clock = Clock()
    clock.now = datetime.now(UTC)
    certificate = RenewingServerCertificate(
        "test listener", issue=Issuer(ca, SERVING_LIFE), build=_build, clock=clock
    )
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            try:
                with certificate.context.front.wrap_socket(raw, server_side=True) as tls:
                    tls.sendall(b"!")
                    tls.recv(1)  # until the client closes
            except (OSError, ssl.SSLError):
                continue

    threads = [threading.Thread(target=serve, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        yield certificate, clock, listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def _handshake(
    port: int, ca: TestCA, server_hostname: str
) -> tuple[ssl.SSLSocket, x509.Certificate]:
    context = ssl.create_default_context(cadata=ca.root_pem.decode())
    tls = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=server_hostname
    )
    assert tls.recv(1) == b"!"
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return tls, x509.load_der_x509_certificate(der)


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])  # no SNI for an IP; SNI for a name
def test_new_handshakes_get_the_renewed_certificate_open_ones_keep_theirs(
    serving: tuple[RenewingServerCertificate, Clock, int], ca: TestCA, name: str
) -> None:
    certificate, clock, port = serving
    before, old = _handshake(port, ca, name)
    clock.now += SERVING_LIFE * 2 / 3  # due; the new certificate is valid now (backdated)
    assert certificate.renew_if_due() is True
    after, new = _handshake(port, ca, name)
    assert new.serial_number != old.serial_number
    assert new.serial_number == certificate.material.leaf.serial_number  # type: ignore[union-attr]
    der = before.getpeercert(binary_form=True)
    assert der is not None
    assert x509.load_der_x509_certificate(der).serial_number == old.serial_number
    before.close()
    after.close()
