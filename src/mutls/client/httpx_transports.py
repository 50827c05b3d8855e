"""httpx transports: mTLS directly, or through the egress proxy; sync and async.

httpx 0.28 deprecated ``cert=``; a client identity goes in as ``verify=<ssl.SSLContext>``. These
transports build that context once per identity (:mod:`mutls.client.context`)::

    client = httpx.Client(transport=mtls_transport(cert="client.pem", key="client.key",
                                                   passphrase=pw, ca="partner-ca.pem"))
    client = httpx.Client(transport=egress_transport(), base_url="mutls://bank_api")

Mind httpx's environment proxies: with ``HTTPS_PROXY``/``ALL_PROXY`` set, a ``Client`` routes
matching URLs through a proxy transport of its own, not through ``transport=``. Pass
``trust_env=False`` to the client (or ``mounts=``) when such variables are set.

A failed TLS handshake raises :class:`ServerCertificateUntrusted` or
:class:`ClientCertificateRejected`: ``httpx.ConnectError`` subclasses that are also
:class:`~mutls.errors.MutlsError` with a code, message and hint. HTTP answers are returned
untouched.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Self

import httpx

from mutls.client.context import ClientTls, Source, resolve_client_tls
from mutls.client.egress import EgressConfig
from mutls.client.failures import TlsFailure, tls_failure
from mutls.client.secret import DEFAULT_ENVIRONMENT, client_tls_from_secret
from mutls.config import Settings
from mutls.errors import PartnerCertificateUntrusted, PartnerRejectedCertificate

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "AsyncEgressTransport",
    "AsyncMtlsTransport",
    "ClientCertificateRejected",
    "EgressTransport",
    "MtlsTransport",
    "ServerCertificateUntrusted",
    "async_egress_transport",
    "async_mtls_transport",
    "egress_transport",
    "mtls_transport",
]

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class ServerCertificateUntrusted(httpx.ConnectError, PartnerCertificateUntrusted):
    """The server's certificate failed verification (``partner_certificate_untrusted``)."""

    def __init__(self, failure: TlsFailure, *, request: httpx.Request) -> None:
        super().__init__(failure.message, request=request)
        self.hint, self.reason = failure.hint, failure.reason


class ClientCertificateRejected(httpx.ConnectError, PartnerRejectedCertificate):
    """The server refused the client certificate (``partner_rejected_certificate``)."""

    def __init__(self, failure: TlsFailure, *, request: httpx.Request) -> None:
        super().__init__(failure.message, request=request)
        self.hint, self.reason = failure.hint, failure.reason


def _translated(exc: httpx.TransportError, request: httpx.Request, tls: ClientTls) -> Exception:
    """Our error for a TLS failure inside ``exc``, or ``exc`` itself."""
    failure = tls_failure(exc, host=request.url.host, subject=tls.subject, trust=tls.trust)
    if failure is None:
        return exc
    if failure.error is PartnerCertificateUntrusted:
        return ServerCertificateUntrusted(failure, request=request)
    assert failure.error is PartnerRejectedCertificate
    return ClientCertificateRejected(failure, request=request)


# --- direct mTLS -------------------------------------------------------------------------------


class _ClientTlsTransport:
    """What the sync and async transports share: the client TLS identity and its one context.
    Mixed in before ``httpx.HTTPTransport`` or ``httpx.AsyncHTTPTransport``."""

    def __init__(
        self,
        cert: Source | None = None,
        key: Source | None = None,
        *,
        passphrase: str | bytes | None = None,
        ca: Source | None = None,
        verify: bool = True,
        tls: ClientTls | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        retries: int = 0,
        proxy: str | None = None,
    ) -> None:
        self.tls = resolve_client_tls(
            cert, key, passphrase=passphrase, ca=ca, verify=verify, tls=tls
        )
        super().__init__(  # type: ignore[call-arg]  # the httpx transport after this mixin
            verify=self.tls.context, trust_env=False, limits=limits, retries=retries, proxy=proxy
        )

    @classmethod
    def from_secret(
        cls,
        name: str,
        environment: str = DEFAULT_ENVIRONMENT,
        settings: Settings | None = None,
        *,
        verify: bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        retries: int = 0,
    ) -> Self:
        """A transport for the certificate secret ``name`` in ``environment`` (audited).

        Blocking (it reads the store): call it once at start-up, not per request."""
        tls = client_tls_from_secret(name, environment, settings=settings, verify=verify)
        return cls(tls=tls, limits=limits, retries=retries)

    @property
    def ssl_context(self) -> ssl.SSLContext:
        return self.tls.context

    def __repr__(self) -> str:
        return f"{type(self).__name__}(subject={self.tls.subject!r}, trust={self.tls.trust!r})"


