"""Alert channels: a signed JSON webhook and e-mail over SMTP.

Each channel turns one :class:`Notice` into one :class:`Delivery` (delivered or not, after how
many attempts, and a one-line reason), and never raises for a delivery problem: the caller
audits the outcome either way. Nothing secret goes out: a notice carries names, subjects,
serials and dates only.

The webhook body is JSON; ``X-Mutls-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact
body bytes under ``MUTLS_ALERT_WEBHOOK_SECRET`` (as GitHub signs its webhooks), so a receiver
verifies it before parsing. Connection errors, 429 and 5xx answers are retried with exponential
backoff (``backoff * 2**n``, capped at 60 s), ``attempts`` times in all; any other answer is
final.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import httpx

from mutls.config import ExpirySettings

__all__ = [
    "MAX_BACKOFF_SECONDS",
    "SIGNATURE_HEADER",
    "Delivery",
    "Notice",
    "send_email",
    "send_webhook",
    "sign",
]

SIGNATURE_HEADER = "X-Mutls-Signature"
MAX_BACKOFF_SECONDS = 60.0

Sleep = Callable[[float], object]


@dataclass(frozen=True, kw_only=True)
class Notice:
    """What one notification says: the item and the threshold it crossed."""

    payload: dict[str, object]
    subject_line: str
    text: str


@dataclass(frozen=True, kw_only=True)
class Delivery:
    channel: str
    delivered: bool
    attempts: int
    error: str | None = None


def sign(body: bytes, secret: str) -> str:
    """The ``X-Mutls-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(
    notice: Notice, settings: ExpirySettings, *, sleep: Sleep = time.sleep
) -> Delivery:
    assert settings.webhook_url is not None
    body = json.dumps(notice.payload, sort_keys=True, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "mutls-expiry"}
    if settings.webhook_secret:
        headers[SIGNATURE_HEADER] = sign(body, settings.webhook_secret)
    error = "not attempted"
    attempts = 0
    with httpx.Client(timeout=settings.timeout_seconds, follow_redirects=False) as client:
        for attempt in range(settings.webhook_attempts):
            if attempt:
                sleep(
                    min(settings.webhook_backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
                )
            attempts = attempt + 1
            try:
                answer = client.post(settings.webhook_url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: no answer from the webhook"
                continue
            if 200 <= answer.status_code < 300:
                return Delivery(channel="webhook", delivered=True, attempts=attempts)
            error = f"the webhook answered HTTP {answer.status_code}"
            if answer.status_code != 429 and answer.status_code < 500:
                break  # the receiver refused this notice; asking again will not help
    return Delivery(channel="webhook", delivered=False, attempts=attempts, error=error)


def send_email(notice: Notice, settings: ExpirySettings) -> Delivery:
    """One message over SMTP. ``smtp://`` upgrades with STARTTLS when the server offers it and
    refuses to send a password over a connection that did not; ``smtps://`` is TLS from the
    start. The server's certificate is verified (``MUTLS_ALERT_SMTP_CA_FILE`` or the system
    store)."""
    assert settings.smtp_url is not None
    assert settings.email_from is not None
    url = urlsplit(settings.smtp_url)
    host = url.hostname or "localhost"
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = ", ".join(settings.email_to)
    message["Subject"] = notice.subject_line
    message.set_content(notice.text)
    context = ssl.create_default_context(
        cafile=str(settings.smtp_ca_file) if settings.smtp_ca_file is not None else None
    )
    try:
        smtp: smtplib.SMTP
        if url.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(
                host, url.port or 465, timeout=settings.timeout_seconds, context=context
            )
        else:
            smtp = smtplib.SMTP(host, url.port or 25, timeout=settings.timeout_seconds)
        with smtp:
            if url.scheme == "smtp":
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                elif url.username:
                    return _not_emailed(
                        f"the SMTP server at {host} does not offer STARTTLS, and mutls does not "
                        "send the SMTP password unencrypted; enable STARTTLS on it or use smtps://"
                    )
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        return _not_emailed(
            f"SMTPAuthenticationError: the SMTP server at {host} refused the user name and "
            f"password (code {exc.smtp_code})"
        )
    except ssl.SSLCertVerificationError as exc:
        return _not_emailed(
            f"SSLCertVerificationError: the SMTP server at {host} presented a certificate that "
            f"did not verify ({exc.verify_message}); set MUTLS_ALERT_SMTP_CA_FILE to its CA"
        )
    except (OSError, smtplib.SMTPException) as exc:
        return _not_emailed(
            f"{type(exc).__name__}: the SMTP server at {host} did not take the message"
        )
    return Delivery(channel="email", delivered=True, attempts=1)


def _not_emailed(error: str) -> Delivery:
    """A failed e-mail delivery; ``error`` never holds the password."""
    return Delivery(channel="email", delivered=False, attempts=1, error=error)
