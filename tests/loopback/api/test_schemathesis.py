"""External check (issue 3): schemathesis against /openapi.json - no 500, no response that
breaks its own schema.

A short, bounded run: every operation, with valid and invalid data, an admin token, on SQLite
(the API code is the same on both backends; the backends have their own suites). A few
resources exist first so that generated requests reach more than "not found".
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mutls.accounts import service
from mutls.vault.secrets import create_secret
from tests.loopback.api.conftest import SYSTEM, Api
from tests.secretscan import register_secret

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 8}


def _seed(api: Api) -> None:
    register_secret("schemathesis-string-value")
    account = api.account("acme")
    create_secret(
        api.db,
        api.platform.keys,
        SYSTEM,
        name="seeded",
        secret_type="string",
        values={"production": {"value": "schemathesis-string-value"}},
        now=api.now(),
    )
    service.create_user(
        api.db,
        SYSTEM,
        email="seeded@example.com",
        display_name=None,
        role="auditor",
        account_id=account,
        now=api.now(),
    )


@pytest.mark.usefixtures("platform_ca")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_schemathesis_finds_no_500_and_no_schema_violation(api: Api) -> None:
    """Every operation, positive and negative cases: no 5xx, statuses, types and bodies as
    documented."""
    _seed(api)
    headers = api.auth("admin")
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results) >= 20  # the schema itself is valid
    # POST /admin/doctor connects to the URL it is given: generated URLs would send traffic to
    # arbitrary addresses. tests/e2e/test_doctor.py and the roles matrix call it on loopback.
    operations = [op for op in operations if op.path != "/admin/doctor"]
    failures: list[str] = []
    calls: dict[int, int] = {}
    for operation in operations:
        for mode, examples in EXAMPLES.items():

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def exercise(case: Any) -> None:
                response = case.call_and_validate(headers=headers, checks=CHECKS)
                calls[response.status_code] = calls.get(response.status_code, 0) + 1

            try:
                exercise()
            except Unsatisfiable:  # nothing to make invalid: no parameters and no body
                assert mode is GenerationMode.NEGATIVE
            except BaseException as error:  # collect every operation's failures, report all
                if not isinstance(error, Exception | BaseExceptionGroup):
                    raise
                failures.append(f"{operation.label} ({mode.value}): {str(error)[:2000]}")
    assert failures == [], "\n\n".join(failures)
    assert sum(calls.values()) > 200
    assert {200, 201, 404, 422} <= set(calls), calls
