"""from_secret: a client identity from the vault of a real platform (SQLite in a temporary data
directory), audited, and verified against the secret's own CA bundle."""

from __future__ import annotations

import asyncio
import base64
import shutil
from pathlib import Path

import httpx
import pytest
import requests
from sqlalchemy import select

from mutls.accounts.principal import Principal
from mutls.client import AsyncMtlsTransport, MtlsAdapter, MtlsTransport
from mutls.client import requests_adapters as rq
from mutls.config import Settings
from mutls.errors import MutlsError
from mutls.runtime.platform import Platform
from mutls.store.models import AuditEvent
from mutls.vault.masterkeys import ensure_registered
from mutls.vault.secrets import create_secret
from tests.loopback.client.conftest import NOW, PASSPHRASE, Files, Pki, TlsServer
from tests.secretscan import register_secret

CN = "client.partner.example"


@pytest.fixture
def settings(tmp_path: Path, _sqlite_template: Path, pki: Pki, files: Files) -> Settings:
    """A platform data directory with a migrated store, a master key and three secrets."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    shutil.copyfile(_sqlite_template, data_dir / "mutls.db")
    settings = Settings(data_dir=data_dir)
    platform = Platform.from_settings(settings)
    try:
        platform.keys.create()
        ensure_registered(platform.db, platform.keys, now=NOW)
        admin = Principal.system("test:client")
        encrypted_key = files.encrypted_key.read_text()
        register_secret(encrypted_key)
        create_secret(
            platform.db,
            platform.keys,
            admin,
            name="partner_cert",
            secret_type="certificate",
            values={
                "production": {
                    "certificate_pem": files.chain.read_text(),
                    "private_key_pem": encrypted_key,
                    "passphrase": PASSPHRASE,
                    "ca_bundle_pem": pki.ca.root_pem.decode(),
                },
            },
            now=NOW,
        )
        create_secret(  # a PKCS#12 upload without a CA bundle: verified against the system CAs
            platform.db,
            platform.keys,
            admin,
            name="partner_p12",
            secret_type="certificate",
            values={
                "sandbox": {
                    "pkcs12_base64": base64.b64encode(files.p12.read_bytes()).decode(),
                    "passphrase": PASSPHRASE,
                },
            },
            now=NOW,
        )
        create_secret(
            platform.db,
            platform.keys,
            admin,
            name="api_key",
            secret_type="string",
            values={"production": {"value": "not-a-certificate-value"}},
            now=NOW,
        )
    finally:
        platform.close()
    return settings


def _accesses(settings: Settings) -> list[AuditEvent]:
    platform = Platform.from_settings(settings)
    try:
        with platform.db.read() as session:
            rows = session.execute(
                select(AuditEvent).where(AuditEvent.action == "secret.access")
            ).scalars()
            return list(rows)
    finally:
        platform.close()


def test_requests_from_secret_presents_the_vault_certificate(
    settings: Settings, mtls_server: TlsServer
) -> None:
    """Decrypted with its passphrase, verified against the secret's CA bundle, audited."""
    adapter = MtlsAdapter.from_secret("partner_cert", settings=settings)
    assert adapter.tls.trust.startswith("CA bundle: ")
    with requests.Session() as session:
        session.mount(mtls_server.url + "/", adapter)
        assert session.get(mtls_server.url + "/", timeout=10).json()["subject"] == CN
    (access,) = _accesses(settings)
    assert access.actor == "client:python"
    assert access.environment == "production"
    assert access.details["name"] == "partner_cert"
    assert access.details["purpose"] == "python client"


def test_httpx_from_secret_sync_and_async(settings: Settings, mtls_server: TlsServer) -> None:
    with httpx.Client(transport=MtlsTransport.from_secret("partner_cert", settings=settings)) as c:
        assert c.get(mtls_server.url + "/").json()["subject"] == CN

    async def main() -> str:
        transport = AsyncMtlsTransport.from_secret("partner_cert", settings=settings)
        async with httpx.AsyncClient(transport=transport) as client:
            subject: str = (await client.get(mtls_server.url + "/")).json()["subject"]
            return subject

    assert asyncio.run(main()) == CN
    assert len(_accesses(settings)) == 2


def test_from_secret_reads_the_platform_from_the_environment(
    settings: Settings, mtls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUTLS_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("MUTLS_DATABASE_URL", raising=False)
    monkeypatch.delenv("MUTLS_MASTER_KEY", raising=False)
    monkeypatch.delenv("MUTLS_MASTER_KEY_FILE", raising=False)
    with requests.Session() as session:
        session.mount("https://", MtlsAdapter.from_secret("partner_cert"))
        assert session.get(mtls_server.url + "/", timeout=10).json()["subject"] == CN


def test_a_secret_without_ca_bundle_verifies_against_the_system_cas(
    settings: Settings, mtls_server: TlsServer
) -> None:
    """The twin of the bundle case: the system store does not know the test CA."""
    adapter = MtlsAdapter.from_secret("partner_p12", "sandbox", settings=settings)
    assert adapter.tls.trust == "system CAs"
    with requests.Session() as session:
        session.mount("https://", adapter)
        with pytest.raises(rq.ServerCertificateUntrusted):
            session.get(mtls_server.url + "/", timeout=10)


def test_a_missing_environment_value_is_environment_value_missing(settings: Settings) -> None:
    """No fallback to production for a sandbox client, and the reverse."""
    with pytest.raises(MutlsError) as caught:
        MtlsAdapter.from_secret("partner_cert", "sandbox", settings=settings)
    assert caught.value.code == "environment_value_missing"
    with pytest.raises(MutlsError) as caught:
        MtlsTransport.from_secret("partner_p12", settings=settings)
    assert caught.value.code == "environment_value_missing"


def test_an_unknown_secret_is_secret_not_found(settings: Settings) -> None:
    with pytest.raises(MutlsError) as caught:
        MtlsAdapter.from_secret("no_such_secret", settings=settings)
    assert caught.value.code == "secret_not_found"


def test_a_string_secret_is_not_a_client_certificate(settings: Settings) -> None:
    with pytest.raises(MutlsError) as caught:
        MtlsAdapter.from_secret("api_key", settings=settings)
    assert caught.value.code == "invalid_argument"
    assert "not-a-certificate-value" not in caught.value.message


def test_verify_false_is_refused_for_production(settings: Settings) -> None:
    with pytest.raises(MutlsError) as caught:
        MtlsAdapter.from_secret("partner_cert", settings=settings, verify=False)
    assert caught.value.code == "insecure_tls_refused"
    assert _accesses(settings) == []  # refused before anything was decrypted


def test_without_a_data_directory_the_store_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(MutlsError) as caught:
        MtlsAdapter.from_secret("partner_cert", settings=Settings(data_dir=tmp_path / "none"))
    assert caught.value.code == "database_unavailable"
    assert not (tmp_path / "none").exists()  # nothing was created
