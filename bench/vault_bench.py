"""The vault's envelope encryption and its store operations, side by side with their floors.

Run it with ``.venv/bin/python bench/vault_bench.py`` (``make bench`` runs it after the PKI bench).

Rows, each with the baseline it is judged against (same machine, same process, alternating):

- seal a 2 KiB certificate value: mutls ``seal`` (fresh data key, value encryption, data key
  wrap, both with bound additional data) against one raw AES-256-GCM encryption;
- open it: ``open_sealed`` (unwrap, then decrypt) against one raw AES-256-GCM decryption;
- rewrap a data key (master key rotation, per value) against one raw decrypt plus encrypt of 32
  bytes;
- store one secret (``create_secret``: validation, parsing, sealing and the audit row in one
  transaction, SQLite) against the floor of one SQLite ``BEGIN IMMEDIATE``/``INSERT``/``COMMIT``
  of the same ciphertext size.

This is a measurement, never a test: nothing here fails on a number.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mutls.accounts.principal import Principal
from mutls.store.database import Database
from mutls.store.migrate import upgrade
from mutls.testing import TestCA
from mutls.vault.envelope import Binding, open_sealed, rewrap, seal
from mutls.vault.keyring import Keyring, generate_master_key
from mutls.vault.keysource import KeySource
from mutls.vault.masterkeys import ensure_registered
from mutls.vault.secrets import create_secret

Op = Callable[[], object]


def per_op(op: Op, n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        op()
    return (time.perf_counter_ns() - start) / n / 1000


def compare(mutls_op: Op, base_op: Op, *, n: int, rounds: int) -> tuple[float, float]:
    ours: list[float] = []
    theirs: list[float] = []
    for r in range(rounds):
        pair = [(ours, mutls_op), (theirs, base_op)]
        for sink, op in pair if r % 2 == 0 else reversed(pair):
            sink.append(per_op(op, n))
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()

    now = datetime.now(UTC)
    master = {1: generate_master_key(1), 2: generate_master_key(2)}
    keyring, keyring2 = Keyring(master, 1), Keyring(master, 2)
    binding = Binding(
        secret_id="sec_bench", environment="production", version=1, secret_type="certificate"
    )
    value = os.urandom(2048)
    sealed = seal(value, binding=binding, keyring=keyring)
    raw = AESGCM(AESGCM.generate_key(256))
    nonce = os.urandom(12)
    raw_ct = raw.encrypt(nonce, value, b"aad")
    small = raw.encrypt(nonce, os.urandom(32), b"aad")

    rows: list[tuple[str, float, float]] = []
    rows.append(
        (
            "seal 2 KiB value",
            *compare(
                lambda: seal(value, binding=binding, keyring=keyring),
                lambda: raw.encrypt(os.urandom(12), value, b"aad"),
                n=2000,
                rounds=args.rounds,
            ),
        )
    )
    rows.append(
        (
            "open 2 KiB value",
            *compare(
                lambda: open_sealed(sealed, binding=binding, keyring=keyring),
                lambda: raw.decrypt(nonce, raw_ct, b"aad"),
                n=2000,
                rounds=args.rounds,
            ),
        )
    )
    rows.append(
        (
            "rewrap one data key",
            *compare(
                lambda: rewrap(sealed, binding=binding, keyring=keyring2),
                lambda: raw.encrypt(os.urandom(12), raw.decrypt(nonce, small, b"aad"), b"aad"),
                n=2000,
                rounds=args.rounds,
            ),
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        db = Database(f"sqlite:///{base / 'mutls.db'}")
        upgrade(db)
        keys = KeySource(path=base / "master.key")
        keys.create()
        ensure_registered(db, keys, now=now)
        ca = TestCA(now=now)
        identity = ca.issue("bench.client.example")
        fields = {
            "certificate_pem": identity.chain_pem.decode(),
            "private_key_pem": identity.key_pem().decode(),
        }
        admin = Principal.system("bench")
        counter = iter(range(10**9))

        def store() -> object:
            return create_secret(
                db,
                keys,
                admin,
                name=f"s{next(counter)}",
                secret_type="certificate",
                values={"production": fields},
                now=now,
            )

        floor = sqlite3.connect(base / "floor.db", isolation_level=None)
        floor.execute("PRAGMA journal_mode=WAL")
        floor.execute("PRAGMA synchronous=NORMAL")
        floor.execute("CREATE TABLE v (id INTEGER PRIMARY KEY, ct BLOB)")
        blob = os.urandom(len(fields["certificate_pem"]) + len(fields["private_key_pem"]) + 64)

        def floor_insert() -> object:
            floor.execute("BEGIN IMMEDIATE")
            floor.execute("INSERT INTO v (ct) VALUES (?)", (blob,))
            return floor.execute("COMMIT")

        rows.append(
            (
                "store a certificate secret (SQLite)",
                *compare(store, floor_insert, n=30, rounds=args.rounds),
            )
        )
        floor.close()
        db.dispose()

    print(f"{'operation':<40} {'mutls µs':>10} {'baseline µs':>12} {'ratio':>7}")
    for name, ours, theirs in rows:
        print(f"{name:<40} {ours:>10.1f} {theirs:>12.1f} {ours / theirs:>6.2f}x")


if __name__ == "__main__":
    main()
