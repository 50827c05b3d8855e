"""How `mutls egress route` turns its options into the API's fields: headers, per-environment
overrides, scopes, and the refusals of malformed values. No server: these are pure functions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from mutls.cli.app import app
from mutls.cli.egress import _given, _header, _merged_headers, _overrides, _scopes
from mutls.errors import InvalidArgument


def test_a_header_is_name_colon_template_split_at_the_first_colon() -> None:
    assert _header("API-Key: {{secret:bank_api_key}}") == ("API-Key", "{{secret:bank_api_key}}")
    assert _header("X-Time:12:00") == ("X-Time", "12:00")
    assert _header(" X-Empty :") == ("X-Empty", "")


@pytest.mark.parametrize("text", ["no-colon", ": value", "   :x"])
def test_a_header_without_a_name_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="'Name: template'"):
        _header(text)


def test_headers_merge_by_name_in_any_case_and_removals_apply() -> None:
    """--header replaces a header of the same name (any case) and keeps the others;
    --remove-header drops one."""
    current = {"API-Key": "{{secret:a}}", "Gov-Vendor-Version": "1.0", "X-Old": "1"}
    merged = _merged_headers(
        current, added=["gov-vendor-version: 2.0", "X-New: n"], removed=["x-old"]
    )
    assert merged == {"API-Key": "{{secret:a}}", "gov-vendor-version": "2.0", "X-New": "n"}
    assert _merged_headers(current, added=[], removed=[]) == current


def test_environment_options_change_only_what_they_name() -> None:
    """Targets and names are set per environment; an empty value clears one field; --env-verify
    and --clear-env undo; an environment left with nothing is dropped."""
    current: dict[str, dict[str, Any]] = {
        "sandbox": {
            "target_url": "https://sb.example",
            "tls_servername": None,
            "tls_reject_unauthorized": False,
        },
        "staging": {"target_url": "https://st.example"},
    }
    result = _overrides(
        current,
        targets=["uat=https://uat.example", "staging="],
        servernames=["sandbox=sb.name"],
        insecure=["uat"],
        verify=["sandbox"],
    )
    assert result == {
        "sandbox": {"target_url": "https://sb.example", "tls_servername": "sb.name"},
        "uat": {"target_url": "https://uat.example", "tls_reject_unauthorized": False},
    }
    assert _overrides(current, targets=[], servernames=[], insecure=[], clear=["sandbox"]) == {
        "staging": {"target_url": "https://st.example"}
    }


@pytest.mark.parametrize("text", ["sandbox", "=https://x.example"])
def test_an_environment_option_without_env_equals_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="--env-target as ENV=URL"):
        _overrides({}, targets=[text], servernames=[], insecure=[])


def test_scopes_split_on_spaces_and_an_empty_one_clears() -> None:
    assert _scopes(["accounts payments", "openid"]) == ["accounts", "payments", "openid"]
    assert _scopes([""]) is None


def test_an_empty_value_clears_only_the_fields_that_can_be_cleared() -> None:
    body = _given(
        {"name": None, "description": ""},
        cleared_by_empty={"tls_servername": "", "certificate_secret": "c", "oauth2_secret": None},
    )
    assert body == {"description": "", "tls_servername": None, "certificate_secret": "c"}


@pytest.mark.parametrize(
    "args",
    [
        ["add", "r"],
        ["add", "r", "--target-url", "https://x.example", "--header", "no-colon"],
        ["add", "r", "--target-url", "https://x.example", "--env-target", "sandbox"],
        ["update", "r"],
        ["update", "r", "--allow-token", "t", "--any-token"],
    ],
)
def test_commands_refuse_malformed_options_before_calling_the_api(args: list[str]) -> None:
    """Each fails with invalid_argument and exit 1 before any request (the server given
    does not exist)."""
    result = CliRunner().invoke(
        app, ["--server", "http://127.0.0.1:9", "--token", "t", "egress", "route", *args, "--json"]
    )
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["error"]["code"] == "invalid_argument"