class MtlsTransport(_ClientTlsTransport, httpx.HTTPTransport):
    """``httpx.HTTPTransport`` presenting a client certificate; one context per identity."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.TransportError as exc:
            translated = _translated(exc, request, self.tls)
            if translated is exc:
                raise
            raise translated from exc


class AsyncMtlsTransport(_ClientTlsTransport, httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` presenting a client certificate; one context per identity."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TransportError as exc:
            translated = _translated(exc, request, self.tls)
            if translated is exc:
                raise
            raise translated from exc


def mtls_transport(
    cert: Source | None = None,
    key: Source | None = None,
    *,
    passphrase: str | bytes | None = None,
    ca: Source | None = None,
    verify: bool = True,
    tls: ClientTls | None = None,
    limits: httpx.Limits = DEFAULT_LIMITS,
    retries: int = 0,
    proxy: str | None = None,
) -> MtlsTransport:
    """A sync httpx transport presenting the client certificate (see :class:`MtlsTransport`)."""
    return MtlsTransport(
        cert,
        key,
        passphrase=passphrase,
        ca=ca,
        verify=verify,
        tls=tls,
        limits=limits,
        retries=retries,
        proxy=proxy,
    )


def async_mtls_transport(
    cert: Source | None = None,
    key: Source | None = None,
    *,
    passphrase: str | bytes | None = None,
    ca: Source | None = None,
    verify: bool = True,
    tls: ClientTls | None = None,
    limits: httpx.Limits = DEFAULT_LIMITS,
    retries: int = 0,
    proxy: str | None = None,
) -> AsyncMtlsTransport:
    """The async twin of :func:`mtls_transport`."""
    return AsyncMtlsTransport(
        cert,
        key,
        passphrase=passphrase,
        ca=ca,
        verify=verify,
        tls=tls,
        limits=limits,
        retries=retries,
        proxy=proxy,
    )


# --- through the egress proxy --------------------------------------------------------------------


def _forwarded(egress: EgressConfig, request: httpx.Request) -> httpx.Request:
    """``request`` addressed to the proxy, with the token and environment headers."""
    url = httpx.URL(egress.url_for(str(request.url)))
    headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "host"]
    present = {k.lower() for k, _ in headers}
    headers.insert(0, ("Host", url.netloc.decode("ascii")))
    for name, value in egress.headers().items():
        if name.lower() not in present:  # a header set on the request wins
            headers.append((name, value))
    return httpx.Request(
        request.method, url, headers=headers, stream=request.stream, extensions=request.extensions
    )


class EgressTransport(httpx.BaseTransport):
    """Sends ``mutls://ROUTE/PATH?QUERY`` to the egress proxy, with the app token."""

    def __init__(
        self,
        token: str | None = None,
        proxy: str | None = None,
        environment: str | None = None,
        *,
        limits: httpx.Limits = DEFAULT_LIMITS,
        retries: int = 0,
    ) -> None:
        self.egress = EgressConfig.resolve(token=token, proxy=proxy, environment=environment)
        # trust_env=False: the hop to the egress proxy never goes through HTTP(S)_PROXY.
        self._transport = httpx.HTTPTransport(trust_env=False, limits=limits, retries=retries)

    def __repr__(self) -> str:
        return (
            f"EgressTransport(proxy={self.egress.proxy!r}, "
            f"environment={self.egress.environment!r}, token=<hidden>)"
        )

    def __enter__(self) -> EgressTransport:
        self._transport.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._transport.__exit__(exc_type, exc_value, traceback)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport.handle_request(_forwarded(self.egress, request))

    def close(self) -> None:
        self._transport.close()


class AsyncEgressTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`EgressTransport`."""

    def __init__(
        self,
        token: str | None = None,
        proxy: str | None = None,
        environment: str | None = None,
        *,
        limits: httpx.Limits = DEFAULT_LIMITS,
        retries: int = 0,
    ) -> None:
        self.egress = EgressConfig.resolve(token=token, proxy=proxy, environment=environment)
        self._transport = httpx.AsyncHTTPTransport(trust_env=False, limits=limits, retries=retries)

    def __repr__(self) -> str:
        return (
            f"AsyncEgressTransport(proxy={self.egress.proxy!r}, "
            f"environment={self.egress.environment!r}, token=<hidden>)"
        )

    async def __aenter__(self) -> AsyncEgressTransport:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc_value, traceback)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport.handle_async_request(_forwarded(self.egress, request))

    async def aclose(self) -> None:
        await self._transport.aclose()


def egress_transport(
    token: str | None = None,
    proxy: str | None = None,
    environment: str | None = None,
    *,
    limits: httpx.Limits = DEFAULT_LIMITS,
    retries: int = 0,
) -> EgressTransport:
    """A sync httpx transport to the egress proxy: ``httpx.Client(transport=egress_transport(),
    base_url="mutls://bank_api")``."""
    return EgressTransport(token, proxy, environment, limits=limits, retries=retries)


def async_egress_transport(
    token: str | None = None,
    proxy: str | None = None,
    environment: str | None = None,
    *,
    limits: httpx.Limits = DEFAULT_LIMITS,
    retries: int = 0,
) -> AsyncEgressTransport:
    """The async twin of :func:`egress_transport`."""
    return AsyncEgressTransport(token, proxy, environment, limits=limits, retries=retries)
