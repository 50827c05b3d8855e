"""The mTLS gateway: the provider's data plane in front of its HTTP API (DESIGN.md).

``server`` forks the workers, ``worker`` runs one event loop, ``connection`` handles one client
(TLS, HTTP/1.1, :func:`mutls.policy.authorize.authorize`, forwarding), ``upstream`` pools the
connections to the services behind, ``snapshot`` loads and watches what the gateway knows.
"""
