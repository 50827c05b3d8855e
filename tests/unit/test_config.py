"""Settings from the environment: the public base URL that issued certificates point to."""

from __future__ import annotations

from pathlib import Path

import pytest

from mutls.config import Settings
from mutls.errors import InvalidArgument


def test_public_url_defaults_to_the_admin_api_url(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"MUTLS_DATA_DIR": str(tmp_path), "MUTLS_API_LISTEN": "[::1]:7100"}
    )
    assert settings.public_url is None
    assert settings.effective_public_url == "http://[::1]:7100"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://pki.example.com", "https://pki.example.com"),
        ("https://pki.example.com/", "https://pki.example.com"),
        ("http://10.0.0.5:7000/mutls/", "http://10.0.0.5:7000/mutls"),
    ],
)
def test_public_url_is_kept_without_a_trailing_slash(
    tmp_path: Path, raw: str, expected: str
) -> None:
    settings = Settings.from_env({"MUTLS_DATA_DIR": str(tmp_path), "MUTLS_PUBLIC_URL": raw})
    assert settings.effective_public_url == expected


@pytest.mark.parametrize(
    "raw",
    [
        "pki.example.com",
        "ftp://pki.example.com",
        "https://",
        "https://pki.example.com/?a=1",
        "https://pki.example.com/#top",
        "https://pki.example.com?",
        "https://user:pw@pki.example.com",
        "https://pki.example.com:99999",
        "https://pki.example.com/a b",
    ],
)
def test_a_bad_public_url_is_invalid_argument_naming_the_variable(tmp_path: Path, raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Settings.from_env({"MUTLS_DATA_DIR": str(tmp_path), "MUTLS_PUBLIC_URL": raw})
    assert caught.value.code == "invalid_argument"
    assert "MUTLS_PUBLIC_URL" in str(caught.value)
    assert "pw" not in str(caught.value)  # a pasted password is never echoed
