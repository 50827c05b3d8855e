"""Alert names read off OpenSSL's error queue, as pyOpenSSL raises them."""

from __future__ import annotations

import pytest
from OpenSSL import SSL

from mutls.egress.tlserrors import alert_of


@pytest.mark.parametrize(
    ("reason", "alert"),
    [
        ("tlsv13 alert certificate required", "certificate required"),
        ("tlsv1 alert unknown ca", "unknown ca"),
        ("sslv3 alert bad certificate", "bad certificate"),
        ("sslv3 alert certificate expired", "certificate expired"),
        ("sslv3 alert handshake failure", "handshake failure"),
        ("tls alert certificate expired", "certificate expired"),
        ("certificate verify failed", None),
        ("wrong version number", None),
    ],
)
def test_alert_of(reason: str, alert: str | None) -> None:
    error = SSL.Error([("SSL routines", "", reason)])
    assert alert_of(error) == alert


def test_alert_of_a_malformed_error_is_none() -> None:
    assert alert_of(SSL.Error("no queue")) is None
