"""The mTLS gateway as customers reach it: curl, requests, httpx, Node, openssl s_client and Java.

One `mutls up` per module (per xdist worker) with two gateway listeners: the default one
(TLS 1.2-1.3) and a TLS 1.2-only one (seed 004). One setup made with the CLI: accounts, routes to
a local echo upstream, certificates from the platform CA and from an account's own CA. Every
acceptance test has rejection twins that check the exact HTTP status and JSON ``error.code`` the
gateway answers (policy order in ``mutls.policy.authorize``); an unknown CA fails the handshake.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding
from requests.adapters import HTTPAdapter
from urllib3.util.ssl_ import create_urllib3_context

from mutls.testing import TestCA
from tests.e2e.conftest import MUTLS
from tests.e2e.gateway_setup import (
    EchoUpstream,
    IdentityFiles,
    certificate_der,
    echoed_headers,
    expired_identity,
    free_port,
    rfc9440,
    wait_until,
    write_csr,
    write_identity,
    wrong_eku_identity,
)
from tests.e2e.test_cli_platform import Server, start_server

DATA = Path(__file__).parent / "data"
PASSPHRASE = "gateway client key passphrase 7"
P12_PASSWORD = "p12-keystore-password-3"
MIXED_HOST = "mixed.example"
NODE = shutil.which("node")
JAVA = shutil.which("java")
SSLSCAN = shutil.which("sslscan")
OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
T = TypeVar("T", bound=Callable[..., object])


# --- the platform and its setup --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Gateway:
    server: Server
    url: str
    """The default listener (TLS 1.2 and 1.3)."""
    url_tls12: str
    """The TLS 1.2-only listener."""
    ca: Path
    """The platform root CA: verifies the gateway and issued the platform certificates."""
    directory: Path
    ids: dict[str, IdentityFiles]
    serials: dict[str, str]
    p12: dict[str, Path]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def port_tls12(self) -> int:
        return int(self.url_tls12.rsplit(":", 1)[1])


def _mutls(server: Server, cwd: Path, *args: str) -> dict[str, Any]:
    """``mutls ARGS --json`` against the server as its admin; the JSON answer (it must succeed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTLS_")}
    env.update(server.env())
    proc = subprocess.run(
        [str(MUTLS), *args, "--json"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"mutls {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    answer = json.loads(proc.stdout)
    assert isinstance(answer, dict)
    return answer


def _parallel(*calls: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Independent CLI runs at once (each is a fresh Python process: start-up dominates)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(*call) for call in calls]
        return [f.result() for f in futures]


# Platform certificates: stem -> (account, extra `cert issue` options, encrypted key).
_PLATFORM_CERTS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "acme": ("acme", (), False),
    "acme-enc": ("acme", (), True),
    "acme-v1": ("acme", ("--api-version", "v1"), False),
    "acme-v2": ("acme", ("--api-version", "v2"), False),
    "revoke-curl": ("acme", (), False),
    "revoke-requests": ("acme", (), False),
    "other": ("other", (), False),
    "ipbound": ("ipbound", (), False),
    "dormant": ("dormant", (), False),
}
_ACCOUNTS = ("acme", "other", "ipbound", "dormant")


def _setup(server: Server, directory: Path, upstream: str) -> tuple[dict[str, str], Path]:
    """Accounts, routes and platform certificates through the CLI; serials by stem."""
    m = _mutls
    (directory / "pass.txt").write_text(PASSPHRASE + "\n")
    server.remember(PASSPHRASE)
    # The encrypted key and its CSR as a customer makes them; the rest in process (no server).
    enc = ["csr", "new", "--cn", "acme-enc.clients.example", "--out", "acme-enc.csr"]
    enc += ["--key-out", "acme-enc.key.pem", "--encrypt-key", "--out-passphrase-file", "pass.txt"]
    _parallel(
        *[(m, server, directory, "account", "create", name) for name in _ACCOUNTS],
        (m, server, directory, *enc),
    )
    for stem in _PLATFORM_CERTS:
        if stem != "acme-enc":
            write_csr(directory, stem, f"{stem}.clients.example")

    own_ca = directory / "acme-own-ca.pem"
    route = (m, server, directory, "route", "add")
    _parallel(
        (m, server, directory, "account", "mtls", "acme", "--enable", "--quota", "20"),
        (m, server, directory, "account", "mtls", "other", "--enable"),
        (m, server, directory, "account", "mtls", "dormant", "--enable"),
        (
            m,
            server,
            directory,
            "account",
            "mtls",
            "ipbound",
            "--enable",
            "--allow-ip",
            "127.0.0.1/32",
        ),
        (m, server, directory, "account", "ca", "add", "acme", "--chain", own_ca.name),
        (*route, "echo", "--upstream", upstream, "--prefix", "/api"),
        (*route, "svc-v2", "--upstream", upstream, "--prefix", "/svc", "--api-version", "v2"),
        (*route, "partner", "--upstream", upstream, "--prefix", "/partner", "--account", "other"),
        (*route, "basic", "--upstream", upstream, "--prefix", "/basic", "--authorization", "basic"),
        (
            *route,
            "public",
            "--upstream",
            upstream,
            "--host",
            MIXED_HOST,
            "--prefix",
            "/public",
            "--mtls",
            "off",
        ),
        (*route, "private", "--upstream", upstream, "--host", MIXED_HOST, "--prefix", "/private"),
    )
    issued = _parallel(
        *[
            (
                m,
                server,
                directory,
                "cert",
                "issue",
                account,
                "--csr",
                f"{stem}.csr",
                "--out",
                f"{stem}.pem",
                "--ca-out",
                f"ca-{stem}.pem",
                *options,
            )
            for stem, (account, options, _) in _PLATFORM_CERTS.items()
        ]
    )
    for stem in _PLATFORM_CERTS:
        server.remember((directory / f"{stem}.key.pem").read_bytes())
    (directory / "p12pass.txt").write_text(P12_PASSWORD + "\n")
    _parallel(
        (m, server, directory, "account", "mtls", "dormant", "--disable"),
        *[
            (
                m,
                server,
                directory,
                "cert",
                "convert",
                f"{stem}.pem",
                "--key",
                f"{stem}.key.pem",
                "--to",
                "p12",
                "--out",
                f"{stem}.p12",
                "--out-passphrase-file",
                "p12pass.txt",
            )
            for stem in ("acme", "acme-v1")
        ],
    )
    serials = {
        stem: str(answer["serial"]) for stem, answer in zip(_PLATFORM_CERTS, issued, strict=True)
    }
    return serials, directory / "ca-acme.pem"


@pytest.fixture(scope="module")
def upstream() -> Iterator[EchoUpstream]:
    with EchoUpstream() as echo:
        yield echo


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: EchoUpstream) -> Iterator[Gateway]:
    """One platform with a default and a TLS 1.2-only gateway listener, set up for every client."""
    base = tmp_path_factory.mktemp("gateway")
    p1, p2 = free_port(), free_port()
    server = start_server(
        base / "platform",
        extra_env={"MUTLS_GATEWAY_LISTEN": f"127.0.0.1:{p1},127.0.0.1:{p2}?tls=1.2"},
    )
    server.gateway_url = f"https://127.0.0.1:{p1}"
    try:
        directory = base / "clients"
        directory.mkdir()
        own = TestCA(name="Acme Own CA", organization="Acme")
        (directory / "acme-own-ca.pem").write_bytes(
            own.root_pem + b"".join(c.public_bytes(Encoding.PEM) for c in own.intermediates)
        )
        stranger = TestCA(name="Never Registered CA", organization="Stranger")
        ids = {
            "expired": write_identity(
                expired_identity(own, "old.acme.example"), directory, "expired"
            ),
            "wrong-eku": write_identity(
                wrong_eku_identity(own, "srv.acme.example"), directory, "wrong-eku"
            ),
            "own": write_identity(own.issue("own.acme.example"), directory, "own"),
            "stranger": write_identity(stranger.issue("x.stranger.example"), directory, "stranger"),
        }
        for files in ids.values():
            server.remember(files.key.read_bytes())
        serials, ca = _setup(server, directory, upstream.url)
        for stem, (_, _, encrypted) in _PLATFORM_CERTS.items():
            ids[stem] = IdentityFiles(
                cert=directory / f"{stem}.pem",
                key=directory / f"{stem}.key.pem",
                passphrase=PASSPHRASE if encrypted else None,
            )
        gw = Gateway(
            server=server,
            url=server.gateway_url,
            url_tls12=f"https://127.0.0.1:{p2}",
            ca=ca,
            directory=directory,
            ids=ids,
            serials=serials,
            p12={stem: directory / f"{stem}.p12" for stem in ("acme", "acme-v1")},
        )
        _wait_for_setup(gw)
        yield gw
    finally:
        code = server.stop()
    assert code == 0, f"mutls up exited with {code} on Ctrl-C"
    assert server.leaked() == [], f"secret values in the server's debug log {server.log}"


def _wait_for_setup(gw: Gateway) -> None:
    """The gateway polls the store: wait until it serves the last changes of the setup."""

    def applied() -> bool:
        return (
            _httpx_get(gw, "/mutls/whoami", "acme").status == 200
            and _httpx_get(gw, "/api/x", "dormant").code == "account_mtls_disabled"
            and _httpx_get(gw, "/api/x", "own").status == 200  # the account CA is trusted
            and _httpx_get(gw, "/partner/x", "other").status == 200
            and _httpx_get(gw, "/public/x", None, headers={"Host": MIXED_HOST}).status == 200
            and _httpx_get(gw, "/basic/x", "acme").code == "authorization_required"
        )

    wait_until(applied, 10, interval=0.1, what="the gateway serves the setup")


# --- clients -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, or ``status == 0`` and ``error`` when no HTTP answer came (TLS failure)."""

    status: int
    body: str = ""
    error: str = ""

    def json(self) -> dict[str, Any]:
        data = json.loads(self.body)
        assert isinstance(data, dict), self.body
        return data

    @property
    def code(self) -> str | None:
        """``error.code`` of a gateway refusal, None for anything else."""
        if self.status < 400:
            return None
        try:
            error = self.json().get("error")
        except ValueError:
            return None
        return error.get("code") if isinstance(error, dict) else None

    @property
    def message(self) -> str:
        return str(self.json()["error"]["message"])


def _must(answer: Answer, status: int, code: str | None = None) -> Answer:
    assert answer.status == status, answer
    if code is not None:
        assert answer.code == code, answer
    return answer


def curl(
    gw: Gateway,
    path: str,
    who: str | None = None,
    *,
    host: str | None = None,
    headers: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
    url: str | None = None,
) -> Answer:
    """``curl`` as seed 000 shows it: ``--cert C --key K --cacert CA``; ``C:PASS`` if encrypted."""
    assert CURL is not None
    command = [CURL, "-sS", "--max-time", "10", "--cacert", str(gw.ca), "-w", "\n%{http_code}"]
    if who is not None:
        files = gw.ids[who]
        cert = f"{files.cert}:{files.passphrase}" if files.passphrase else str(files.cert)
        command += ["--cert", cert, "--key", str(files.key)]
    if host is not None:
        command += ["-H", f"Host: {host}"]
    for header in headers:
        command += ["-H", header]
    command += [*options, (url or gw.url) + path]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    body, _, status = proc.stdout.rpartition("\n")
    if proc.returncode != 0:
        return Answer(0, body, f"curl exit {proc.returncode}: {proc.stderr.strip()}")
    return Answer(int(status), body)


def node(gw: Gateway, path: str, who: str | None = None, **extra: Any) -> Answer:
    """Node's ``https.request`` with ``cert``, ``key``, ``passphrase`` and ``ca`` (seed 003)."""
    assert NODE is not None
    options: dict[str, Any] = {"url": gw.url + path, "ca": str(gw.ca), **extra}
    if who is not None:
        files = gw.ids[who]
        options |= {"cert": str(files.cert), "key": str(files.key)}
        if files.passphrase:
            options["passphrase"] = files.passphrase
    proc = subprocess.run(
        [NODE, str(DATA / "https_get.js"), json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result = json.loads(proc.stdout)
    if "error" in result:
        return Answer(0, "", f"{result['error']}: {result['message']}")
    return Answer(int(result["status"]), str(result["body"]))


def s_client(
    gw: Gateway,
    path: str,
    who: str | None = None,
    *,
    version: str = "-tls1_3",
    port: int | None = None,
    extra: tuple[str, ...] = (),
) -> Answer:
    """``openssl s_client`` with a raw HTTP/1.1 GET; the status line read from its output."""
    assert OPENSSL is not None
    command = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port or gw.port}", version]
    command += ["-CAfile", str(gw.ca), "-verify_return_error", "-quiet", *extra]
    if who is not None:
        command += ["-cert", str(gw.ids[who].cert), "-key", str(gw.ids[who].key)]
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    proc = subprocess.run(
        command, input=request.encode(), capture_output=True, timeout=30, check=False
    )
    out = proc.stdout.decode("utf-8", "replace")
    match = re.match(r"HTTP/1\.1 (\d{3}) ", out)
    if match is None:
        return Answer(0, out, f"s_client exit {proc.returncode}: {proc.stderr.decode()[-600:]}")
    _, _, body = out.partition("\r\n\r\n")
    return Answer(int(match.group(1)), body)


def java(gw: Gateway, path: str, p12: str | None = None) -> Answer:
    """Java ``HttpsURLConnection`` with a PKCS#12 keystore (``java MtlsGet.java``)."""
    assert JAVA is not None
    command = [JAVA, str(DATA / "MtlsGet.java"), gw.url + path, str(gw.ca)]
    if p12 is not None:
        command += [str(gw.p12[p12]), P12_PASSWORD]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    first, _, body = proc.stdout.partition("\n")
    if not first.startswith("STATUS "):
        return Answer(0, proc.stdout, f"java exit {proc.returncode}: {proc.stderr[-600:]}")
    return Answer(int(first.split()[1]), body.strip())


def _requests_get(gw: Gateway, path: str, who: str | None, **kwargs: Any) -> Answer:
    cert = (str(gw.ids[who].cert), str(gw.ids[who].key)) if who else None
    with requests.get(gw.url + path, cert=cert, verify=str(gw.ca), timeout=10, **kwargs) as r:
        return Answer(r.status_code, r.text)


class PassphraseAdapter(HTTPAdapter):
    """Seed 003's workaround: urllib3 takes no key passphrase, so build the context ourselves."""

    def __init__(self, cert: Path, key: Path, passphrase: str) -> None:
        self._files = (cert, key, passphrase)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        cert, key, passphrase = self._files
        context = create_urllib3_context()
        context.load_cert_chain(certfile=cert, keyfile=key, password=passphrase)
        kwargs["ssl_context"] = context
        super().init_poolmanager(*args, **kwargs)


def _httpx_get(gw: Gateway, path: str, who: str | None, **kwargs: Any) -> Answer:
    context = ssl.create_default_context(cafile=gw.ca)
    if who is not None:
        context.load_cert_chain(gw.ids[who].cert, gw.ids[who].key)
    with httpx.Client(verify=context, timeout=10) as client:
        response = client.get(gw.url + path, **kwargs)
        return Answer(response.status_code, response.text)


needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed (make install adds it)")


def needs_node(test: T) -> T:
    """Marked ``node``; skipped, saying so, where Node.js is not installed."""
    skip = pytest.mark.skipif(NODE is None, reason="node is not installed: Node.js not tested")
    return cast("T", pytest.mark.node(skip(test)))


def needs_openssl(test: T) -> T:
    """Marked ``openssl``; skipped where the openssl command is missing (make install adds it)."""
    skip = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
    return cast("T", pytest.mark.openssl(skip(test)))


needs_java = pytest.mark.skipif(
    JAVA is None, reason="java is not installed: the Java HttpsURLConnection client is not tested"
)


# --- curl ----------------------------------------------------------------------------------


@needs_curl
def test_curl_whoami_greets_the_account(gateway: Gateway) -> None:
    """/mutls/whoami says hello to the certificate's account with its serial and days left."""
    answer = _must(curl(gateway, "/mutls/whoami", "acme"), 200).json()
    assert answer["message"] == "Hello, acme"
    assert answer["serial"] == gateway.serials["acme"]
    assert answer["days_remaining"] in {363, 364, 365}


@needs_curl
def test_curl_whoami_without_certificate_is_401(gateway: Gateway) -> None:
    """/mutls/whoami without a certificate is 401 client_certificate_required."""
    _must(curl(gateway, "/mutls/whoami"), 401, "client_certificate_required")


@needs_curl
@pytest.mark.parametrize(
    ("who", "how"),
    [
        ("acme", "--cert C --key K"),
        ("acme-enc", "--cert C:PASSPHRASE --key K (encrypted key)"),
    ],
)
def test_curl_reaches_the_upstream(gateway: Gateway, who: str, how: str) -> None:
    """curl with a platform certificate gets the upstream's 200 through the required route."""
    answer = _must(curl(gateway, "/api/items?q=1", who), 200, None).json()
    assert (answer["method"], answer["path"]) == ("GET", "/api/items?q=1"), how
    assert echoed_headers(answer)["x-mutls-account"] == ["acme"]


@needs_curl
def test_curl_pkcs12(gateway: Gateway) -> None:
    """curl --cert-type P12 with a keystore from `mutls cert convert --to p12` gets 200."""
    p12 = f"{gateway.p12['acme']}:{P12_PASSWORD}"
    answer = curl(gateway, "/api/p12", options=("--cert-type", "P12", "--cert", p12))
    assert echoed_headers(_must(answer, 200).json())["x-mutls-account"] == ["acme"]


@needs_curl
def test_curl_pkcs12_wrong_password_fails_in_the_client(gateway: Gateway) -> None:
    """A wrong PKCS#12 password is refused by curl itself: no request reaches the gateway."""
    p12 = f"{gateway.p12['acme']}:not-the-password"
    answer = curl(gateway, "/api/p12", options=("--cert-type", "P12", "--cert", p12))
    assert answer.status == 0, answer


@needs_curl
def test_curl_identity_headers_reach_the_upstream_and_spoofs_do_not(gateway: Gateway) -> None:
    """The upstream gets RFC 9440 Client-Cert of the client's DER and the gateway's identity
    headers; the client's own X-Mutls-Account and Client-Cert are dropped, not passed on."""
    files = gateway.ids["acme"]
    spoofed = (
        "X-Mutls-Account: evil",
        "Client-Cert: :ZXZpbA==:",
        "X-Mutls-Cert-Serial: 01",
        "X-Forwarded-For: 203.0.113.9",
    )
    answer = _must(curl(gateway, "/api/who", "acme", headers=spoofed), 200).json()
    headers = echoed_headers(answer)
    der = certificate_der(files.cert)
    assert headers["client-cert"] == [rfc9440(der)]
    assert len(headers["client-cert-chain"]) == 1
    assert headers["client-cert-chain"][0].startswith(":")
    assert headers["x-mutls-account"] == ["acme"]
    assert headers["x-mutls-cert-serial"] == [gateway.serials["acme"]]
    assert headers["x-mutls-cert-fingerprint"] == [hashlib.sha256(der).hexdigest()]
    assert headers["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"]
    assert len(headers["forwarded"]) == 1
    assert "for=127.0.0.1;proto=https" in headers["forwarded"][0]


@needs_curl
@pytest.mark.parametrize(
    ("path", "who", "status", "code"),
    [
        ("/api/x", "expired", 403, "certificate_expired"),
        ("/partner/x", "acme", 403, "route_forbidden"),
        ("/svc/v2/items", "acme-v1", 403, "route_forbidden"),
        ("/api/x", None, 401, "client_certificate_required"),
        ("/api/x", "wrong-eku", 403, "wrong_key_usage"),
        ("/basic/x", "acme", 403, "authorization_required"),
        ("/nothing/here", "acme", 404, "route_not_found"),
        ("/api/x", "dormant", 403, "account_mtls_disabled"),
    ],
    ids=[
        "expired",
        "foreign-account",
        "wrong-api-version",
        "no-certificate",
        "wrong-eku",
        "basic-missing",
        "no-route",
        "mtls-disabled",
    ],
)
def test_curl_rejections(
    gateway: Gateway, path: str, who: str | None, status: int, code: str
) -> None:
    """Each refusal is an HTTP answer with the exact status and error.code."""
    _must(curl(gateway, path, who), status, code)


@needs_curl
@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/api/x", "own"),  # the twin of expired and wrong-eku: same account CA, valid, clientAuth
        ("/partner/x", "other"),
        ("/svc/v2/items", "acme-v2"),
        ("/svc/v2/items", "acme"),  # no API version on the certificate: any version
    ],
)
def test_curl_acceptance_twins(gateway: Gateway, path: str, who: str) -> None:
    """The accepted twin of each refusal above: same route, the right certificate."""
    _must(curl(gateway, path, who), 200)


