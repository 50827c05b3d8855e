"""requests adapters: mTLS in one import, directly or through the egress proxy.

Needs ``requests`` (``pip install 'mutls[requests]'``); the rest of ``mutls.client`` does not.

* :class:`MtlsAdapter` presents a client certificate itself, from files or bytes in any format
  and with a key passphrase, which requests alone cannot do (psf/requests#1573)::

      session = requests.Session()
      session.mount("https://api.partner.example/", MtlsAdapter(cert="client.p12", passphrase=pw))

  One cached ``ssl.SSLContext`` (:mod:`mutls.client.context`) serves every pool, connection and
  request of the adapter, and of every other adapter built from the same certificate. The
  adapter owns TLS for what it is mounted on: a request's own ``cert=`` is refused (it would load
  another identity into the shared context), as is ``verify=False`` on an adapter that verifies;
  a CA bundle path from ``verify=`` or ``REQUESTS_CA_BUNDLE`` is ignored in favour of the
  adapter's ``ca=``.
* :class:`EgressAdapter` sends ``mutls://ROUTE/PATH`` to the egress proxy with the app token
  (:mod:`mutls.client.egress`). :func:`egress_session` also accepts ``params=`` on such URLs,
  which a bare mount cannot: requests leaves URLs of unknown schemes untouched and drops
  ``params=`` for them.

A failed TLS handshake with the server raises :class:`ServerCertificateUntrusted` or
:class:`ClientCertificateRejected`: still a ``requests.exceptions.SSLError`` for code that
catches requests' errors, and a :class:`~mutls.errors.MutlsError` with a code, message and hint.
The partner's HTTP answers, 4xx and 5xx included, are returned untouched.
"""

from __future__ import annotations

import copy
import ssl
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_POOLBLOCK, DEFAULT_POOLSIZE, HTTPAdapter
from requests.models import PreparedRequest, Response
from urllib3.util.retry import Retry

from mutls.client.context import ClientTls, Source, resolve_client_tls
from mutls.client.egress import SCHEME, EgressConfig
from mutls.client.failures import TlsFailure, tls_failure
from mutls.client.secret import DEFAULT_ENVIRONMENT, client_tls_from_secret
from mutls.config import Settings
from mutls.errors import (
    InvalidArgument,
    PartnerCertificateUntrusted,
    PartnerRejectedCertificate,
)

__all__ = [
    "ClientCertificateRejected",
    "EgressAdapter",
    "EgressSession",
    "MtlsAdapter",
    "ServerCertificateUntrusted",
    "egress_session",
    "mtls_session",
]


class ServerCertificateUntrusted(requests.exceptions.SSLError, PartnerCertificateUntrusted):
    """The server's certificate failed verification (``partner_certificate_untrusted``)."""

    def __init__(self, failure: TlsFailure, *, request: PreparedRequest) -> None:
        requests.exceptions.SSLError.__init__(self, failure.message, request=request)
        self.message, self.hint, self.reason = failure.message, failure.hint, failure.reason

    def __str__(self) -> str:
        return self.message


class ClientCertificateRejected(requests.exceptions.SSLError, PartnerRejectedCertificate):
    """The server refused the client certificate (``partner_rejected_certificate``)."""

    def __init__(self, failure: TlsFailure, *, request: PreparedRequest) -> None:
        requests.exceptions.SSLError.__init__(self, failure.message, request=request)
        self.message, self.hint, self.reason = failure.message, failure.hint, failure.reason

    def __str__(self) -> str:
        return self.message


