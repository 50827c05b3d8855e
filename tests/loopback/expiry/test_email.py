"""Expiry alerts by e-mail against a real SMTP server (aiosmtpd) on 127.0.0.1: STARTTLS and
implicit TLS verified against the server's CA, SMTP AUTH, and the refusals: a wrong password,
an untrusted server certificate, and a server without STARTTLS that must never see the
password."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mutls.config import ExpirySettings
from mutls.errors import InvalidArgument
from mutls.expiry.notify import Notice, send_email
from mutls.pki.authority import Profile
from mutls.testing import TestCA
from tests.e2e.gateway_setup import free_port

USER, PASSWORD = "alerts@example.com", "p@ss:w/rd s3cret"
NOTICE = Notice(
    payload={},
    subject_line="[mutls] partner_server api.partner.example expires in 29 days",
    text="The certificate api.partner.example expires in 29 days.",
)


@dataclass
class Relay:
    """What the SMTP server saw."""

    port: int = 0
    messages: list[str] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)


class _Handler:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        self.relay.messages.append(content.decode())
        return "250 OK"


def _authenticator(relay: Relay) -> Any:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        relay.logins.append((data.login, data.password))
        ok = (data.login, data.password) == (USER.encode(), PASSWORD.encode())
        return AuthResult(success=ok, handled=False)

    return check


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    context: ssl.SSLContext


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = TestCA(name="Mail Relay Test CA")
    server = ca.issue("127.0.0.1", profile=Profile.SERVER, sans=["127.0.0.1"])
    base = tmp_path_factory.mktemp("smtp")
    (base / "server.pem").write_bytes(server.chain_pem)
    (base / "server.key").write_bytes(server.key_pem())
    (base / "ca.pem").write_bytes(ca.root_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(base / "server.pem", base / "server.key")
    return Pki(ca_file=base / "ca.pem", context=context)


def _relay(**kwargs: Any) -> Iterator[Relay]:
    relay = Relay(port=free_port())
    controller = Controller(
        _Handler(relay),
        hostname="127.0.0.1",
        port=relay.port,
        authenticator=_authenticator(relay),
        **kwargs,
    )
    controller.start()
    try:
        yield relay
    finally:
        controller.stop()


@pytest.fixture
def starttls_relay(pki: Pki) -> Iterator[Relay]:
    """STARTTLS required before anything else, AUTH only over TLS."""
    yield from _relay(tls_context=pki.context, require_starttls=True, auth_require_tls=True)


@pytest.fixture
def implicit_tls_relay(pki: Pki) -> Iterator[Relay]:
    """TLS from the first byte. (aiosmtpd 1.4 offers AUTH on such a connection only with
    ``auth_require_tls`` off: it counts only STARTTLS as TLS.)"""
    yield from _relay(ssl_context=pki.context, auth_require_tls=False)


@pytest.fixture
def plain_relay() -> Iterator[Relay]:
    """No TLS at all, and it would take AUTH in the clear if a client offered it."""
    yield from _relay(auth_require_tls=False)


def _settings(url: str, ca_file: Path | None) -> ExpirySettings:
    return ExpirySettings(
        smtp_url=url,
        smtp_ca_file=ca_file,
        email_from="mutls@example.com",
        email_to=("ops@example.com", "pki@example.com"),
    )


CREDENTIALS = f"{quote(USER, safe='')}:{quote(PASSWORD, safe='')}"


def test_starttls_and_auth_deliver_the_message(starttls_relay: Relay, pki: Pki) -> None:
    url = f"smtp://{CREDENTIALS}@127.0.0.1:{starttls_relay.port}"
    delivery = send_email(NOTICE, _settings(url, pki.ca_file))
    assert (delivery.delivered, delivery.error) == (True, None)
    assert starttls_relay.logins == [(USER.encode(), PASSWORD.encode())]
    [message] = starttls_relay.messages
    assert f"Subject: {NOTICE.subject_line}" in message
    assert "To: ops@example.com, pki@example.com" in message
    assert NOTICE.text in message


def test_implicit_tls_and_auth_deliver_the_message(implicit_tls_relay: Relay, pki: Pki) -> None:
    url = f"smtps://{CREDENTIALS}@127.0.0.1:{implicit_tls_relay.port}"
    delivery = send_email(NOTICE, _settings(url, pki.ca_file))
    assert (delivery.delivered, delivery.error) == (True, None)
    assert implicit_tls_relay.logins == [(USER.encode(), PASSWORD.encode())]
    assert len(implicit_tls_relay.messages) == 1


def test_a_wrong_password_is_refused_and_not_repeated_back(starttls_relay: Relay, pki: Pki) -> None:
    url = f"smtp://{quote(USER, safe='')}:wrong-password@127.0.0.1:{starttls_relay.port}"
    delivery = send_email(NOTICE, _settings(url, pki.ca_file))
    assert not delivery.delivered
    assert delivery.error is not None
    assert "refused the user name and password (code 535)" in delivery.error
    assert "wrong-password" not in delivery.error
    assert starttls_relay.messages == []


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
def test_an_untrusted_server_certificate_stops_before_the_password(
    scheme: str, starttls_relay: Relay, implicit_tls_relay: Relay
) -> None:
    """Without the relay's CA the system store does not trust it: no login, no message."""
    relay = starttls_relay if scheme == "smtp" else implicit_tls_relay
    delivery = send_email(
        NOTICE, _settings(f"{scheme}://{CREDENTIALS}@127.0.0.1:{relay.port}", None)
    )
    assert not delivery.delivered
    assert delivery.error is not None
    assert "did not verify" in delivery.error
    assert "MUTLS_ALERT_SMTP_CA_FILE" in delivery.error
    assert PASSWORD not in delivery.error
    assert (relay.logins, relay.messages) == ([], [])


def test_a_server_without_starttls_never_sees_the_password(plain_relay: Relay) -> None:
    delivery = send_email(
        NOTICE, _settings(f"smtp://{CREDENTIALS}@127.0.0.1:{plain_relay.port}", None)
    )
    assert not delivery.delivered
    assert delivery.error is not None
    assert "does not offer STARTTLS" in delivery.error
    assert PASSWORD not in delivery.error
    assert (plain_relay.logins, plain_relay.messages) == ([], [])


def test_without_credentials_a_plain_server_still_gets_the_message(plain_relay: Relay) -> None:
    """A local relay without TLS or AUTH (the usual host-local MTA) is fine when no password
    is involved."""
    delivery = send_email(NOTICE, _settings(f"smtp://127.0.0.1:{plain_relay.port}", None))
    assert (delivery.delivered, delivery.error) == (True, None)
    assert len(plain_relay.messages) == 1


def test_the_ca_file_setting_must_name_a_file(tmp_path: Path, pki: Pki) -> None:
    env = {
        "MUTLS_ALERT_SMTP_URL": "smtp://127.0.0.1:25",
        "MUTLS_ALERT_EMAIL_FROM": "mutls@example.com",
        "MUTLS_ALERT_EMAIL_TO": "ops@example.com",
    }
    settings = ExpirySettings.from_env({**env, "MUTLS_ALERT_SMTP_CA_FILE": str(pki.ca_file)})
    assert settings.smtp_ca_file == pki.ca_file
    with pytest.raises(InvalidArgument, match="MUTLS_ALERT_SMTP_CA_FILE"):
        ExpirySettings.from_env({**env, "MUTLS_ALERT_SMTP_CA_FILE": str(tmp_path / "none.pem")})