@needs_curl
def test_curl_wrong_api_version_names_the_version(gateway: Gateway) -> None:
    """A v1 certificate on the v2 route is told the route wants v2."""
    answer = _must(curl(gateway, "/svc/v2/items", "acme-v1"), 403, "route_forbidden")
    assert "v2" in answer.message


@needs_curl
def test_curl_basic_authorization_is_forwarded(gateway: Gateway) -> None:
    """With Basic credentials the Basic route answers 200 and the upstream sees them."""
    answer = curl(gateway, "/basic/x", "acme", options=("--user", "napi-user:napi-pass"))
    headers = echoed_headers(_must(answer, 200).json())
    assert headers["authorization"] == ["Basic bmFwaS11c2VyOm5hcGktcGFzcw=="]


@needs_curl
def test_curl_unknown_ca_fails_the_handshake(gateway: Gateway) -> None:
    """A certificate from a CA nobody registered gets no HTTP answer: the handshake fails."""
    answer = curl(gateway, "/api/x", "stranger")
    assert answer.status == 0, answer
    assert "alert" in answer.error.lower() or "ssl" in answer.error.lower(), answer.error


@needs_curl
def test_curl_source_ip_allowlist(gateway: Gateway) -> None:
    """An account allowlisting 127.0.0.1/32 gets 200 from there and source_ip_forbidden from
    127.0.0.2 (curl --interface)."""
    _must(curl(gateway, "/api/x", "ipbound", options=("--interface", "127.0.0.1")), 200)
    answer = curl(gateway, "/api/x", "ipbound", options=("--interface", "127.0.0.2"))
    _must(answer, 403, "source_ip_forbidden")
    assert "127.0.0.2" in answer.message


