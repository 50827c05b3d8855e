"""Name why a TLS connection to a partner failed, from what OpenSSL knows about it.

OpenSSL reports a failed handshake as a queue of ``(library, function, reason)`` strings. Two
kinds matter to a developer and are told apart here:

* **We refused the partner**: reason ``certificate verify failed``. The verification result on
  the connection says why (expired, unknown issuer, hostname mismatch, ...):
  ``partner_certificate_untrusted``.
* **The partner refused us**: an alert it sent, read as ``... alert <name>``. ``certificate
  required`` (TLS 1.3), or ``handshake failure`` when we sent no certificate (TLS 1.2 servers
  that require one say that), is ``partner_requires_client_certificate``; ``unknown ca``,
  ``bad certificate``, ``certificate expired``, ``certificate revoked``, ``certificate unknown``,
  ``access denied`` and ``decrypt error`` after we sent one are
  ``partner_rejected_certificate`` with the alert in ``reason``; a version or cipher mismatch is
  ``partner_tls_handshake_failed``.

In TLS 1.3 the server checks our certificate after our side of the handshake is complete, so its
alert arrives on the first read of the answer. The partner connection therefore translates
errors this way until the first byte of the first answer, not only during the handshake.
"""

from __future__ import annotations

import re

from cryptography import x509
from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from mutls.errors import (
    PartnerCertificateUntrusted,
    PartnerConnectionClosed,
    PartnerError,
    PartnerRejectedCertificate,
    PartnerRequiresClientCertificate,
    PartnerTlsHandshakeFailed,
)

__all__ = ["alert_of", "closed_after_handshake", "translate_tls_error", "verify_failure"]

_CERTIFICATE_ALERTS = {
    "unknown ca": "unknown_ca",
    "bad certificate": "bad_certificate",
    "certificate expired": "certificate_expired",
    "certificate revoked": "certificate_revoked",
    "certificate unknown": "certificate_unknown",
    "unsupported certificate": "unsupported_certificate",
    "access denied": "access_denied",
    "decrypt error": "decrypt_error",
}
_NEGOTIATION = {
    "protocol version": "protocol_version",
    "insufficient security": "insufficient_security",
    "no protocols available": "no_protocols_available",
    "wrong version number": "wrong_version_number",
    "unsupported protocol": "unsupported_protocol",
    "no shared cipher": "no_shared_cipher",
    "no cipher match": "no_cipher_match",
}


def _reasons(error: SSL.Error) -> list[str]:
    try:
        return [str(item[2]).lower() for item in error.args[0] if len(item) >= 3]
    except (IndexError, TypeError):
        return []


_ALERT = re.compile(r"^(?:sslv3|tlsv1[0-9]*|tls|ssl) alert (.+)$")


def alert_of(error: SSL.Error) -> str | None:
    """The alert the peer sent (``unknown ca``, ``certificate required``, ...), if any. OpenSSL
    spells it ``sslv3 alert ...``, ``tlsv1 alert ...``, ``tlsv13 alert ...`` or (3.2 and later,
    as in the ``cryptography`` wheel) ``tls alert ...``."""
    for reason in _reasons(error):
        found = _ALERT.match(reason)
        if found:
            return found.group(1).strip()
    return None


def verify_failure(connection: SSL.Connection) -> str:
    """Why our check of the partner's certificate failed, in OpenSSL's words."""
    code = _lib.SSL_get_verify_result(connection._ssl)
    text = _ffi.string(_lib.X509_verify_cert_error_string(code)).decode("ascii", "replace")
    return f"{text} (X509 error {code})"


def translate_tls_error(
    error: SSL.Error,
    connection: SSL.Connection,
    *,
    sent_certificate: bool,
    server: str,
) -> PartnerError:
    """The partner error for a failed handshake (or a first read) with ``server``."""
    reasons = _reasons(error)
    if "certificate verify failed" in reasons:
        why = verify_failure(connection)
        return PartnerCertificateUntrusted(
            f"the partner {server} presented a server certificate that fails our check: {why}",
            reason=why.split(" (X509", 1)[0],
        )
    alert = alert_of(error)
    if alert is not None:
        if alert == "certificate required" or (
            alert == "handshake failure" and not sent_certificate
        ):
            return PartnerRequiresClientCertificate(
                f"the partner {server} requires a client certificate and the route sent none "
                f"(TLS alert {alert})",
                reason=alert.replace(" ", "_"),
            )
        code = _CERTIFICATE_ALERTS.get(alert)
        if code is not None and sent_certificate:
            return PartnerRejectedCertificate(
                f"the partner {server} rejected our client certificate (TLS alert {alert})",
                reason=code,
            )
        negotiation = _NEGOTIATION.get(alert)
        return PartnerTlsHandshakeFailed(
            f"the TLS handshake with {server} failed: the partner sent the alert {alert}",
            reason=negotiation or alert.replace(" ", "_"),
        )
    for reason in reasons:
        negotiation = _NEGOTIATION.get(reason)
        if negotiation is not None:
            return PartnerTlsHandshakeFailed(
                f"the TLS handshake with {server} failed: {reason} (no TLS version or cipher "
                "suite both sides accept)",
                reason=negotiation,
            )
    if not reasons or "unexpected eof while reading" in reasons:
        return PartnerConnectionClosed(
            f"the partner {server} closed the connection during the TLS handshake",
            hint="the partner may require a client certificate it did not ask for in the "
            "handshake, allow only some source IPs, or not speak TLS on this port; "
            "`mutls doctor URL` walks the connection",
            reason="closed_during_handshake",
        )
    return PartnerTlsHandshakeFailed(
        f"the TLS handshake with {server} failed: {reasons[-1]}",
        reason=reasons[-1].replace(" ", "_"),
    )


def _name(name: crypto.X509Name) -> str:
    return x509.Name.from_rfc4514_string(
        ",".join(
            f"{k.decode()}={v.decode('utf-8', 'replace')}"
            for k, v in reversed(name.get_components())
        )
    ).rfc4514_string()


def closed_after_handshake(
    connection: SSL.Connection, *, sent_certificate: bool, server: str
) -> PartnerError:
    """The partner completed the handshake and then closed without a word (or reset the
    connection before its TLS alert could be read). In TLS 1.3 that is how a server refuses a
    client certificate; the CA names it asked for tell which case this is."""
    try:
        accepted = [_name(n) for n in connection.get_client_ca_list() or []]
    except ValueError:
        accepted = []
    listed = "; ".join(accepted[:4]) + (" ..." if len(accepted) > 4 else "")
    ours = connection.get_certificate() if sent_certificate else None
    if ours is None:
        if accepted:
            return PartnerRequiresClientCertificate(
                f"the partner {server} asked for a client certificate (issued by {listed}) and "
                "closed the connection when the route sent none",
                reason="certificate_required",
            )
        return PartnerConnectionClosed(
            f"the partner {server} closed the connection right after the TLS handshake, "
            "without answering",
            reason="closed_after_handshake",
        )
    issuer = _name(ours.get_issuer())
    if accepted and issuer not in accepted:
        return PartnerRejectedCertificate(
            f"the partner {server} closed the connection after the handshake: it accepts client "
            f"certificates issued by {listed}, and ours was issued by {issuer}",
            hint="use the certificate the partner issued you, or ask the partner to trust your CA",
            reason="unknown_ca",
        )
    return PartnerRejectedCertificate(
        f"the partner {server} closed the connection right after the handshake without "
        "answering: it most likely refused our client certificate",
        reason="closed_after_handshake",
    )
