"""Health, metrics, the access log, framework errors and the last-resort 500."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from mutls import __version__
from mutls.api.app import create_app
from mutls.config import Settings
from mutls.runtime.platform import Platform
from mutls.store.database import Database
from mutls.vault.keysource import KeySource
from tests.loopback.api.conftest import Api, TestClient
from tests.secretscan import register_secret


def test_healthz_needs_no_token(api: Api) -> None:
    """/healthz answers without a token and names the version."""
    response = api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__, "database": "ok"}


def test_healthz_and_admin_endpoints_are_503_when_the_database_is_down(tmp_path: Path) -> None:
    """With no database server, /healthz and authenticated endpoints answer 503 with the code."""
    db = Database("postgresql+psycopg://mutls@127.0.0.1:9/none?connect_timeout=2")
    platform = Platform(
        settings=Settings(data_dir=tmp_path), db=db, keys=KeySource(path=tmp_path / "key")
    )
    try:
        with TestClient(create_app(platform)) as client:
            health = client.get("/healthz")
            assert health.status_code == 503
            assert health.json()["error"]["code"] == "database_unavailable"
            assert health.json()["error"]["hint"]
            token = "mutls_" + "D" * 43
            admin = client.get("/admin/secrets", headers={"Authorization": f"Bearer {token}"})
            assert admin.status_code == 503
            assert admin.json()["error"]["code"] == "database_unavailable"
    finally:
        db.dispose()


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit("}", 1)[0]))
        if found == labels:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_requests_by_route_template_and_secrets_by_type(api: Api) -> None:
    """/metrics has request counts by template (not raw path), latency and secrets by type."""
    register_secret("metrics-string-value")
    api.call(
        "POST",
        "/admin/secrets",
        json={"name": "m", "secret_type": "string", "value": "metrics-string-value"},
    )
    for name in ("nope-1", "nope-2"):
        assert api.call("GET", f"/admin/secrets/{name}").status_code == 404
    api.client.get("/no/such/path")
    response = api.call("GET", "/metrics", role="auditor")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    requests = "mutls_api_requests_total"
    assert _sample(text, requests, method="GET", route="/admin/secrets/{ref}", status="404") == 2.0
    assert _sample(text, requests, method="POST", route="/admin/secrets", status="201") == 1.0
    assert _sample(text, requests, method="GET", route="unmatched", status="404") == 1.0
    assert "nope-1" not in text
    assert _sample(text, "mutls_secrets", secret_type="string") == 1.0
    assert _sample(text, "mutls_secrets", secret_type="certificate") == 0.0
    latency = "mutls_api_request_duration_seconds_count"
    assert _sample(text, latency, method="POST", route="/admin/secrets") == 1.0


def test_each_app_has_its_own_registry(api: Api) -> None:
    """Two apps count separately, and nothing is registered in the global registry."""
    api.call("GET", "/admin/whoami")
    with TestClient(create_app(api.platform)) as other:
        fresh = other.get("/metrics", headers=api.auth()).text
    assert (
        _sample(
            fresh, "mutls_api_requests_total", method="GET", route="/admin/whoami", status="200"
        )
        is None
    )
    assert REGISTRY.get_sample_value("mutls_api_requests_total") is None
    assert "mutls_api_requests" not in str(list(REGISTRY._names_to_collectors))


def test_access_log_has_template_status_and_actor_but_no_secrets(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """One INFO line per request: method, route template, status, duration, actor; never the
    token, query values or the body."""
    token = api.token("admin")
    # Not registered with the secret scan: the test's HTTP client logs URLs (the server never
    # does; that is what this test checks).
    with caplog.at_level(logging.INFO, logger="mutls.api"):
        api.call("GET", "/admin/secrets?name=query-value-in-url")
        api.call("GET", "/admin/secrets/missing-one")
        api.client.get("/admin/whoami")
    lines = [r.getMessage() for r in caplog.records if r.name == "mutls.api"]
    assert any(
        re.fullmatch(r"GET /admin/secrets 200 [\d.]+ms actor=token:tok_\w+", line) for line in lines
    ), lines
    assert any(line.startswith("GET /admin/secrets/{ref} 404 ") for line in lines)
    assert any(
        line.startswith("GET /admin/whoami 401 ") and line.endswith("actor=-") for line in lines
    )
    joined = "\n".join(lines)
    assert token not in joined
    assert "query-value-in-url" not in joined
    assert "missing-one" not in joined


def test_unknown_path_and_wrong_method_use_the_error_shape(api: Api) -> None:
    """404 not_found and 405 method_not_allowed (with Allow) are JSON errors like the rest."""
    missing = api.client.get("/admin/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = api.client.patch("/admin/secrets")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    assert wrong.headers["allow"] == "GET, POST"
    several = api.client.put("/admin/secrets/some-secret")
    assert several.headers["allow"] == "DELETE, GET, PATCH"


def test_unexpected_exception_is_a_generic_500_with_the_traceback_only_in_the_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug answers 500 internal_error without details; the server log has the traceback."""

    def explode() -> None:
        raise RuntimeError("internal detail that must stay on the server")

    api.app.add_api_route("/explode", explode)
    with caplog.at_level(logging.INFO, logger="mutls.api"):
        response = api.client.get("/explode")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "internal detail" not in response.text
    assert "Traceback" not in response.text
    failures = [r for r in caplog.records if r.name == "mutls.api" and r.exc_info]
    assert failures
    assert "internal detail" in str(failures[0].exc_info[1] if failures[0].exc_info else "")
    assert any(r.getMessage().startswith("GET /explode 500 ") for r in caplog.records)


TWO_SUCCESSES = {
    # 201 with the issued certificate, or 200 for a dry run (`"dry_run": true`): nothing created
    "POST /admin/accounts/{ref}/certificates": 2,
}


def test_openapi_documents_a_response_model_and_the_error_shape_for_every_operation(
    api: Api,
) -> None:
    """Every operation documents its success schema and its errors as ErrorResponse."""
    spec = api.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["token"]["scheme"].lower() == "bearer"
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert len(success) == TWO_SUCCESSES.get(where, 1), where
            for code in success:
                if code != "204":
                    content = responses[code]["content"]
                    assert next(iter(content.values()))["schema"], (where, code)
            errors = [code for code in responses if code[0] in "45"]
            assert errors, where
            for code in errors:
                schema = responses[code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (where, code)
            assert "HTTPValidationError" not in str(responses), where
