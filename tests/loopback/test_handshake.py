"""Real TLS handshakes on 127.0.0.1 with certificates from the offline CA (no mocks)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from mutls.ca import OfflineCA
from mutls.pki.authority import Profile
from mutls.pki.csr import SubjectSpec, build_csr, parse_san
from mutls.pki.export import private_key_pem
from mutls.pki.keys import generate_key
from mutls.pki.loader import load_identity, load_material
from mutls.pki.material import Material
from mutls.testing import TestCA
from mutls.tls import client_context, server_context

PASSPHRASE = b"loopback ca passphrase"


@dataclass
class Issued:
    cert_path: Path
    key_path: Path
    material: Material


def _issue(ca: OfflineCA, directory: Path, cn: str, profile: Profile, sans: list[str]) -> Issued:
    key = generate_key()
    csr = build_csr(key, SubjectSpec(common_name=cn), [parse_san(s) for s in sans])
    cert = ca.sign(
        csr.public_bytes(serialization.Encoding.PEM),
        passphrase=PASSPHRASE,
        now=datetime.now(UTC),
        profile=profile,
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in ca.chain()[:-1]
    )
    cert_path, key_path = directory / f"{cn}.pem", directory / f"{cn}.key"
    cert_path.write_bytes(chain)
    key_path.write_bytes(private_key_pem(key, None))
    return Issued(cert_path, key_path, load_identity(chain, key_path.read_bytes()))


@dataclass
class Server:
    port: int
    outcomes: list[str] = field(default_factory=list)
    recorded: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def record(self, outcome: str) -> None:
        self.outcomes.append(outcome)
        self.recorded.release()

    def next_outcome(self) -> str:
        """The server's verdict on the next connection (it may land after the client's)."""
        assert self.recorded.acquire(timeout=10), "the server recorded no outcome"
        return self.outcomes[-1]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[OfflineCA, Issued, Issued, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca = OfflineCA.init(
        directory / "ca",
        name="Loopback Root",
        organization="Loopback",
        passphrase=PASSPHRASE,
        now=datetime.now(UTC),
        intermediate=True,
    )
    server = _issue(ca, directory, "localhost", Profile.SERVER, ["localhost", "127.0.0.1"])
    client = _issue(ca, directory, "client.loopback.example", Profile.CLIENT, [])
    return ca, server, client, directory / "ca" / "root.pem"


@pytest.fixture
def server(pki: tuple[OfflineCA, Issued, Issued, Path]) -> Iterator[Server]:
    """A TLS server that requires a client certificate from the CA and answers HTTP 200."""
    ca, issued, _, _ = pki
    context = server_context(issued.material, client_cas=[ca.root_certificate()])
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)  # lets the accept loop notice `stop` promptly
    state = Server(port=listener.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            raw.settimeout(10)
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    der = conn.getpeercert(binary_form=True)
                    name = load_material(der).require_certificate().subject if der else None
                    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value if name else ""
                    state.record(f"ok:{cn!s}")
                    conn.recv(4096)
                    body = b"hello " + str(cn).encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                        % (len(body), body)
                    )
            except (ssl.SSLError, OSError) as exc:
                state.record(f"refused:{getattr(exc, 'reason', type(exc).__name__)}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield state
    stop.set()
    listener.close()
    thread.join(timeout=15)


def _stdlib_request(port: int, context: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        return tls.recv(4096)


def _attempt(port: int, context: ssl.SSLContext) -> str:
    """ "answered" or "refused". With TLS 1.3 the server's alert can arrive on the first read,
    after the client thinks the handshake is done, so an empty read counts as refused too."""
    try:
        reply = _stdlib_request(port, context)
    except (ssl.SSLError, ConnectionError):
        return "refused"
    return "answered" if reply else "refused"


def test_stdlib_client_with_ca_issued_certificate_succeeds(
    server: Server, pki: tuple[OfflineCA, Issued, Issued, Path]
) -> None:
    """A client certificate from the offline CA completes the handshake; the server sees it."""
    ca, _, client, _ = pki
    context = client_context(client.material, cas=[ca.root_certificate()])
    reply = _stdlib_request(server.port, context)
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert server.next_outcome() == "ok:client.loopback.example"


def test_client_certificate_from_another_ca_is_refused(
    server: Server, pki: tuple[OfflineCA, Issued, Issued, Path]
) -> None:
    """Rejection twin: a certificate from a CA the server does not trust fails the handshake."""
    ca, _, _, _ = pki
    stranger = TestCA(name="Stranger Root").issue("client.loopback.example")
    material = load_identity(stranger.chain_pem, stranger.key_pem())
    context = client_context(material, cas=[ca.root_certificate()])
    assert _attempt(server.port, context) == "refused"
    assert server.next_outcome().startswith("refused:")


def test_no_client_certificate_is_refused(
    server: Server, pki: tuple[OfflineCA, Issued, Issued, Path]
) -> None:
    """Rejection twin: the server requires a client certificate; none is refused."""
    ca, _, _, _ = pki
    context = client_context(None, cas=[ca.root_certificate()])
    assert _attempt(server.port, context) == "refused"
    assert server.next_outcome().startswith("refused:")


def test_python_requests_with_cert_and_key_files(
    server: Server, pki: tuple[OfflineCA, Issued, Issued, Path]
) -> None:
    """The seed-000 `requests.get(url, cert=(cert, key))` snippet works against the CA's certs."""
    _, _, client, root = pki
    response = requests.get(
        f"https://localhost:{server.port}/",
        cert=(str(client.cert_path), str(client.key_path)),
        verify=str(root),
        timeout=10,
    )
    assert response.status_code == 200
    assert response.text == "hello client.loopback.example"


def test_curl_with_cert_and_key_files(
    server: Server, pki: tuple[OfflineCA, Issued, Issued, Path]
) -> None:
    """The seed-000 curl command (--cert --key --cacert) works; without --cert it is refused."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is required for client interop tests")
    _, _, client, root = pki
    url = f"https://localhost:{server.port}/"
    ok = subprocess.run(
        [
            curl,
            "-sS",
            "--cert",
            str(client.cert_path),
            "--key",
            str(client.key_path),
            "--cacert",
            str(root),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "hello client.loopback.example"
    refused = subprocess.run(
        [curl, "-sS", "--cacert", str(root), url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode != 0
