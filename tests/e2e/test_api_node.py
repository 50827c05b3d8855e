"""`mutls api`: a stateless admin API node that creates nothing and refuses an unready store."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import MUTLS, Run
from tests.e2e.test_cli_platform import _clean_env, _free_port
from tests.secretscan import register_secret


def test_api_node_refuses_an_unmigrated_database(run: Run, tmp_path: Path) -> None:
    key = run("vault", "generate-master-key", check=True).stdout.strip()
    register_secret(key.split()[-1])
    result = run("api", env={"MUTLS_DATA_DIR": str(tmp_path / "d"), "MUTLS_MASTER_KEY": key})
    assert result.returncode == 1
    assert "database_schema_outdated" in result.stderr
    assert "mutls db upgrade" in result.stderr


def test_api_node_serves_after_db_upgrade_with_a_key_from_the_environment(
    run: Run, tmp_path: Path
) -> None:
    key = run("vault", "generate-master-key", check=True).stdout.strip()
    register_secret(key.split()[-1])
    env = {"MUTLS_DATA_DIR": str(tmp_path / "d"), "MUTLS_MASTER_KEY": key}
    assert run("db", "upgrade", env=env).returncode == 0
    port = _free_port()
    full = {
        **_clean_env(),
        **env,
        "MUTLS_API_LISTEN": f"127.0.0.1:{port}",
        "MUTLS_RENEW_LISTEN": f"127.0.0.1:{_free_port()}",
    }
    proc = subprocess.Popen(
        [str(MUTLS), "api"],
        env=full,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "mutls api exited"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("mutls api did not start")
                time.sleep(0.2)
        assert health.json()["database"] == "ok"
        # It created nothing: no key file, no CA, no admin token.
        assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
            "mutls.db",
            "mutls.db-shm",
            "mutls.db-wal",
        ]
        assert httpx.get(f"http://127.0.0.1:{port}/admin/secrets").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