class MtlsAdapter(HTTPAdapter):
    """A requests transport adapter that presents a client certificate."""

    def __init__(
        self,
        cert: Source | None = None,
        key: Source | None = None,
        *,
        passphrase: str | bytes | None = None,
        ca: Source | None = None,
        verify: bool = True,
        tls: ClientTls | None = None,
        pool_connections: int = DEFAULT_POOLSIZE,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        max_retries: int | Retry = 0,
        pool_block: bool = DEFAULT_POOLBLOCK,
    ) -> None:
        # Before HTTPAdapter.__init__, which calls init_poolmanager.
        self.tls = resolve_client_tls(
            cert, key, passphrase=passphrase, ca=ca, verify=verify, tls=tls
        )
        super().__init__(pool_connections, pool_maxsize, max_retries, pool_block)

    @classmethod
    def from_secret(
        cls,
        name: str,
        environment: str = DEFAULT_ENVIRONMENT,
        settings: Settings | None = None,
        *,
        verify: bool = True,
        pool_connections: int = DEFAULT_POOLSIZE,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        max_retries: int | Retry = 0,
    ) -> MtlsAdapter:
        """An adapter for the certificate secret ``name`` in ``environment`` (audited)."""
        tls = client_tls_from_secret(name, environment, settings=settings, verify=verify)
        return cls(
            tls=tls,
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            max_retries=max_retries,
        )

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The one context every connection of this adapter uses."""
        return self.tls.context

    @property
    def _cert_reqs(self) -> str:
        return "CERT_REQUIRED" if self.tls.verifies else "CERT_NONE"

    def __repr__(self) -> str:
        return f"MtlsAdapter(subject={self.tls.subject!r}, trust={self.tls.trust!r})"

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("an MtlsAdapter holds a TLS context with a private key; it cannot pickle")

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = DEFAULT_POOLBLOCK, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["ssl_context"] = self.tls.context
        pool_kwargs["cert_reqs"] = self._cert_reqs
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through an HTTP(S) proxy the TLS to the server is tunnelled: same context, same identity.
        proxy_kwargs["ssl_context"] = self.tls.context
        proxy_kwargs["cert_reqs"] = self._cert_reqs
        return super().proxy_manager_for(proxy, **proxy_kwargs)

    def build_connection_pool_key_attributes(
        self, request: PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, _ = super().build_connection_pool_key_attributes(request, True, None)
        return host_params, {"ssl_context": self.tls.context, "cert_reqs": self._cert_reqs}

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # requests would point the pool at certifi's bundle, which urllib3 then loads into the
        # shared context, widening its trust for every later connection. The context decides.
        conn.cert_reqs = self._cert_reqs
        conn.ca_certs = None
        conn.ca_cert_dir = None

    def _check_request_tls(self, verify: Any, cert: Any) -> None:
        if cert is not None:
            raise InvalidArgument(
                "expected the client certificate to come from the MtlsAdapter only; the request "
                "(or session.cert) names another with cert=",
                hint="drop cert= from the request and the session; mount another MtlsAdapter "
                "for a host that needs another certificate",
            )
        if verify is False and self.tls.verifies:
            raise InvalidArgument(
                "expected the server to be verified by the MtlsAdapter's settings; the request "
                "(or session.verify) asks for verify=False",
                hint="to trust a private CA pass MtlsAdapter(..., ca=BUNDLE); to switch "
                "verification off for a test server pass MtlsAdapter(..., verify=False)",
            )

    def send(  # noqa: PLR0917 - HTTPAdapter.send's own signature, which requests calls
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> Response:
        self._check_request_tls(verify, cert)
        try:
            return super().send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )
        except requests.exceptions.ConnectionError as exc:
            host = urlsplit(request.url or "").hostname or "the server"
            failure = tls_failure(exc, host=host, subject=self.tls.subject, trust=self.tls.trust)
            if failure is None:
                raise
            if failure.error is PartnerCertificateUntrusted:
                raise ServerCertificateUntrusted(failure, request=request) from exc
            assert failure.error is PartnerRejectedCertificate
            raise ClientCertificateRejected(failure, request=request) from exc


def mtls_session(
    cert: Source | None = None,
    key: Source | None = None,
    *,
    passphrase: str | bytes | None = None,
    ca: Source | None = None,
    verify: bool = True,
    tls: ClientTls | None = None,
    prefix: str = "https://",
) -> requests.Session:
    """A session whose requests to ``prefix`` (default: every HTTPS URL) present the certificate."""
    session = requests.Session()
    session.mount(
        prefix, MtlsAdapter(cert, key, passphrase=passphrase, ca=ca, verify=verify, tls=tls)
    )
    return session


class EgressAdapter(HTTPAdapter):
    """Sends ``mutls://ROUTE/PATH?QUERY`` to the egress proxy, with the app token.

    Mount it on ``mutls://``: ``session.mount("mutls://", EgressAdapter())``.
    """

    def __init__(
        self,
        token: str | None = None,
        proxy: str | None = None,
        environment: str | None = None,
        *,
        pool_connections: int = DEFAULT_POOLSIZE,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        max_retries: int | Retry = 0,
        pool_block: bool = DEFAULT_POOLBLOCK,
    ) -> None:
        self.egress = EgressConfig.resolve(token=token, proxy=proxy, environment=environment)
        super().__init__(pool_connections, pool_maxsize, max_retries, pool_block)

    def __repr__(self) -> str:
        return (
            f"EgressAdapter(proxy={self.egress.proxy!r}, "
            f"environment={self.egress.environment!r}, token=<hidden>)"
        )

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("an EgressAdapter holds an app token; it cannot pickle")

    def send(  # noqa: PLR0917 - HTTPAdapter.send's own signature, which requests calls
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> Response:
        forwarded = request.copy()
        forwarded.url = self.egress.url_for(request.url or "")
        for name, value in self.egress.headers().items():
            if name not in forwarded.headers:  # a header set on the request wins
                forwarded.headers[name] = value
        try:
            # proxies={}: the hop to the egress proxy never goes through HTTP(S)_PROXY.
            response = super().send(
                forwarded, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies={}
            )
        except requests.exceptions.RequestException as exc:
            exc.request = request  # the caller's request: the copy carries the token
            raise
        response.request = request
        return response


class EgressSession(requests.Session):
    """A session for the egress proxy that also takes ``params=`` on ``mutls://`` URLs."""

    def __init__(self, adapter: EgressAdapter) -> None:
        super().__init__()
        self.egress_adapter = adapter
        self.mount(f"{SCHEME}://", adapter)
        # Redirects and hand-built URLs to the proxy itself carry the token too.
        self.mount(adapter.egress.proxy + "/", adapter)

    def __repr__(self) -> str:
        return f"EgressSession({self.egress_adapter!r})"

    def prepare_request(self, request: requests.Request) -> PreparedRequest:
        url = request.url
        if isinstance(url, str) and url[: len(SCHEME) + 3].lower() == f"{SCHEME}://":
            # Map before requests prepares it: params=, IDNA and quoting then work as for http.
            request = copy.copy(request)
            request.url = self.egress_adapter.egress.url_for(url)
        return super().prepare_request(request)


def egress_session(
    token: str | None = None, proxy: str | None = None, environment: str | None = None
) -> EgressSession:
    """A session that sends ``mutls://ROUTE/...`` through the egress proxy."""
    return EgressSession(EgressAdapter(token, proxy, environment))
