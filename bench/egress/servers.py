"""The certificates, the partner, the mutls platform data and the two proxies' configurations."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from run import NGINX_COMMON, NGINX_TEMP_PATHS, http_get

from mutls.accounts.principal import Principal
from mutls.accounts.service import create_token
from mutls.config import Settings
from mutls.pki.authority import Profile
from mutls.routing.egress import create_egress_route
from mutls.routing.egress_fields import EgressRouteSpec
from mutls.runtime.bootstrap import bootstrap
from mutls.testing import TestCA
from mutls.vault.secrets import create_secret

MUTLS = Path(sys.executable).with_name("mutls")
ROUTE = "bench"
TOKEN_HEADER = "X-Mutls-Token"
EXPECTED_BODY = b"ok\n"


# --- PKI, the partner and the platform data ----------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Pki:
    """Files in the temp dir, all EC P-256, from two ``mutls.testing.TestCA`` (root + issuing)."""

    partner_chain: Path  # partner's server certificate (localhost, 127.0.0.1) + issuing CA
    partner_key: Path
    partner_ca: Path  # root of the partner's server CA: what both proxies and the naive app trust
    client_ca: Path  # root of the client CA: what the partner trusts
    client_chain: Path  # the consumer's client certificate + issuing CA
    client_key: Path


def make_pki(base: Path) -> tuple[Pki, dict[str, str]]:
    """The certificates as files, and the same client certificate as the vault wants it."""
    server_ca = TestCA(name="Partner Server CA", organization="Bench Partner")
    client_ca = TestCA(name="Partner Client CA", organization="Bench Partner")
    server = server_ca.issue(
        "localhost", profile=Profile.SERVER, sans=["DNS:localhost", "IP:127.0.0.1"]
    )
    client = client_ca.issue("client.bench.example", organization="Bench Consumer")
    pki = Pki(
        partner_chain=base / "partner-chain.pem",
        partner_key=base / "partner-key.pem",
        partner_ca=base / "partner-ca.pem",
        client_ca=base / "client-ca.pem",
        client_chain=base / "client-chain.pem",
        client_key=base / "client-key.pem",
    )
    pki.partner_chain.write_bytes(server.chain_pem)
    pki.partner_key.write_bytes(server.key_pem())
    pki.partner_ca.write_bytes(server_ca.root_pem)
    pki.client_ca.write_bytes(client_ca.root_pem)
    pki.client_chain.write_bytes(client.chain_pem)
    pki.client_key.write_bytes(client.key_pem())
    for path in (pki.partner_key, pki.client_key):
        path.chmod(0o600)
    vault_fields = {
        "certificate_pem": client.chain_pem.decode(),
        "private_key_pem": client.key_pem().decode(),
        "ca_bundle_pem": server_ca.root_pem.decode(),
    }
    return pki, vault_fields


def make_platform(data_dir: Path, vault_fields: dict[str, str], partner_port: int) -> str:
    """A data dir as ``mutls up`` makes it, with the certificate secret ``bench_cert``, the route
    ``bench`` -> the partner and an ``app`` token; returns the token."""
    platform_, _ = bootstrap(Settings(data_dir=data_dir))
    try:
        now = datetime.now(UTC)
        admin = Principal.system("bench:egress")
        create_secret(
            platform_.db,
            platform_.keys,
            admin,
            name="bench_cert",
            secret_type="certificate",
            values={"production": vault_fields},
            description="bench/egress/run.py",
            now=now,
        )
        create_egress_route(
            platform_.db,
            admin,
            EgressRouteSpec(
                name=ROUTE,
                target_url=f"https://localhost:{partner_port}",
                certificate_secret="bench_cert",
                description="bench/egress/run.py",
            ),
            now=now,
        )
        return create_token(platform_.db, admin, name="bench-app", role="app", now=now).token
    finally:
        platform_.close()


PARTNER_CONF = (
    NGINX_COMMON
    + """\
worker_processes 1;
events {{ worker_connections 4096; }}
http {{
"""
    + NGINX_TEMP_PATHS
    + """\
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki.partner_chain};
        ssl_certificate_key {pki.partner_key};
        ssl_client_certificate {pki.client_ca};
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_protocols TLSv1.2 TLSv1.3;
        default_type text/plain;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
)

# nginx as the mTLS egress proxy. It checks no app token (mutls does), and forwards the app's
# headers as they are (mutls strips its own token first).
NGINX_EGRESS_CONF = (
    NGINX_COMMON
    + """\
worker_processes {workers};
events {{ worker_connections 8192; }}
http {{
"""
    + NGINX_TEMP_PATHS
    + """\
    {access_log};
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream partner {{
        server 127.0.0.1:{partner_port};
        keepalive 64;  # mutls: MUTLS_EGRESS_MAX_IDLE_PER_PARTNER=64
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /{route}/ {{
            proxy_pass https://partner/;
            proxy_ssl_certificate {pki.client_chain};
            proxy_ssl_certificate_key {pki.client_key};
            proxy_ssl_trusted_certificate {pki.partner_ca};
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 2;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
)


# --- the proxies ---------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Proxy:
    """One proxy under test: what it is, how many workers, and its running process."""

    name: str  # "mutls-1", "nginx-2", "mutls-1-log"
    kind: str  # "mutls" or "nginx"
    workers: int
    request_log: bool = False
    """mutls: its request log (a database row per request); nginx: its access log (a line per
    request to a file, the default format)."""
    port: int = 0
    log: Path = Path()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ROUTE}/"


def request_bytes(port: int, token: str) -> bytes:
    return (
        f"GET /{ROUTE}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{TOKEN_HEADER}: {token}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def get_through(proxy: Proxy, token: str) -> tuple[int, bytes]:
    """One request through the proxy on a new connection: (status, body)."""
    status, response = http_get(proxy.port, "", ctx=None, request=request_bytes(proxy.port, token))
    return status, response.partition(b"\r\n\r\n")[2]
