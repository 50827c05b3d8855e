"""Python clients for mTLS APIs: requests adapters and httpx transports (docs/python-clients.md).

Directly, with a client certificate from files, bytes or the vault::

    session.mount("https://api.partner.example/", MtlsAdapter(cert="client.p12", passphrase=pw))
    httpx.Client(transport=mtls_transport(cert="client.pem", key="client.key", passphrase=pw))

Or through the egress proxy, by route name::

    egress_session().get("mutls://bank_api/accounts", params={"x": 1})
    httpx.Client(transport=egress_transport(), base_url="mutls://bank_api")

The requests names need ``requests`` (``pip install 'mutls[requests]'``) and are imported on
first use, so ``import mutls.client`` works without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mutls.client.context import (
    ClientTls,
    InsecureTlsWarning,
    clear_context_cache,
    client_tls,
)
from mutls.client.egress import EgressConfig
from mutls.client.httpx_transports import (
    AsyncEgressTransport,
    AsyncMtlsTransport,
    EgressTransport,
    MtlsTransport,
    async_egress_transport,
    async_mtls_transport,
    egress_transport,
    mtls_transport,
)
from mutls.client.secret import client_tls_from_secret

if TYPE_CHECKING:
    from mutls.client.requests_adapters import (
        EgressAdapter,
        EgressSession,
        MtlsAdapter,
        egress_session,
        mtls_session,
    )

__all__ = [
    "AsyncEgressTransport",
    "AsyncMtlsTransport",
    "ClientTls",
    "EgressAdapter",
    "EgressConfig",
    "EgressSession",
    "EgressTransport",
    "InsecureTlsWarning",
    "MtlsAdapter",
    "MtlsTransport",
    "async_egress_transport",
    "async_mtls_transport",
    "clear_context_cache",
    "client_tls",
    "client_tls_from_secret",
    "egress_session",
    "egress_transport",
    "mtls_session",
    "mtls_transport",
]

_REQUESTS_NAMES = frozenset(
    {"EgressAdapter", "EgressSession", "MtlsAdapter", "egress_session", "mtls_session"}
)


def __getattr__(name: str) -> object:
    """The requests adapters, imported when first asked for (requests is an optional extra)."""
    if name in _REQUESTS_NAMES:
        try:
            module = importlib.import_module("mutls.client.requests_adapters")
        except ModuleNotFoundError as exc:
            if exc.name != "requests":
                raise
            raise ImportError(
                f"mutls.client.{name} needs the requests package: pip install 'mutls[requests]'"
            ) from None
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
