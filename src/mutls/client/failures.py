"""Name the TLS failure inside a requests or httpx exception, so the adapters can say what broke.

requests and httpx wrap OpenSSL's error two or three levels deep (``requests.SSLError`` around
urllib3's ``MaxRetryError`` around ``ssl.SSLCertVerificationError``; ``httpx.ConnectError`` from
``httpcore.ConnectError`` from ``ssl.SSLError``). :func:`tls_failure` digs the OpenSSL error out
and says which of two things happened:

* the **server's certificate was not trusted** (chain, dates or name):
  ``partner_certificate_untrusted``, with OpenSSL's own words ("unable to get local issuer
  certificate", "Hostname mismatch");
* the **server refused our client certificate** with a TLS alert (unknown CA, bad or expired
  certificate, certificate required): ``partner_rejected_certificate``, with the alert's name.

Anything else (refused connections, timeouts, HTTP answers) is none of this module's business.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass

from mutls.errors import PartnerCertificateUntrusted, PartnerError, PartnerRejectedCertificate

__all__ = ["TlsFailure", "tls_failure"]

# OpenSSL's reason codes for the alerts a server sends when it does not accept the client's
# certificate (TLS 1.2 alerts come during the handshake; TLS 1.3 ones on the first read).
_REJECTION_ALERTS = {
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad certificate",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "unsupported certificate",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "certificate revoked",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "certificate expired",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate unknown",
    "TLSV1_ALERT_UNKNOWN_CA": "unknown CA",
    "TLSV1_ALERT_ACCESS_DENIED": "access denied",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "certificate required",
}
_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH
_MAX_DEPTH = 16


@dataclass(frozen=True, kw_only=True)
class TlsFailure:
    """What went wrong, as one of our error classes would say it."""

    error: type[PartnerError]
    message: str
    hint: str
    reason: str

    def exception(self) -> PartnerError:
        return self.error(self.message, hint=self.hint, reason=self.reason)


def tls_failure(exc: BaseException, *, host: str, subject: str, trust: str) -> TlsFailure | None:
    """The TLS failure inside ``exc`` (a client library's exception), or None if there is none.

    ``subject`` is the client certificate's subject; ``trust`` says what the server was checked
    against (``ClientTls.trust``).
    """
    for inner in _causes(exc):
        if isinstance(inner, ssl.SSLCertVerificationError):
            why = inner.verify_message or inner.reason or "verification failed"
            if inner.verify_code == _HOSTNAME_MISMATCH:
                hint = (
                    f"connect with a host name listed in the server certificate's "
                    f"subjectAltName; {host} is not one of them"
                )
            else:
                hint = (
                    "pass ca= with the CA bundle that issued the server's certificate (the "
                    "partner publishes it), or store it in the secret's ca_bundle_pem"
                )
            return TlsFailure(
                error=PartnerCertificateUntrusted,
                message=f"expected the server certificate of {host} to be trusted by {trust}; "
                f"verification failed: {why}",
                hint=hint,
                reason=str(why),
            )
        if isinstance(inner, ssl.SSLError) and inner.reason in _REJECTION_ALERTS:
            alert = _REJECTION_ALERTS[inner.reason]
            return TlsFailure(
                error=PartnerRejectedCertificate,
                message=f"expected {host} to accept the client certificate {subject}; it "
                f"refused it with the TLS alert '{alert}'",
                hint="check that the server trusts the CA that issued this certificate (or has "
                "it registered), that it is the certificate for this environment, and that it "
                "is neither expired nor revoked",
                reason=alert,
            )
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, urllib3's ``reason``, exception args."""
    seen: set[int] = set()
    stack = [exc]
    while stack and len(seen) < _MAX_DEPTH:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested: list[object] = [
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            *current.args,
        ]
        stack.extend(n for n in reversed(nested) if isinstance(n, BaseException))
