"""MtlsAdapter (requests) and MtlsTransport (httpx, sync and async) against a real server that
requires a client certificate: every format succeeds, and every way it can fail says why."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
import requests
from urllib3.exceptions import InsecureRequestWarning

from mutls.client import (
    AsyncMtlsTransport,
    ClientTls,
    InsecureTlsWarning,
    MtlsAdapter,
    MtlsTransport,
    client_tls,
    mtls_session,
    mtls_transport,
)
from mutls.client import httpx_transports as hx
from mutls.client import requests_adapters as rq
from mutls.errors import MutlsError
from tests.loopback.client.conftest import PASSPHRASE, Files, Pki, TlsServer, write_files

# How each format is handed over: (cert, key, passphrase) from the files.
FORMATS: dict[str, Callable[[Files], tuple[Any, Any, str | None]]] = {
    "separate PEM files": lambda f: (f.chain, f.key, None),
    "path strings": lambda f: (str(f.chain), str(f.key), None),
    "combined PEM": lambda f: (f.combined, None, None),
    "PKCS#12 with passphrase": lambda f: (f.p12, None, PASSPHRASE),
    "encrypted PKCS#8 with passphrase": lambda f: (f.chain, f.encrypted_key, PASSPHRASE),
    "legacy encrypted PEM with passphrase": lambda f: (f.chain, f.legacy_key, PASSPHRASE),
    "bytes instead of paths": lambda f: (
        f.chain.read_bytes(),
        f.encrypted_key.read_bytes(),
        PASSPHRASE,
    ),
    "PEM text in a str": lambda f: (f.combined.read_text(), None, None),
}
CN = "client.partner.example"


def _get_requests(server: TlsServer, tls: ClientTls) -> dict[str, Any]:
    with requests.Session() as session:
        session.mount(server.url + "/", MtlsAdapter(tls=tls))
        response = session.get(server.url + "/hello?x=1", timeout=10)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def _get_httpx(server: TlsServer, tls: ClientTls) -> dict[str, Any]:
    with httpx.Client(transport=mtls_transport(tls=tls), timeout=10) as client:
        response = client.get(server.url + "/hello?x=1")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def _get_httpx_async(server: TlsServer, tls: ClientTls) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        transport = AsyncMtlsTransport(tls=tls)
        async with httpx.AsyncClient(transport=transport, timeout=10) as client:
            response = await client.get(server.url + "/hello?x=1")
        assert response.status_code == 200
        result: dict[str, Any] = response.json()
        return result

    return asyncio.run(main())


CLIENTS = {"requests": _get_requests, "httpx": _get_httpx, "httpx async": _get_httpx_async}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reaches_the_server_with_its_certificate(
    mtls_server: TlsServer, files: Files, fmt: str, client: str
) -> None:
    """The server saw our certificate, whatever form it came in and whichever library sent it."""
    cert, key, passphrase = FORMATS[fmt](files)
    tls = client_tls(cert, key, passphrase=passphrase, ca=files.ca)
    assert CLIENTS[client](mtls_server, tls) == {
        "subject": CN,
        "method": "GET",
        "path": "/hello?x=1",
        "body": "",
    }


def test_the_adapter_takes_files_directly_and_mounts_on_a_prefix(
    mtls_server: TlsServer, files: Files
) -> None:
    """The one-import promise: mount, then use the session as usual (POST body included)."""
    with requests.Session() as session:
        adapter = MtlsAdapter(files.chain, files.encrypted_key, passphrase=PASSPHRASE, ca=files.ca)
        session.mount(mtls_server.url + "/", adapter)
        response = session.post(mtls_server.url + "/orders", json={"n": 1}, timeout=10)
    assert response.json()["subject"] == CN
    assert response.json()["body"] == '{"n": 1}'


def test_mtls_session_presents_the_certificate_to_every_https_url(
    mtls_server: TlsServer, files: Files
) -> None:
    with mtls_session(files.p12, passphrase=PASSPHRASE, ca=files.ca) as session:
        response = session.get(mtls_server.url + "/", timeout=10)
    assert response.json()["subject"] == CN


def test_partner_error_answers_pass_through_untouched(mtls_server: TlsServer, files: Files) -> None:
    """A 503 from the server is an HTTP answer, not an exception."""
    with mtls_session(files.combined, ca=files.ca) as session:
        response = session.get(mtls_server.url + "/unavailable", timeout=10)
    assert response.status_code == 503
    with httpx.Client(transport=MtlsTransport(files.combined, ca=files.ca)) as client:
        assert client.get(mtls_server.url + "/unavailable").status_code == 503


# --- rejection twins: at configuration time -----------------------------------------------------


@pytest.mark.parametrize(
    "factory",
    [
        lambda f, pw: MtlsAdapter(f.chain, f.encrypted_key, passphrase=pw, ca=f.ca),
        lambda f, pw: MtlsTransport(f.p12, passphrase=pw, ca=f.ca),
        lambda f, pw: AsyncMtlsTransport(f.chain, f.legacy_key, passphrase=pw, ca=f.ca),
    ],
    ids=["requests", "httpx", "httpx async"],
)
def test_a_wrong_passphrase_is_wrong_passphrase(
    files: Files, factory: Callable[[Files, str], object]
) -> None:
    """Even when the identity's context is already cached, the key is decrypted again."""
    client_tls(files.chain, files.key, ca=files.ca)  # cache the context for this identity
    with pytest.raises(MutlsError) as caught:
        factory(files, "not the passphrase")
    assert caught.value.code == "wrong_passphrase"
    assert "not the passphrase" not in str(caught.value)


