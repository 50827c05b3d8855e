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


def test_the_renewal_listener_defaults_to_every_interface_on_8444(tmp_path: Path) -> None:
    settings = Settings.from_env({"MUTLS_DATA_DIR": str(tmp_path)})
    assert settings.renew_listen == ("0.0.0.0", 8444)
    assert settings.renew_url == "https://localhost:8444"  # reachable from this machine
    assert settings.server_names == ("localhost", "127.0.0.1")


@pytest.mark.parametrize("raw", ["off", "OFF", "none", "disabled"])
def test_the_renewal_listener_can_be_turned_off(tmp_path: Path, raw: str) -> None:
    settings = Settings.from_env({"MUTLS_DATA_DIR": str(tmp_path), "MUTLS_RENEW_LISTEN": raw})
    assert (settings.renew_listen, settings.renew_url) == (None, None)


@pytest.mark.parametrize("raw", ["8444", "localhost", "0.0.0.0:99999", "host:port"])
def test_a_bad_renewal_listen_address_names_the_variable(tmp_path: Path, raw: str) -> None:
    with pytest.raises(InvalidArgument, match="MUTLS_RENEW_LISTEN"):
        Settings.from_env({"MUTLS_DATA_DIR": str(tmp_path), "MUTLS_RENEW_LISTEN": raw})


def test_server_names_add_the_public_host_by_default(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"MUTLS_DATA_DIR": str(tmp_path), "MUTLS_PUBLIC_URL": "https://pki.example.com"}
    )
    assert settings.server_names == ("localhost", "127.0.0.1", "pki.example.com")


def test_server_names_are_taken_as_given_without_duplicates(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "MUTLS_DATA_DIR": str(tmp_path),
            "MUTLS_SERVER_NAMES": "api.example.com, 10.0.0.5,2001:db8::1,api.example.com",
        }
    )
    assert settings.server_names == ("api.example.com", "10.0.0.5", "2001:db8::1")


@pytest.mark.parametrize(
    "raw", ["*.example.com", "https://api.example.com", "api.example.com:8444", "a b", "é.example"]
)
def test_bad_server_names_are_refused_with_the_variable(tmp_path: Path, raw: str) -> None:
    with pytest.raises(InvalidArgument, match="MUTLS_SERVER_NAMES") as caught:
        Settings.from_env({"MUTLS_DATA_DIR": str(tmp_path), "MUTLS_SERVER_NAMES": raw})
    assert caught.value.hint


# --- the gateway's settings -------------------------------------------------------------------


def test_gateway_listeners_carry_their_own_tls_policy() -> None:
    from mutls.config import GatewaySettings

    settings = GatewaySettings.from_env(
        {"MUTLS_GATEWAY_LISTEN": "127.0.0.1:8443, [::1]:8543?tls=1.2&ciphers=strict"}
    )
    first, second = settings.listeners
    assert (first.host, first.port, first.tls_min, first.tls_max) == (
        "127.0.0.1",
        8443,
        "1.2",
        "1.3",
    )
    assert (second.host, second.port, second.tls_min, second.tls_max) == ("::1", 8543, "1.2", "1.2")
    assert second.ciphers == "strict"
    assert second.address == "[::1]:8543"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("127.0.0.1:8443?tls=1.1", "tls="),
        ("127.0.0.1:8443?tls=1.3-1.2", "tls="),
        ("127.0.0.1:8443?ciphers=weak", "ciphers="),
        ("127.0.0.1:8443?verify=none", "options"),
        ("nohost", "host:port"),
        (" , ", "at least one"),
    ],
)
def test_gateway_listener_errors_name_the_variable(raw: str, fragment: str) -> None:
    from mutls.config import GatewaySettings

    with pytest.raises(InvalidArgument, match="MUTLS_GATEWAY_LISTEN") as caught:
        GatewaySettings.from_env({"MUTLS_GATEWAY_LISTEN": raw})
    assert fragment in caught.value.message


def test_gateway_certificate_files_come_in_pairs(tmp_path: Path) -> None:
    from mutls.config import GatewaySettings

    with pytest.raises(InvalidArgument, match="together"):
        GatewaySettings.from_env({"MUTLS_GATEWAY_CERT_FILE": str(tmp_path / "c.pem")})
    settings = GatewaySettings.from_env(
        {
            "MUTLS_GATEWAY_CERT_FILE": str(tmp_path / "c.pem"),
            "MUTLS_GATEWAY_KEY_FILE": str(tmp_path / "k.pem"),
        }
    )
    assert settings.cert_file == tmp_path / "c.pem"


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("MUTLS_GATEWAY_UPSTREAM_TIMEOUT", "0"),
        ("MUTLS_GATEWAY_IDLE_TIMEOUT", "soon"),
        ("MUTLS_GATEWAY_WORKERS", "-1"),
        ("MUTLS_GATEWAY_MAX_BODY_BYTES", "1e9"),
        ("MUTLS_GATEWAY_ACCESS_LOG", "maybe"),
    ],
)
def test_gateway_numbers_are_checked(variable: str, raw: str) -> None:
    from mutls.config import GatewaySettings

    with pytest.raises(InvalidArgument, match=variable):
        GatewaySettings.from_env({variable: raw})


@pytest.mark.parametrize("raw", ["0", "0.0001", "398", "ninety", "-5"])
def test_server_certificate_lifetime_is_checked(tmp_path: Path, raw: str) -> None:
    """Under 10 seconds' worth (0.0001 days is 8.6 s), over 397 days, or not a number."""
    with pytest.raises(InvalidArgument, match="MUTLS_SERVER_CERT_DAYS"):
        Settings.from_env({"MUTLS_DATA_DIR": str(tmp_path), "MUTLS_SERVER_CERT_DAYS": raw})


def test_server_certificate_lifetime_takes_days_and_fractions(tmp_path: Path) -> None:
    base = {"MUTLS_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(base).server_cert_days == 90.0
    assert Settings.from_env({**base, "MUTLS_SERVER_CERT_DAYS": "30"}).server_cert_days == 30.0
    assert Settings.from_env({**base, "MUTLS_SERVER_CERT_DAYS": "0.5"}).server_cert_days == 0.5


def test_gateway_defaults_are_bounded() -> None:
    from mutls.config import GatewaySettings

    settings = GatewaySettings.from_env({"MUTLS_GATEWAY_IDLE_TIMEOUT": "1.5"})
    assert settings.idle_timeout == 1.5
    assert settings.listeners[0].port == 8443
    assert settings.max_header_bytes == 32 * 1024
    assert settings.workers >= 1
