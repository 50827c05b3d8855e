"""Shared helpers for tests that drive the mTLS gateway with real clients.

* :class:`EchoUpstream`: a plain HTTP/1.1 upstream on loopback that answers every request with
  what it received (method, path, headers in order, body) as JSON, so a test sees exactly what the
  gateway forwarded.
* Certificate helpers over :class:`mutls.testing.TestCA`: write an identity to files, mint an
  expired or a serverAuth-only (wrong EKU) client certificate, the RFC 9440 form of a certificate.
* :func:`wait_until`: poll a condition with a short deadline instead of sleeping.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mutls.pki.authority import Profile
from mutls.pki.csr import SubjectSpec, build_csr, parse_san
from mutls.pki.export import private_key_pem
from mutls.pki.keys import KeySpec, generate_key
from mutls.testing import Identity, TestCA

__all__ = [
    "EchoUpstream",
    "IdentityFiles",
    "certificate_der",
    "expired_identity",
    "free_port",
    "rfc9440",
    "wait_until",
    "write_csr",
    "write_identity",
    "wrong_eku_identity",
]

T = TypeVar("T")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PICKER = random.Random()  # seeded from os.urandom: parallel test processes pick apart


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for a server started next).

    Picked below the kernel's ephemeral range: a port from ``bind(0)`` comes from that range,
    where any outgoing connection of a parallel test (or of the server being started) may take
    it as its source port before our server binds it ("Address already in use")."""
    high = _ephemeral_low() - 1
    for _ in range(200):
        port = _PICKER.randint(10_000, high)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # everything below is taken: let the kernel choose
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def wait_until(
    predicate: Callable[[], T], timeout: float, *, interval: float = 0.05, what: str = ""
) -> T:
    """The first truthy value of ``predicate()`` within ``timeout`` seconds; else AssertionError
    with the last value seen (exceptions from ``predicate`` count as a falsy answer)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except Exception as error:
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not true within {timeout}s: {what or predicate!r}; last: {last!r}"
            )
        time.sleep(interval)


# --- the upstream --------------------------------------------------------------------------


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo-upstream"

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": [[name, value] for name, value in self.headers.items()],
                "body": body.decode("utf-8", "replace"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _echo

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a test reads the echoed JSON, not a stderr access log."""


class EchoUpstream:
    """A threaded HTTP/1.1 echo server on 127.0.0.1; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = ThreadingHTTPServer((host, 0), _EchoHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> EchoUpstream:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def echoed_headers(answer: dict[str, object]) -> dict[str, list[str]]:
    """The upstream's headers from an echo answer: lower-case name -> every value, in order."""
    headers = answer["headers"]
    assert isinstance(headers, list)
    result: dict[str, list[str]] = {}
    for name, value in headers:
        result.setdefault(str(name).lower(), []).append(str(value))
    return result


# --- certificates --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IdentityFiles:
    """A client identity on disk: the chain (leaf first), the key, maybe its passphrase."""

    cert: Path
    key: Path
    passphrase: str | None = None


def write_identity(
    identity: Identity, directory: Path, stem: str, *, passphrase: str | None = None
) -> IdentityFiles:
    """``STEM.pem`` (leaf and intermediates) and ``STEM.key.pem`` (encrypted if a passphrase)."""
    cert = directory / f"{stem}.pem"
    key = directory / f"{stem}.key.pem"
    cert.write_bytes(identity.chain_pem)
    key.write_bytes(identity.key_pem(passphrase.encode() if passphrase else None))
    key.chmod(0o600)
    return IdentityFiles(cert=cert, key=key, passphrase=passphrase)


def expired_identity(ca: TestCA, common_name: str) -> Identity:
    """A client certificate valid for 30 days that ended 10 days ago."""
    return ca.issue(
        common_name, now=datetime.now(UTC) - timedelta(days=40), validity=timedelta(days=30)
    )


def wrong_eku_identity(ca: TestCA, common_name: str) -> Identity:
    """A current certificate whose extended key usage is serverAuth only (no clientAuth)."""
    return ca.issue(common_name, profile=Profile.SERVER, sans=[f"DNS:{common_name}"])


def write_csr(
    directory: Path, stem: str, common_name: str, *, passphrase: str | None = None
) -> tuple[Path, Path]:
    """A new EC P-256 key (``STEM.key.pem``, encrypted if a passphrase) and its CSR
    (``STEM.csr``) with the name as CN and DNS SAN; in process, as `mutls csr new` would."""
    key = generate_key(KeySpec.EC_P256)
    csr = build_csr(key, SubjectSpec(common_name=common_name), [parse_san(f"DNS:{common_name}")])
    csr_file, key_file = directory / f"{stem}.csr", directory / f"{stem}.key.pem"
    csr_file.write_bytes(csr.public_bytes(Encoding.PEM))
    key_file.write_bytes(private_key_pem(key, passphrase.encode() if passphrase else None))
    key_file.chmod(0o600)
    return csr_file, key_file


def certificate_der(pem_file: Path) -> bytes:
    """DER of the first certificate in a PEM file (the leaf of a chain file)."""
    return x509.load_pem_x509_certificate(pem_file.read_bytes()).public_bytes(Encoding.DER)


def rfc9440(der: bytes) -> str:
    """A certificate as an RFC 9440 ``Client-Cert`` value: an RFC 8941 byte sequence."""
    return f":{base64.b64encode(der).decode('ascii')}:"
