"""Demo data for `mutls demo`: an account, tokens, and secrets issued by the platform CA.

Everything is made through the same services a user calls, so the demo's audit log is a real one
and ``mutls audit verify`` passes on it.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from mutls.accounts.mtls import update_mtls_settings
from mutls.accounts.principal import Principal
from mutls.accounts.service import create_account, create_token
from mutls.ca.issuance import issue_certificate
from mutls.ca.issuer import IssuerCache
from mutls.errors import NameTaken
from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.export import private_key_pem
from mutls.pki.keys import generate_key
from mutls.routing.egress import create_egress_route
from mutls.routing.egress_fields import EgressRouteSpec
from mutls.routing.service import create_route
from mutls.runtime.bootstrap import open_platform_ca, platform_ca_passphrase
from mutls.runtime.platform import Platform
from mutls.vault.secrets import create_secret

__all__ = [
    "DEMO_CLIENT_PASSPHRASE",
    "DEMO_EGRESS_ROUTE",
    "DEMO_SECRET",
    "DEMO_UPSTREAM_LISTEN",
    "demo_client_files",
    "seed_demo",
]

DEMO_CLIENT_PASSPHRASE = "demo"
"""Not a secret: the demo's client key is encrypted with it so no plaintext key is on disk."""

DEMO_ACCOUNT = "acme-bank"
DEMO_UPSTREAM_LISTEN = "127.0.0.1:9000"
"""Where the demo upstream listens (MUTLS_DEMO_UPSTREAM_LISTEN)."""
DEMO_SECRET = "partner_bank_client"
DEMO_EGRESS_ROUTE = "acme-api"
"""The demo's egress route: the consumer side calling the provider side's gateway."""


def _client_identity(platform: Platform, common_name: str, days: int) -> dict[str, object]:
    key = generate_key()
    csr = build_csr(key, SubjectSpec(common_name=common_name, country="CA", organization="Demo"))
    ca = open_platform_ca(platform)
    certificate = ca.sign(
        csr.public_bytes(serialization.Encoding.PEM),
        passphrase=platform_ca_passphrase(platform, purpose="demo certificate"),
        now=platform.clock(),
        validity_days=days,
    )
    root = ca.root_certificate()
    chain = b"".join(
        c.public_bytes(serialization.Encoding.PEM)
        for c in [certificate, *ca.chain()]
        if c != root  # peers hold the root; send leaf and intermediates
    )
    return {
        "certificate_pem": chain.decode(),
        "private_key_pem": private_key_pem(key, None).decode(),
    }


def demo_client_files(platform: Platform) -> Path:
    """Where the demo writes acme-bank's client certificate, encrypted key and CA chain."""
    return platform.settings.data_dir / "demo-client"


def seed_demo(platform: Platform, *, upstream_url: str, gateway_url: str) -> dict[str, str] | None:
    """Create the demo objects once; returns the demo tokens, or None if they already exist."""
    admin = Principal.system("system:demo")
    now = platform.clock()
    try:
        account = create_account(
            platform.db, admin, name=DEMO_ACCOUNT, display_name="ACME Bank (demo)", now=now
        )
    except NameTaken:
        return None
    # Provider side: the account opted in to mTLS, with one certificate issued from its CSR.
    update_mtls_settings(platform.db, admin, account.id, enabled=True, now=now)
    key = generate_key()
    csr = build_csr(
        key,
        SubjectSpec(common_name="api-client.acme-bank.example", country="CA", organization="ACME"),
    )
    issuer = IssuerCache(platform.db, platform.keys, platform.settings.ca_dir).platform(now=now)
    issued = issue_certificate(
        platform.db,
        issuer,
        admin,
        account.id,
        csr.public_bytes(serialization.Encoding.PEM),
        now=now,
        api_versions=["v2"],
    )
    # The files a customer would hold, for curl against the gateway (key encrypted: "demo").
    client_dir = demo_client_files(platform)
    client_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    intermediates = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in issuer.chain[:-1])
    (client_dir / "client.pem").write_bytes(issued.certificate_pem.encode() + intermediates)
    key_file = client_dir / "client.key.pem"
    key_file.touch(mode=0o600)
    key_file.write_bytes(private_key_pem(key, DEMO_CLIENT_PASSPHRASE.encode()))
    (client_dir / "ca.pem").write_bytes(issuer.chain[-1].public_bytes(serialization.Encoding.PEM))
    # The gateway's routes: v2 of the demo API needs a certificate, /public does not.
    create_route(
        platform.db,
        admin,
        now=now,
        name="demo-v2",
        upstream_url=upstream_url,
        path_prefix="/api",
        api_version="v2",
        description="the demo API, version 2: mTLS required",
    )
    create_route(
        platform.db,
        admin,
        now=now,
        name="demo-v1",
        upstream_url=upstream_url,
        path_prefix="/api",
        api_version="v1",
        description="the demo API, version 1: the demo certificate is issued for v2 only",
    )
    create_route(
        platform.db,
        admin,
        now=now,
        name="demo-public",
        upstream_url=upstream_url,
        path_prefix="/public",
        mtls="off",
        description="a public path on the same host: no certificate needed",
    )
    create_secret(
        platform.db,
        platform.keys,
        admin,
        name=DEMO_SECRET,
        secret_type="certificate",
        description="client certificate for the partner bank's mTLS API (demo)",
        values={
            "production": _client_identity(platform, "client.demo.example", 365),
            # A short-lived sandbox certificate, so the expiry warnings have something to show.
            "sandbox": _client_identity(platform, "sandbox.client.demo.example", 20),
        },
        now=now,
    )
    create_secret(
        platform.db,
        platform.keys,
        admin,
        name="partner_bank_api_key",
        secret_type="string",
        description="an API key sent as a header (demo)",
        values={"production": {"value": "demo-production-api-key-not-secret"}},
        now=now,
    )
    # Consumer side: acme-bank's certificate in the vault, and an egress route that calls the
    # gateway above with it, so one machine shows both halves of the same mTLS call.
    create_secret(
        platform.db,
        platform.keys,
        admin,
        name="acme_bank_gateway_client",
        secret_type="certificate",
        description="acme-bank's client certificate for the demo gateway (egress proxy demo)",
        values={
            "production": {
                "certificate_pem": issued.certificate_pem + intermediates.decode(),
                "private_key_pem": private_key_pem(key, None).decode(),
                "ca_bundle_pem": issuer.chain[-1].public_bytes(serialization.Encoding.PEM).decode(),
            }
        },
        now=now,
    )
    app = create_token(platform.db, admin, name="demo app", role="app", now=now)
    create_egress_route(
        platform.db,
        admin,
        EgressRouteSpec(
            name=DEMO_EGRESS_ROUTE,
            target_url=f"{gateway_url}/api",
            certificate_secret="acme_bank_gateway_client",
            description="the demo gateway's API, called as acme-bank through the egress proxy",
        ),
        now=now,
    )
    auditor = create_token(platform.db, admin, name="demo auditor", role="auditor", now=now)
    manager = create_token(
        platform.db,
        admin,
        name="demo manage-mtls (acme-bank)",
        role="manage-mtls",
        account_id=account.id,
        now=now,
    )
    return {"auditor": auditor.token, "manage-mtls": manager.token, "app": app.token}