@needs_curl
def test_curl_revoked_certificate_is_refused_within_two_seconds(gateway: Gateway) -> None:
    """After `mutls cert revoke` the certificate is refused with certificate_revoked within 2 s."""
    _must(curl(gateway, "/api/x", "revoke-curl"), 200)
    _mutls(gateway.server, gateway.directory, "cert", "revoke", gateway.serials["revoke-curl"])
    wait_until(
        lambda: curl(gateway, "/api/x", "revoke-curl").code == "certificate_revoked",
        2,
        what="the revoked certificate is refused",
    )
    _must(curl(gateway, "/api/x", "revoke-curl"), 403, "certificate_revoked")


@needs_curl
def test_curl_one_host_mixes_public_and_private_routes(gateway: Gateway) -> None:
    """On one host, /public (mtls off) answers 200 without a certificate, /private (required)
    401; /private with a certificate 200."""
    public = _must(curl(gateway, "/public/x", host=MIXED_HOST), 200).json()
    assert "x-mutls-account" not in echoed_headers(public)
    assert "client-cert" not in echoed_headers(public)
    _must(curl(gateway, "/private/x", host=MIXED_HOST), 401, "client_certificate_required")
    _must(curl(gateway, "/private/x", "acme", host=MIXED_HOST), 200)


