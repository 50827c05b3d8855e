"""The OCSP core against the openssl client: its requests parse, our responses verify.

Files go to a temporary directory; `openssl ocsp` makes real requests and checks real responses,
first from files (-reqout / -respin), then over HTTP from a small stdlib responder on 127.0.0.1
that answers POST and GET with nothing but mutls.pki.ocsp.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from mutls.errors import UnsupportedFormat
from mutls.pki.authority import RevocationReason
from mutls.pki.keys import SigningKey
from mutls.pki.ocsp import (
    MAX_REQUEST_BYTES,
    CertIdHash,
    CertificateStatus,
    CertStatus,
    FailureStatus,
    OcspQuery,
    build_ocsp_signer,
    build_response,
    error_response,
    matches_issuer,
    parse_request,
    request_from_http_get,
)
from mutls.testing import Identity, TestCA

pytestmark = pytest.mark.openssl

HOUR = timedelta(hours=1)
# Neither openssl nor urllib may send loopback traffic to a proxy from the environment.
ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


@pytest.fixture(scope="module")
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("the openssl command is required for interop tests (make install adds it)")
    return path


@dataclass(frozen=True, kw_only=True)
class Pki:
    """A CA with an issuing intermediate, one leaf, the OCSP signer, and their PEM files."""

    directory: Path
    ca: TestCA
    leaf: Identity
    signer: x509.Certificate
    signer_key: SigningKey
    stranger: x509.Certificate  # the OCSP signer of an unrelated CA
    stranger_key: SigningKey


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("ocsp")
    now = datetime.now(UTC)
    ca = TestCA(name="OCSP Interop Root", now=now)
    leaf = ca.issue("client.example.com", now=now)
    signer, signer_key = build_ocsp_signer(issuer=ca.issuer, issuer_key=ca.issuer_key, now=now)
    other = TestCA(name="Unrelated Root", organization="Elsewhere", now=now)
    other_leaf = other.issue("client.example.com", now=now)
    stranger, stranger_key = build_ocsp_signer(
        issuer=other.issuer, issuer_key=other.issuer_key, now=now
    )
    files = {
        "root.pem": ca.root_pem,
        "issuer.pem": _pem(ca.issuer),
        "leaf.pem": leaf.cert_pem,
        "signer.pem": _pem(signer),
        "other-issuer.pem": _pem(other.issuer),
        "other-leaf.pem": other_leaf.cert_pem,
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return Pki(
        directory=directory,
        ca=ca,
        leaf=leaf,
        signer=signer,
        signer_key=signer_key,
        stranger=stranger,
        stranger_key=stranger_key,
    )


def _ocsp(openssl: str, pki: Pki, *args: str) -> tuple[int, str]:
    """Run `openssl ocsp ARGS` in the PKI directory; (exit status, stdout and stderr together)."""
    done = subprocess.run(
        [openssl, "ocsp", *args],
        cwd=pki.directory,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _revoked(serial: int, revoked_at: datetime) -> CertificateStatus:
    return CertificateStatus(
        serial=serial,
        status=CertStatus.REVOKED,
        revoked_at=revoked_at,
        reason=RevocationReason.KEY_COMPROMISE,
    )


def _respond(
    pki: Pki,
    status: CertificateStatus,
    *,
    nonce: bytes | None = None,
    cert_id_hash: CertIdHash = CertIdHash.SHA1,
) -> bytes:
    now = datetime.now(UTC)
    return build_response(
        issuer=pki.ca.issuer,
        signer_cert=pki.signer,
        signer_key=pki.signer_key,
        certificate_serial_status=status,
        this_update=now,
        next_update=now + HOUR,
        nonce=nonce,
        cert_id_hash=cert_id_hash,
    )


def _forged(pki: Pki, query: OcspQuery) -> bytes:
    """A well-formed "good" for the right CertID, signed by the OCSP signer of an unrelated CA.

    build_response refuses to make this, so it is built with cryptography directly.
    """
    now = datetime.now(UTC)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            query.issuer_name_hash,
            query.issuer_key_hash,
            query.serial,
            query.hash_algorithm.algorithm(),
            ocsp.OCSPCertStatus.GOOD,
            now,
            now + HOUR,
            None,
            None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, pki.stranger)
        .certificates([pki.stranger])
    )
    if query.nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(query.nonce), critical=False)
    return builder.sign(pki.stranger_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _request_der(openssl: str, pki: Pki, *args: str) -> bytes:
    code, output = _ocsp(openssl, pki, "-issuer", "issuer.pem", *args, "-reqout", "req.der")
    assert code == 0, output
    return (pki.directory / "req.der").read_bytes()


# --- files: -reqout and -respin ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digest", "expected"), [("-sha1", CertIdHash.SHA1), ("-sha256", CertIdHash.SHA256)]
)
def test_openssl_request_parses(openssl: str, pki: Pki, digest: str, expected: CertIdHash) -> None:
    """`openssl ocsp -reqout` parses to the leaf's serial, our issuer and openssl's own nonce."""
    code, text = _ocsp(
        openssl, pki, "-issuer", "issuer.pem", digest, "-cert", "leaf.pem", "-reqout", "req.der",
        "-req_text",
    )  # fmt: skip
    assert code == 0, text
    query = parse_request((pki.directory / "req.der").read_bytes())
    assert query.serial == pki.leaf.certificate.serial_number
    assert query.hash_algorithm is expected
    assert matches_issuer(query, pki.ca.issuer)
    assert not matches_issuer(query, pki.ca.root)
    # -req_text prints the nonce extension's value: OCTET STRING (04 10) and 16 random bytes.
    lines = text.splitlines()
    printed = lines[[line.strip() for line in lines].index("OCSP Nonce:") + 1].strip()
    assert query.nonce is not None
    assert printed == "0410" + query.nonce.hex().upper()


def test_openssl_request_for_two_certificates_is_refused(openssl: str, pki: Pki) -> None:
    """A request listing two certificates is refused with a clear error, not half-answered."""
    der = _request_der(openssl, pki, "-cert", "leaf.pem", "-serial", "0x1234")
    with pytest.raises(UnsupportedFormat, match="exactly one certificate"):
        parse_request(der)


def test_respin_good_then_revoked(openssl: str, pki: Pki) -> None:
    """openssl verifies our responses and reads `good`, then `revoked` with the reason."""
    serial = pki.leaf.certificate.serial_number
    respin = ["-respin", "resp.der", "-issuer", "issuer.pem", "-cert", "leaf.pem"]
    check = [*respin, "-CAfile", "root.pem", "-no_nonce", "-resp_text"]
    (pki.directory / "resp.der").write_bytes(
        _respond(pki, CertificateStatus(serial=serial, status=CertStatus.GOOD))
    )
    code, output = _ocsp(openssl, pki, *check)
    assert code == 0, output
    assert "OCSP Response Status: successful (0x0)" in output
    assert "leaf.pem: good" in output
    assert "Response verify OK" in output
    assert "OCSP Interop Root Issuing CA OCSP Responder" in output  # the included signer

    (pki.directory / "resp.der").write_bytes(
        _respond(pki, _revoked(serial, datetime.now(UTC) - HOUR))
    )
    code, output = _ocsp(openssl, pki, *check)
    assert code == 0, output
    assert "leaf.pem: revoked" in output
    assert "Reason: keyCompromise" in output
    assert "Revocation Time:" in output
    assert "Response verify OK" in output


def test_respin_unknown(openssl: str, pki: Pki) -> None:
    """A serial the responder does not know is reported as `unknown`, in a verified response."""
    serial = pki.leaf.certificate.serial_number
    (pki.directory / "resp.der").write_bytes(
        _respond(pki, CertificateStatus(serial=serial, status=CertStatus.UNKNOWN))
    )
    code, output = _ocsp(
        openssl, pki, "-respin", "resp.der", "-issuer", "issuer.pem", "-cert", "leaf.pem",
        "-CAfile", "root.pem", "-no_nonce",
    )  # fmt: skip
    assert code == 0, output
    assert "leaf.pem: unknown" in output
    assert "Response verify OK" in output


def test_respin_with_signer_as_vafile(openssl: str, pki: Pki) -> None:
    """Trusting the signer directly (-VAfile) also verifies, as a pinned responder would."""
    serial = pki.leaf.certificate.serial_number
    (pki.directory / "resp.der").write_bytes(
        _respond(pki, CertificateStatus(serial=serial, status=CertStatus.GOOD))
    )
    code, output = _ocsp(
        openssl, pki, "-respin", "resp.der", "-issuer", "issuer.pem", "-cert", "leaf.pem",
        "-VAfile", "signer.pem", "-no_nonce",
    )  # fmt: skip
    assert code == 0, output
    assert "leaf.pem: good" in output
    assert "Response verify OK" in output


def test_respin_signed_by_unrelated_signer_fails(openssl: str, pki: Pki) -> None:
    """Rejection twin: the same answer signed by another CA's OCSP signer fails verification."""
    query = parse_request(_request_der(openssl, pki, "-cert", "leaf.pem"))
    (pki.directory / "resp.der").write_bytes(_forged(pki, query))
    code, output = _ocsp(
        openssl, pki, "-respin", "resp.der", "-issuer", "issuer.pem", "-cert", "leaf.pem",
        "-CAfile", "root.pem", "-no_nonce",
    )  # fmt: skip
    assert code != 0, output
    assert "Response Verify Failure" in output
    assert "Response verify OK" not in output