def test_a_missing_passphrase_is_passphrase_required(files: Files) -> None:
    with pytest.raises(MutlsError) as caught:
        MtlsAdapter(files.chain, files.encrypted_key, ca=files.ca)
    assert caught.value.code == "passphrase_required"


def test_the_key_of_another_certificate_is_key_mismatch(
    files: Files, pki: Pki, tmp_path: Path
) -> None:
    other = write_files(tmp_path / "other", pki.ca.issue("other.example"), pki.ca)
    for factory in (MtlsAdapter, MtlsTransport, AsyncMtlsTransport):
        with pytest.raises(MutlsError) as caught:
            factory(files.chain, other.key, ca=files.ca)
        assert caught.value.code == "key_mismatch"


def test_a_missing_file_is_file_unreadable(files: Files, tmp_path: Path) -> None:
    with pytest.raises(MutlsError) as caught:
        MtlsAdapter(tmp_path / "nope.pem", files.key)
    assert caught.value.code == "file_unreadable"
    assert "nope.pem" in caught.value.message


def test_a_certificate_without_key_is_missing_private_key(files: Files) -> None:
    with pytest.raises(MutlsError) as caught:
        MtlsTransport(files.chain, ca=files.ca)
    assert caught.value.code == "missing_private_key"


def test_an_expired_certificate_is_refused_before_any_connection(pki: Pki, tmp_path: Path) -> None:
    long_ago = pki.ca.now - timedelta(days=30)
    expired = pki.ca.issue("expired.example", now=long_ago, validity=timedelta(days=1))
    old = write_files(tmp_path / "expired", expired, pki.ca)
    with pytest.raises(MutlsError) as caught:
        MtlsAdapter(old.combined, ca=old.ca)
    assert caught.value.code == "certificate_expired"


def test_a_bad_ca_bundle_is_refused(files: Files) -> None:
    """A bundle that holds a private key is not a CA bundle."""
    with pytest.raises(MutlsError) as caught:
        MtlsAdapter(files.combined, ca=files.combined)
    assert caught.value.code == "unsupported_format"


# --- rejection twins: on the wire ----------------------------------------------------------------


def test_a_server_from_an_unknown_ca_is_untrusted(
    mtls_server: TlsServer, files: Files, pki: Pki, tmp_path: Path
) -> None:
    """requests: still an SSLError for requests' users, and a mutls error with a hint."""
    stranger_root = tmp_path / "stranger-root.pem"
    stranger_root.write_bytes(pki.stranger_ca.root_pem)
    with requests.Session() as session:
        session.mount("https://", MtlsAdapter(files.combined, ca=stranger_root))
        with pytest.raises(rq.ServerCertificateUntrusted) as caught:
            session.get(mtls_server.url + "/", timeout=10)
    error = caught.value
    assert isinstance(error, requests.exceptions.SSLError)
    assert error.code == "partner_certificate_untrusted"
    assert "127.0.0.1" in error.message
    assert "Stranger CA" in error.message  # what it was checked against
    assert "unable to get local issuer certificate" in error.message
    assert "ca=" in error.hint


@pytest.mark.parametrize("asynchronous", [False, True], ids=["httpx", "httpx async"])
def test_httpx_names_an_untrusted_server_too(
    mtls_server: TlsServer, files: Files, asynchronous: bool
) -> None:
    """Without ca= the system store is used, which does not know the test CA."""

    async def run_async() -> None:
        async with httpx.AsyncClient(transport=AsyncMtlsTransport(files.combined)) as client:
            await client.get(mtls_server.url + "/")

    def run_sync() -> None:
        with httpx.Client(transport=MtlsTransport(files.combined)) as client:
            client.get(mtls_server.url + "/")

    with pytest.raises(hx.ServerCertificateUntrusted) as caught:
        asyncio.run(run_async()) if asynchronous else run_sync()
    assert isinstance(caught.value, httpx.ConnectError)
    assert caught.value.code == "partner_certificate_untrusted"
    assert "system CAs" in caught.value.message