# --- Python requests and httpx -------------------------------------------------------------


def test_requests_cert_tuple(gateway: Gateway) -> None:
    """requests with cert=(crt, key) and verify=CA gets 200 from the upstream."""
    answer = _must(_requests_get(gateway, "/api/requests", "acme"), 200).json()
    assert echoed_headers(answer)["x-mutls-account"] == ["acme"]


@pytest.mark.parametrize(
    ("path", "who", "status", "code"),
    [
        ("/api/x", "expired", 403, "certificate_expired"),
        ("/api/x", "wrong-eku", 403, "wrong_key_usage"),
        ("/api/x", None, 401, "client_certificate_required"),
        ("/svc/v2/items", "acme-v1", 403, "route_forbidden"),
    ],
    ids=["expired", "wrong-eku", "no-certificate", "wrong-api-version"],
)
def test_requests_rejections(
    gateway: Gateway, path: str, who: str | None, status: int, code: str
) -> None:
    """requests gets the same HTTP refusals as curl."""
    _must(_requests_get(gateway, path, who), status, code)


def test_requests_unknown_ca_raises_ssl_error(gateway: Gateway) -> None:
    """requests with a certificate from an unregistered CA fails in TLS, never gets HTTP."""
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        _requests_get(gateway, "/api/x", "stranger")


