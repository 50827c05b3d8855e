"""Server certificates this node's own listeners get from the platform CA, renewed as they run.

The renewal listener (``POST /renew`` over mTLS, in the ``mutls up`` process) presents a
certificate from the platform CA, issued at start for ``MUTLS_SERVER_NAMES``. At two thirds of
its life (``MUTLS_SERVER_CERT_DAYS``, 90 by default) it is issued again and the listener's
context is swapped (:class:`mutls.tls.context.RotatingServerContext`): new handshakes get the new
certificate, open connections keep theirs. A failed issuance keeps the current certificate and
is retried a minute later. The gateway's workers renew theirs the same way
(``mutls.gateway.identity``).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from datetime import datetime

from mutls.ca.server_identity import RENEW_RETRY, renewal_time
from mutls.pki.material import Material
from mutls.tls.context import RotatingServerContext

__all__ = ["RenewingServerCertificate"]

log = logging.getLogger("mutls.up")


class RenewingServerCertificate:
    """One listener's certificate: issued now, renewed by :meth:`renew_if_due`."""

    def __init__(
        self,
        name: str,
        *,
        issue: Callable[[datetime], Material],
        build: Callable[[Material], ssl.SSLContext],
        clock: Callable[[], datetime],
    ) -> None:
        self.name = name
        self._issue, self._build, self._clock = issue, build, clock
        now = clock()
        self.material = issue(now)
        self.renew_at = renewal_time(self.material, now)
        self.context = RotatingServerContext(build(self.material))

    def renew_if_due(self) -> bool:
        """Issue and swap in a new certificate if this one is two thirds through its life;
        whether it did. Never raises: a failure is logged and retried after ``RENEW_RETRY``."""
        now = self._clock()
        if now < self.renew_at:
            return False
        try:
            material = self._issue(now)
            context = self._build(material)
        except Exception as error:
            self.renew_at = now + RENEW_RETRY
            log.warning(
                "issuing the %s a new certificate failed (%s: %s); keeping the current one, "
                "retrying in %d s",
                self.name,
                type(error).__name__,
                error,
                RENEW_RETRY.total_seconds(),
            )
            return False
        self.material = material
        self.renew_at = renewal_time(material, now)
        self.context.current = context
        leaf = material.leaf
        assert leaf is not None
        log.info(
            "%s certificate renewed: serial %X, valid until %s; new handshakes use it",
            self.name,
            leaf.serial_number,
            leaf.not_valid_after_utc.isoformat(),
        )
        return True
