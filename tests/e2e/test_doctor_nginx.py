"""``mutls doctor`` against nginx with ``ssl_verify_client on``: nginx finishes the handshake
whatever the client sends and refuses in HTTP (400 "No required SSL certificate was sent", 400
"The SSL certificate error"), and doctor still names the certificate as the cause."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mutls.doctor import ClientSource, DoctorOptions, Report, diagnose
from mutls.pki.authority import Profile
from mutls.testing import Identity, TestCA
from mutls.tls.egress_context import EgressTlsPreset
from tests.e2e.gateway_setup import free_port

CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    access_log off;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {dir}/server-chain.pem;
        ssl_certificate_key {dir}/server.key;
        ssl_verify_client on;
        ssl_client_certificate {dir}/client-ca.pem;
        ssl_verify_depth 2;
        ssl_protocols {protocols};
        default_type text/plain;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


@dataclass(frozen=True, kw_only=True)
class Nginx:
    ca: TestCA
    client: Identity
    ports: dict[str, int]  # "both" (TLS 1.2 and 1.3), "tls12"

    def url(self, server: str) -> str:
        return f"https://127.0.0.1:{self.ports[server]}/"


def _nginx_binary() -> str:
    path = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if path is None:
        pytest.fail(
            "the nginx command is required for the doctor's nginx tests (make install adds it)"
        )
    return path


def _start(nginx: str, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    args = [nginx, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", "nginx.conf"]
    test = subprocess.run([*args, "-t", "-q"], capture_output=True, text=True, check=False)
    if test.returncode != 0:
        pytest.fail(f"nginx -t failed in {workdir}:\n{test.stderr}")
    with (workdir / "stderr.log").open("wb") as log:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nginx exited: {(workdir / 'error.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    pytest.fail(f"nginx did not listen on {port}")


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = _nginx_binary()
    base = tmp_path_factory.mktemp("doctor-nginx")
    ca = TestCA(name="Nginx Doctor Root CA", organization="Doctor Org")
    server = ca.issue("localhost", profile=Profile.SERVER, sans=["localhost", "127.0.0.1"])
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    try:
        for name, protocols in (("both", "TLSv1.2 TLSv1.3"), ("tls12", "TLSv1.2")):
            workdir = base / name
            workdir.mkdir()
            (workdir / "server-chain.pem").write_bytes(server.chain_pem)
            (workdir / "server.key").write_bytes(server.key_pem())
            (workdir / "client-ca.pem").write_bytes(ca.root_pem)
            port = free_port()
            (workdir / "nginx.conf").write_text(
                CONF.format(dir=workdir, port=port, protocols=protocols)
            )
            procs.append(_start(binary, workdir, port))
            ports[name] = port
        yield Nginx(ca=ca, client=ca.issue("client.example"), ports=ports)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGQUIT)  # graceful: the master stops its workers
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def run(nginx: Nginx, identity: Identity | None, server: str = "both", **options: object) -> Report:
    source = None
    if identity is not None:
        source = ClientSource(certificate=identity.chain_pem, key=identity.key_pem(), origin="test")
    opts = DoctorOptions(cas=(nginx.ca.root,), ca_origin="root.pem", timeout=5, **options)  # type: ignore[arg-type]
    return diagnose(nginx.url(server), source, options=opts, now=datetime.now(UTC))


def cause(report: Report) -> tuple[str, str | None, str]:
    found = report.cause
    assert found is not None, report.to_dict()
    assert report.steps[-1].hint, report.to_dict()
    return found.code, found.reason, report.steps[-1].name


def test_all_green_with_a_certificate_nginx_accepts(nginx: Nginx) -> None:
    report = run(nginx, nginx.client)
    assert report.ok, report.to_dict()
    assert "HTTP 200" in report.steps[-1].detail


def test_no_certificate_is_named_from_nginx_400_page(nginx: Nginx) -> None:
    report = run(nginx, None)
    assert cause(report) == (
        "partner_requires_client_certificate",
        "certificate_required",
        "http",
    )
    assert "No required SSL certificate was sent" in report.steps[-1].detail
    assert "--cert" in (report.steps[-1].hint or "")


def test_a_certificate_from_another_ca_is_named_from_nginx_ca_names(nginx: Nginx) -> None:
    stranger = TestCA(name="Stranger CA", organization="Elsewhere").issue("client.example")
    report = run(nginx, stranger)
    assert cause(report) == ("partner_rejected_certificate", "unknown_ca", "server.client_ca")
    assert "Nginx Doctor Root CA" in report.steps[-1].detail


def test_a_look_alike_ca_is_named_from_nginx_400_page(nginx: Nginx) -> None:
    """A CA with the same name as the trusted one (a sandbox CA against production) passes the
    CA-name check; nginx completes the handshake and answers 400 "The SSL certificate error"."""
    impostor = TestCA(name="Nginx Doctor Root CA", organization="Doctor Org")
    report = run(nginx, impostor.issue("client.example"))
    assert cause(report) == ("partner_rejected_certificate", "certificate_error", "http")
    assert "The SSL certificate error" in report.steps[-1].detail


def test_tls13_only_against_a_tls12_only_nginx_is_a_version_mismatch(nginx: Nginx) -> None:
    report = run(nginx, nginx.client, server="tls12", preset=EgressTlsPreset.TLS13)
    assert cause(report) == ("partner_tls_handshake_failed", "protocol_version", "tls.versions")


def test_the_tls12_only_nginx_accepts_the_default_preset(nginx: Nginx) -> None:
    report = run(nginx, nginx.client, server="tls12")
    assert report.ok, report.to_dict()