def _adapter_get(gw: Gateway, who: str, path: str) -> Answer:
    files = gw.ids[who]
    assert files.passphrase is not None
    with requests.Session() as session:
        session.mount("https://", PassphraseAdapter(files.cert, files.key, files.passphrase))
        with session.get(gw.url + path, verify=str(gw.ca), timeout=10) as response:
            return Answer(response.status_code, response.text)


def test_requests_passphrase_adapter(gateway: Gateway) -> None:
    """Seed 003's HTTPAdapter with load_cert_chain(password=...) on an encrypted key gets 200."""
    answer = _must(_adapter_get(gateway, "acme-enc", "/mutls/whoami"), 200).json()
    assert answer["message"] == "Hello, acme"
    assert answer["serial"] == gateway.serials["acme-enc"]


def test_requests_passphrase_adapter_wrong_passphrase_fails_locally(gateway: Gateway) -> None:
    """The adapter with a wrong passphrase fails to load the key before any connection."""
    files = gateway.ids["acme-enc"]
    with pytest.raises(ssl.SSLError):
        PassphraseAdapter(files.cert, files.key, "wrong passphrase")


def test_requests_revoked_certificate_is_refused_within_two_seconds(gateway: Gateway) -> None:
    """A revoked certificate used by requests is refused with certificate_revoked within 2 s."""
    _must(_requests_get(gateway, "/api/x", "revoke-requests"), 200)
    _mutls(gateway.server, gateway.directory, "cert", "revoke", gateway.serials["revoke-requests"])
    wait_until(
        lambda: _requests_get(gateway, "/api/x", "revoke-requests").code == "certificate_revoked",
        2,
        what="the revoked certificate is refused",
    )


