"""HTTP/1.1 proxy plumbing that both data planes share (``gateway/`` and ``egress/``).

Reading a client's requests (``reading``), relaying an upstream's answers over keep-alive
connections (``upstream``), the request-path check and JSON answers (``http``), latency buckets
(``latency``), and the watcher that swaps a data plane's snapshot when the store changes
(``watcher``). Nothing here knows about certificates, accounts, routes or secrets.
"""
