"""The only place mutls builds TLS contexts."""

from __future__ import annotations

from mutls.tls.context import ClientCertMode, TlsPolicy, client_context, server_context

__all__ = ["ClientCertMode", "TlsPolicy", "client_context", "server_context"]