def test_httpx_client_certificate(gateway: Gateway) -> None:
    """httpx with verify=<SSLContext of the CA and the client cert> gets 200."""
    answer = _must(_httpx_get(gateway, "/api/httpx", "acme"), 200).json()
    assert echoed_headers(answer)["x-mutls-account"] == ["acme"]


@pytest.mark.parametrize(
    ("path", "who", "kwargs", "status", "code"),
    [
        ("/partner/x", "acme", {}, 403, "route_forbidden"),
        ("/nothing/here", "acme", {}, 404, "route_not_found"),
        ("/basic/x", "acme", {}, 403, "authorization_required"),
        ("/basic/x", "acme", {"auth": ("napi-user", "napi-pass")}, 200, None),
        ("/api/x", "dormant", {}, 403, "account_mtls_disabled"),
    ],
    ids=["foreign-account", "no-route", "basic-missing", "basic-given", "mtls-disabled"],
)
def test_httpx_answers(
    gateway: Gateway,
    path: str,
    who: str,
    kwargs: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    """httpx gets the same answers as curl, including the Basic route with credentials."""
    _must(_httpx_get(gateway, path, who, **kwargs), status, code)


def test_httpx_unknown_ca_fails_the_handshake(gateway: Gateway) -> None:
    """httpx with an unregistered CA's certificate gets a transport error, not HTTP."""
    with pytest.raises(httpx.TransportError):
        _httpx_get(gateway, "/api/x", "stranger")


# --- Node.js -------------------------------------------------------------------------------


@needs_node
@pytest.mark.parametrize("who", ["acme", "acme-enc"])
def test_node_https(gateway: Gateway, who: str) -> None:
    """Node's https.request with cert, key, passphrase and ca gets 200 from the upstream."""
    answer = _must(node(gateway, "/api/node", who), 200).json()
    assert echoed_headers(answer)["x-mutls-account"] == ["acme"]


@pytest.mark.parametrize(
    ("path", "who", "status", "code"),
    [
        ("/api/x", "expired", 403, "certificate_expired"),
        ("/api/x", None, 401, "client_certificate_required"),
        ("/basic/x", "acme-enc", 403, "authorization_required"),
        ("/svc/v2/items", "acme-v1", 403, "route_forbidden"),
    ],
    ids=["expired", "no-certificate", "basic-missing", "wrong-api-version"],
)
@needs_node
def test_node_rejections(
    gateway: Gateway, path: str, who: str | None, status: int, code: str
) -> None:
    """Node gets the same HTTP refusals as curl."""
    _must(node(gateway, path, who), status, code)


@needs_node
def test_node_unknown_ca_fails_the_handshake(gateway: Gateway) -> None:
    """Node with an unregistered CA's certificate gets a socket/TLS error, not HTTP."""
    answer = node(gateway, "/api/x", "stranger")
    assert answer.status == 0, answer


# --- openssl s_client and the TLS policy ---------------------------------------------------


@needs_openssl
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_s_client_get(gateway: Gateway, version: str) -> None:
    """openssl s_client with -cert/-key and a raw GET gets "HTTP/1.1 200" over TLS 1.2 and 1.3."""
    answer = _must(s_client(gateway, "/mutls/whoami", "acme", version=version), 200).json()
    assert answer["message"] == "Hello, acme"
    assert answer["tls_version"] == {"-tls1_2": "TLSv1.2", "-tls1_3": "TLSv1.3"}[version]


@needs_openssl
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_s_client_rejections(gateway: Gateway, version: str) -> None:
    """s_client without a certificate gets 401; with a wrong-EKU one 403 wrong_key_usage."""
    _must(s_client(gateway, "/api/x", version=version), 401, "client_certificate_required")
    _must(s_client(gateway, "/api/x", "wrong-eku", version=version), 403, "wrong_key_usage")


@needs_openssl
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_s_client_unknown_ca_fails_the_handshake(gateway: Gateway, version: str) -> None:
    """s_client with an unregistered CA's certificate gets no HTTP status line."""
    answer = s_client(gateway, "/api/x", "stranger", version=version)
    assert answer.status == 0, answer


@needs_openssl
def test_tls12_listener_takes_only_tls12(gateway: Gateway) -> None:
    """The tls=1.2 listener accepts TLS 1.2 and refuses 1.3 and 1.1; the default accepts 1.3."""
    port = gateway.port_tls12
    answer = _must(s_client(gateway, "/mutls/whoami", "acme", version="-tls1_2", port=port), 200)
    assert answer.json()["tls_version"] == "TLSv1.2"
    refused13 = s_client(gateway, "/mutls/whoami", "acme", version="-tls1_3", port=port)
    assert refused13.status == 0, refused13
    assert "protocol version" in refused13.error, refused13.error
    # Let this client offer TLS 1.1 at all (OpenSSL 3 refuses it at security level 1 and up).
    old = ("-cipher", "DEFAULT@SECLEVEL=0")
    for listen in (port, gateway.port):
        refused11 = s_client(
            gateway, "/mutls/whoami", "acme", version="-tls1_1", port=listen, extra=old
        )
        assert refused11.status == 0, refused11
        assert "protocol version" in refused11.error, refused11.error
    default13 = s_client(gateway, "/mutls/whoami", "acme", version="-tls1_3")
    assert _must(default13, 200).json()["tls_version"] == "TLSv1.3"


_WEAK_CIPHER = re.compile(r"RC4|3DES|DES-CBC3|NULL|EXP|anon|ADH|AECDH|-SHA$|_SHA$|CBC_SHA\b")


def _sslscan(port: int) -> tuple[dict[str, str], list[str]]:
    assert SSLSCAN is not None
    proc = subprocess.run(
        [SSLSCAN, "--no-colour", "--no-heartbleed", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    protocols = dict(
        re.findall(r"^(SSLv[23]|TLSv1\.[0-3])\s+(enabled|disabled)", proc.stdout, re.M)
    )
    ciphers = re.findall(r"^(?:Preferred|Accepted)\s+(\S+)\s+\d+ bits\s+(\S+)", proc.stdout, re.M)
    return protocols, [f"{version} {name}" for version, name in ciphers]


@pytest.mark.skipif(SSLSCAN is None, reason="sslscan is not installed (make install adds it)")
@pytest.mark.parametrize("listener", ["default", "tls12-only"])
def test_sslscan_tls_policy(gateway: Gateway, listener: str) -> None:
    """sslscan finds no SSLv3/TLS 1.0/1.1 and no RC4, 3DES, CBC-SHA1, NULL, EXPORT or anon suite."""
    port = gateway.port if listener == "default" else gateway.port_tls12
    protocols, ciphers = _sslscan(port)
    for old in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
        assert protocols.get(old, "disabled") == "disabled", protocols
    assert protocols["TLSv1.2"] == "enabled", protocols
    assert protocols["TLSv1.3"] == ("enabled" if listener == "default" else "disabled"), protocols
    assert ciphers, "sslscan listed no accepted cipher"
    weak = [c for c in ciphers if _WEAK_CIPHER.search(c.split()[1])]
    assert weak == [], weak


# --- Java ----------------------------------------------------------------------------------


@needs_java
def test_java_pkcs12_keystore(gateway: Gateway) -> None:
    """Java HttpsURLConnection with a PKCS#12 keystore from `mutls cert convert` gets 200."""
    answer = _must(java(gateway, "/api/java", "acme"), 200).json()
    assert echoed_headers(answer)["x-mutls-account"] == ["acme"]


@needs_java
@pytest.mark.parametrize(
    ("path", "p12", "status", "code"),
    [
        ("/api/x", None, 401, "client_certificate_required"),
        ("/svc/v2/items", "acme-v1", 403, "route_forbidden"),
    ],
    ids=["no-certificate", "wrong-api-version"],
)
def test_java_rejections(
    gateway: Gateway, path: str, p12: str | None, status: int, code: str
) -> None:
    """Java gets the same HTTP refusals as curl."""
    _must(java(gateway, path, p12), status, code)