def test_respin_cert_id_hash_must_match(openssl: str, pki: Pki) -> None:
    """A SHA-256 CertID is found only in a response answered with SHA-256 (clients match it)."""
    serial = pki.leaf.certificate.serial_number
    good = CertificateStatus(serial=serial, status=CertStatus.GOOD)
    check = [
        "-respin", "resp.der", "-issuer", "issuer.pem", "-sha256", "-cert", "leaf.pem",
        "-CAfile", "root.pem", "-no_nonce",
    ]  # fmt: skip
    (pki.directory / "resp.der").write_bytes(_respond(pki, good, cert_id_hash=CertIdHash.SHA256))
    code, output = _ocsp(openssl, pki, *check)
    assert code == 0, output
    assert "leaf.pem: good" in output
    (pki.directory / "resp.der").write_bytes(_respond(pki, good, cert_id_hash=CertIdHash.SHA1))
    _, output = _ocsp(openssl, pki, *check)
    assert "leaf.pem: good" not in output
    assert "No Status found" in output


# --- HTTP: a responder on 127.0.0.1 --------------------------------------------------------------


@dataclass(kw_only=True)
class Responder:
    """The state behind the test responder: what is revoked, and whether to answer as a forger."""

    pki: Pki
    revoked: dict[int, datetime] = field(default_factory=dict)
    forge: bool = False
    methods: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, der: bytes) -> bytes:
        with self.lock:
            self.methods.append(method)
        try:
            query = parse_request(der)
        except UnsupportedFormat:
            return error_response(FailureStatus.MALFORMED_REQUEST)
        if not matches_issuer(query, self.pki.ca.issuer):
            return error_response(FailureStatus.UNAUTHORIZED)
        if self.forge:
            return _forged(self.pki, query)
        with self.lock:
            revoked_at = self.revoked.get(query.serial)
        if query.serial != self.pki.leaf.certificate.serial_number:
            status = CertificateStatus(serial=query.serial, status=CertStatus.UNKNOWN)
        elif revoked_at is not None:
            status = _revoked(query.serial, revoked_at)
        else:
            status = CertificateStatus(serial=query.serial, status=CertStatus.GOOD)
        return _respond(self.pki, status, nonce=query.nonce, cert_id_hash=query.hash_algorithm)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    responder: Responder


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get_content_type() != "application/ocsp-request" or not (
            0 < length <= MAX_REQUEST_BYTES
        ):
            self._send(error_response(FailureStatus.MALFORMED_REQUEST))
            return
        self._send(self.server.responder.answer("POST", self.rfile.read(length)))

    def do_GET(self) -> None:
        try:
            der = request_from_http_get(self.path)
        except UnsupportedFormat:
            self._send(error_response(FailureStatus.MALFORMED_REQUEST))
            return
        self._send(self.server.responder.answer("GET", der))

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read what openssl prints."""


@pytest.fixture
def responder(pki: Pki) -> Iterator[tuple[Responder, str]]:
    """A running responder and its URL; stopped and joined after the test."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.responder = Responder(pki=pki)
    thread = threading.Thread(target=server.serve_forever, name="ocsp-responder")
    thread.start()
    try:
        yield server.responder, f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _http(url: str, data: bytes | None = None) -> tuple[str, bytes]:
    """(Content-Type, body) of a GET, or of a POST when ``data`` is given; no proxies."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=data)
    if data is not None:
        request.add_header("Content-Type", "application/ocsp-request")
    with opener.open(request, timeout=10) as answer:
        return answer.headers.get_content_type(), answer.read()


def test_http_good_then_revoked(openssl: str, pki: Pki, responder: tuple[Responder, str]) -> None:
    """`openssl ocsp -url` gets a verified `good`, then `revoked` once the serial is revoked."""
    state, url = responder
    ask = ["-issuer", "issuer.pem", "-cert", "leaf.pem", "-url", url, "-CAfile", "root.pem"]
    code, output = _ocsp(openssl, pki, *ask, "-timeout", "10")
    assert code == 0, output
    assert "leaf.pem: good" in output
    assert "Response verify OK" in output
    assert "WARNING: no nonce" not in output  # the live answer echoed openssl's nonce

    with state.lock:
        state.revoked[pki.leaf.certificate.serial_number] = datetime.now(UTC) - 2 * HOUR
    code, output = _ocsp(openssl, pki, *ask, "-timeout", "10")
    assert code == 0, output
    assert "leaf.pem: revoked" in output
    assert "Reason: keyCompromise" in output
    assert "Response verify OK" in output
    assert state.methods == ["POST", "POST"]


def test_http_get_with_base64_specials(
    openssl: str, pki: Pki, responder: tuple[Responder, str]
) -> None:
    """GET with the request in the URL, percent-encoded or raw, answers what openssl verifies."""
    state, url = responder
    for _ in range(50):  # the nonce is random: find a request whose base64 has '+' and '/'
        der = _request_der(openssl, pki, "-cert", "leaf.pem")
        text = base64.b64encode(der).decode()
        if "+" in text and "/" in text:
            break
    else:
        pytest.fail("no openssl request with '+' and '/' in its base64 in 50 tries")
    nonce = parse_request(der).nonce
    for path in (urllib.parse.quote(text, safe=""), text):
        content_type, body = _http(url + path)
        assert content_type == "application/ocsp-response"
        response = ocsp.load_der_ocsp_response(body)
        assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        (pki.directory / "resp.der").write_bytes(body)
        code, output = _ocsp(
            openssl, pki, "-respin", "resp.der", "-issuer", "issuer.pem", "-cert", "leaf.pem",
            "-CAfile", "root.pem", "-no_nonce",
        )  # fmt: skip
        assert code == 0, output
        assert "leaf.pem: good" in output
        assert "Response verify OK" in output
    assert state.methods == ["GET", "GET"]


def test_http_unrelated_signer_fails(
    openssl: str, pki: Pki, responder: tuple[Responder, str]
) -> None:
    """Rejection twin over HTTP: a responder signing with another CA's signer is not believed."""
    state, url = responder
    state.forge = True
    code, output = _ocsp(
        openssl, pki, "-issuer", "issuer.pem", "-cert", "leaf.pem", "-url", url,
        "-CAfile", "root.pem", "-timeout", "10",
    )  # fmt: skip
    assert code != 0, output
    assert "Response Verify Failure" in output
    assert "unable to get local issuer certificate" in output
    assert "Response verify OK" not in output  # it still prints the status: the exit code decides


def test_http_other_issuer_is_unauthorized(
    openssl: str, pki: Pki, responder: tuple[Responder, str]
) -> None:
    """A question about another CA's certificate gets `unauthorized` (RFC 5019 section 2.2.3)."""
    _, url = responder
    code, output = _ocsp(
        openssl, pki, "-issuer", "other-issuer.pem", "-cert", "other-leaf.pem", "-url", url,
        "-CAfile", "root.pem", "-timeout", "10",
    )  # fmt: skip
    assert code != 0, output
    assert "Responder Error: unauthorized (6)" in output


def test_http_malformed_requests(responder: tuple[Responder, str]) -> None:
    """Garbage by POST or GET gets an unsigned malformedRequest, not an HTTP error."""
    _, url = responder
    for content_type, body in (_http(url, b"not an ocsp request"), _http(url + "!!!")):
        assert content_type == "application/ocsp-response"
        status = ocsp.load_der_ocsp_response(body).response_status
        assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
