"""The vault: encrypted client certificates, passphrases, CA bundles, OAuth2 credentials, strings.

Layers inside the package, lowest first:

* ``keyring``: the master keys, read from a file or ``MUTLS_MASTER_KEY``, never from the database.
* ``envelope``: AES-256-GCM per value, its data key wrapped by a master key version; sans-IO.
* ``payloads``: what a user uploads for each secret type, validated and split into the secret
  plaintext and the public metadata; sans-IO.
* ``keysource``, ``masterkeys``, ``secrets``: the service layer over the store.

Nothing is re-exported here, so importing one module never pulls in the database layer.
"""

from __future__ import annotations