def test_without_a_client_certificate_the_server_refuses(
    mtls_server: TlsServer, files: Files
) -> None:
    """The twin of every success above: the same server, plain requests and httpx, no cert."""
    before = len(mtls_server.failures)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(mtls_server.url + "/", verify=str(files.ca), timeout=10)
    with httpx.Client(verify=_verify_only(files.ca)) as client, pytest.raises(httpx.TransportError):
        client.get(mtls_server.url + "/")
    assert len(mtls_server.failures) >= before + 2
    assert all("CERTIFICATE" in f.upper() for f in mtls_server.failures[before:])


def _verify_only(ca: Path) -> Any:
    import ssl

    return ssl.create_default_context(cafile=str(ca))


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_a_certificate_the_server_does_not_trust_is_rejected(
    mtls_server: TlsServer, pki: Pki, tmp_path: Path, client: str
) -> None:
    """A client certificate from another CA: the server's TLS alert, named."""
    stranger = write_files(tmp_path / "stranger", pki.stranger, pki.ca)
    error: MutlsError
    if client == "requests":
        with requests.Session() as session:
            session.mount("https://", MtlsAdapter(stranger.combined, ca=stranger.ca))
            with pytest.raises(rq.ClientCertificateRejected) as caught_rq:
                session.get(mtls_server.url + "/", timeout=10)
        error = caught_rq.value
    else:
        transport = MtlsTransport(stranger.combined, ca=stranger.ca)
        with (
            httpx.Client(transport=transport) as http,
            pytest.raises(hx.ClientCertificateRejected) as caught_hx,
        ):
            http.get(mtls_server.url + "/")
        error = caught_hx.value
    assert error.code == "partner_rejected_certificate"
    assert "stranger.example" in error.message
    assert "unknown CA" in error.message


def test_verify_false_warns_loudly_and_still_presents_the_certificate(
    mtls_server: TlsServer, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = write_files(tmp_path / "insecure", pki.ca.issue(CN), pki.ca)
    with pytest.warns(InsecureTlsWarning, match="NOT checked") as warned:
        adapter = MtlsAdapter(fresh.combined, verify=False)
    assert warned[0].filename == __file__  # it points at the line that asked for it
    assert "NOT checked" in caplog.text
    assert adapter.tls.trust == "NOT VERIFIED"
    with requests.Session() as session:
        session.mount("https://", adapter)
        with pytest.warns(InsecureRequestWarning):  # urllib3 warns on every request, too
            response = session.get(mtls_server.url + "/", timeout=10)
    assert response.json()["subject"] == CN


def test_verify_false_with_a_ca_bundle_is_contradictory(files: Files) -> None:
    with pytest.raises(MutlsError) as caught:
        MtlsAdapter(files.combined, ca=files.ca, verify=False)
    assert caught.value.code == "invalid_argument"


def test_the_adapter_owns_tls_so_request_cert_and_verify_false_are_refused(
    mtls_server: TlsServer, files: Files
) -> None:
    """A request's cert= or verify=False would change the shared context for everyone."""
    with requests.Session() as session:
        adapter = MtlsAdapter(files.combined, ca=files.ca)
        session.mount("https://", adapter)
        with pytest.raises(MutlsError, match="cert="):
            session.get(mtls_server.url + "/", cert=str(files.combined), timeout=10)
        with pytest.raises(MutlsError, match="verify=False"):
            session.get(mtls_server.url + "/", verify=False, timeout=10)
        # A CA bundle path (as REQUESTS_CA_BUNDLE would give) does not widen the trust:
        response = session.get(mtls_server.url + "/", verify=certifi.where(), timeout=10)
        assert response.json()["subject"] == CN
    assert adapter.ssl_context.cert_store_stats()["x509_ca"] == 1  # the test root only


def test_tls_and_files_together_are_refused(files: Files) -> None:
    tls = client_tls(files.combined, ca=files.ca)
    with pytest.raises(MutlsError) as caught:
        MtlsAdapter(files.combined, tls=tls)
    assert caught.value.code == "invalid_argument"
    with pytest.raises(MutlsError, match="expected a client certificate"):
        MtlsTransport()


def test_reprs_name_the_certificate_never_the_key(files: Files) -> None:
    adapter = MtlsAdapter(files.combined, ca=files.ca)
    transport = MtlsTransport(files.combined, ca=files.ca)
    key_line = files.key.read_text().splitlines()[1]
    for shown in (repr(adapter), repr(transport), repr(adapter.tls)):
        assert CN in shown
        assert key_line not in shown
    adapter.close()
    transport.close()
