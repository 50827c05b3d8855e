"""The CA service's hot operations, side by side with their floors: issuing and answering OCSP.

Run it with ``.venv/bin/python bench/ca_bench.py`` (``make bench`` runs it after the vault bench).

Rows, each with the baseline it is judged against (same machine, same process, one thread,
alternating rounds, medians):

- **issue a certificate from a CSR** through the full service path,
  ``mutls.ca.issuance.issue_certificate`` (CSR parsing and the issuance policy, signing, the quota
  check under the account lock, the certificate row and its hash-chained audit row in one
  transaction), on SQLite and, if it answers, on PostgreSQL at ``--postgres`` (a scratch database
  is created and dropped). The baseline is a bare ``mutls.pki.authority.sign_csr`` of an
  already-parsed CSR: pure signing, no policy, no store. The CA is an EC P-256 intermediate from
  ``mutls.testing.TestCA``; CSRs (EC P-256) are made before timing and reused. Each account gets
  five certificates, the default quota, so every issuance sees what a real account holds (0 to 4
  live certificates) rather than a quota raised to thousands;
- **answer an OCSP request from the pre-signed cache**: ``mutls.ca.publication.Publisher.ocsp``
  given the DER request of a known, good certificate (parse, issuer check, cache hit; a real
  clock, so the once-a-second revision check is included). The baseline is what an uncached
  responder does for the same request: parse it with ``cryptography`` and build and sign a fresh
  response with the same delegated signer (``ocsp.OCSPResponseBuilder``).

Ops/s are one thread on one core: 1e6 / median µs.

``--workers 2,8`` adds **concurrent issuance** rows: N worker processes (one thread each, so the
GIL is not the limit) issue against the same database at once, started together on a barrier;
throughput is every worker's issuances over the wall time from the barrier to the last finish,
median over ``--rounds`` (at most 5) rounds. On PostgreSQL this is where commits can overlap
(group commit); every issuance still commits on its own, and every audited write still takes the
audit chain's head row, so the figure shows how far that serialisation lets N writers go. "per
core" divides by this machine's CPU count (the database server shares those cores).

This is a measurement, never a test: nothing here fails on a number. See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cryptography
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from mutls.accounts.mtls import update_mtls_settings
from mutls.accounts.principal import Principal
from mutls.accounts.service import create_account
from mutls.ca.issuance import issue_certificate
from mutls.ca.issuer import PLATFORM_CA, IssuingCA
from mutls.ca.publication import Publisher, issuer_urls
from mutls.pki.authority import Profile, sign_csr
from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.keys import generate_key
from mutls.pki.ocsp import build_ocsp_signer
from mutls.store.database import Database
from mutls.store.ids import new_id
from mutls.store.migrate import upgrade
from mutls.store.models import Account, CertificateAuthority
from mutls.testing import TestCA

Op = Callable[[], object]
ADMIN = Principal.system("bench")
PER_ACCOUNT = 5  # the default live-certificate quota
VALIDITY = timedelta(days=365)
CSR_POOL = 200


def per_op(op: Op, n: int) -> float:
    """Microseconds per call over ``n`` calls, the garbage collector paused (as ``timeit``)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(n):
            op()
        return (time.perf_counter_ns() - start) / n / 1000
    finally:
        gc.enable()


def compare(mutls_op: Op, base_op: Op, *, n: int, rounds: int) -> tuple[float, float]:
    ours: list[float] = []
    theirs: list[float] = []
    for r in range(rounds):
        pair = [(ours, mutls_op), (theirs, base_op)]
        for sink, op in pair if r % 2 == 0 else reversed(pair):
            sink.append(per_op(op, n))
    return statistics.median(ours), statistics.median(theirs)


def register_issuer(db: Database, ca: TestCA, now: datetime) -> IssuingCA:
    """The TestCA's intermediate as the platform CA row, as ``mutls up`` would register it."""
    chain = (ca.issuer, ca.root)
    row = CertificateAuthority(
        id=new_id("ca"),
        name=PLATFORM_CA,
        kind="platform",
        account_id=None,
        chain_pem="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain),
        subject="bench",
        fingerprint_sha256="00",
        not_after=ca.issuer.not_valid_after_utc,
        subject_patterns=[],
        crl_number=0,
        created_at=now,
        created_by="bench",
    )
    with db.write() as session:
        session.add(row)
    return IssuingCA(
        ca_id=row.id, name=PLATFORM_CA, certificate=ca.issuer, chain=chain, key=ca.issuer_key
    )


def account_slots(db: Database, count: int, now: datetime, label: str) -> Iterator[str]:
    """Enough mTLS-enabled accounts for ``count`` issuances, each id yielded PER_ACCOUNT times."""
    accounts = []
    for i in range(count // PER_ACCOUNT + 1):
        account = create_account(db, ADMIN, name=f"{label.lower()}-{i}", display_name=None, now=now)
        update_mtls_settings(db, ADMIN, account.id, enabled=True, now=now)
        accounts.append(account.id)
    return (a for a in accounts for _ in range(PER_ACCOUNT))


def issuance_row(
    db: Database,
    issuer: IssuingCA,
    csrs: list[x509.CertificateSigningRequest],
    *,
    label: str,
    n: int,
    rounds: int,
    now: datetime,
) -> tuple[str, float, float]:
    slots = account_slots(db, n * rounds + 10, now, label)
    pems = itertools.cycle([c.public_bytes(serialization.Encoding.PEM) for c in csrs])
    objects = itertools.cycle(csrs)
    urls = issuer_urls("https://pki.bench.example")

    def service() -> object:
        return issue_certificate(
            db, issuer, ADMIN, next(slots), next(pems), now=now, validity_days=365, urls=urls
        )

    def bare() -> object:
        return sign_csr(
            next(objects),
            issuer=issuer.certificate,
            issuer_key=issuer.key,
            profile=Profile.CLIENT,
            now=now,
            validity=VALIDITY,
            urls=urls,
        )

    per_op(service, 5)  # warm up: first statements, connection pool
    return (f"issue from a CSR ({label})", *compare(service, bare, n=n, rounds=rounds))


class _Issuers:
    """``IssuerSource`` over an already-loaded CA (``IssuerCache`` reads it from the vault)."""

    def __init__(self, issuer: IssuingCA) -> None:
        self._issuer = issuer

    def platform(self, *, now: datetime) -> IssuingCA:
        return self._issuer


def ocsp_row(
    db: Database, issuer: IssuingCA, csr: x509.CertificateSigningRequest, *, n: int, rounds: int
) -> tuple[str, float, float]:
    now = datetime.now(UTC)
    account = next(account_slots(db, 1, now, "ocsp"))
    view = issue_certificate(
        db, issuer, ADMIN, account, csr.public_bytes(serialization.Encoding.PEM), now=now
    )
    leaf = x509.load_pem_x509_certificate(view.certificate_pem.encode())
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer.certificate, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    publisher = Publisher(db, _Issuers(issuer))
    publisher.ocsp(PLATFORM_CA, request, now=now)  # signs once; then served from memory
    signer_cert, signer_key = build_ocsp_signer(
        issuer=issuer.certificate, issuer_key=issuer.key, now=now
    )

    def served() -> bytes:
        return publisher.ocsp(PLATFORM_CA, request, now=datetime.now(UTC)).der

    def built() -> bytes:
        query = ocsp.load_der_ocsp_request(request)
        this_update = datetime.now(UTC).replace(microsecond=0)
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=leaf,
                issuer=issuer.certificate,
                algorithm=query.hash_algorithm,
                cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=this_update,
                next_update=this_update + timedelta(days=1),
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
            .certificates([signer_cert])
            .sign(signer_key, hashes.SHA256())
        )
        return response.public_bytes(serialization.Encoding.DER)

    # Both sides answer the same question the same way before either is timed.
    ours, theirs = ocsp.load_der_ocsp_response(served()), ocsp.load_der_ocsp_response(built())
    assert ours.serial_number == theirs.serial_number == leaf.serial_number
    assert ours.certificate_status == theirs.certificate_status == ocsp.OCSPCertStatus.GOOD
    return ("OCSP answer, good serial (cache)", *compare(served, built, n=n, rounds=rounds))


# --- concurrent issuance -----------------------------------------------------------------------


def bulk_accounts(db: Database, count: int, now: datetime, label: str) -> list[str]:
    """``count`` mTLS-enabled accounts in one insert (setup, not measured)."""
    ids = [new_id("acc") for _ in range(count)]
    with db.write_connection() as connection:
        connection.execute(
            insert(Account),
            [
                {
                    "id": account_id,
                    "name": f"{label}-{i}",
                    "display_name": f"{label}-{i}",
                    "created_at": now,
                    "created_by": "bench",
                    "mtls_enabled": True,
                    "mtls_enforced": False,
                    "certificate_quota": PER_ACCOUNT,
                    "allowed_routes": [],
                    "ip_allowlist": [],
                }
                for i, account_id in enumerate(ids)
            ],
        )
    return ids


def _pem(obj: x509.Certificate) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


def _worker(
    url: str,
    *,
    issuer_parts: tuple[str, bytes, bytes, bytes],
    accounts: list[str],
    pems: list[bytes],
    count: int,
    barrier: Any,
    results: Any,
) -> None:
    """One worker process: warm up, wait for the others, issue ``count`` certificates."""
    ca_id, leaf_pem, root_pem, key_pem = issuer_parts
    key = serialization.load_pem_private_key(key_pem, None)
    leaf, root = x509.load_pem_x509_certificate(leaf_pem), x509.load_pem_x509_certificate(root_pem)
    issuer = IssuingCA(ca_id=ca_id, name=PLATFORM_CA, certificate=leaf, chain=(leaf, root), key=key)  # type: ignore[arg-type]
    db = Database(url)
    now = datetime.now(UTC)
    urls = issuer_urls("https://pki.bench.example")
    slots = (a for a in accounts for _ in range(PER_ACCOUNT))
    csrs = itertools.cycle(pems)

    def one() -> None:
        issue_certificate(
            db, issuer, ADMIN, next(slots), next(csrs), now=now, validity_days=365, urls=urls
        )

    for _ in range(PER_ACCOUNT):  # warm up on the first account: connection, statements
        one()
    barrier.wait()
    start = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
    for _ in range(count):
        one()
    results.put((start, time.perf_counter(), count))
    db.dispose()


def concurrent_row(
    url: str,
    issuer: IssuingCA,
    pems: list[bytes],
    *,
    label: str,
    workers: int,
    per_worker: int,
    rounds: int,
) -> tuple[str, float, int]:
    """Issuances per second with ``workers`` processes at once: median over ``rounds``."""
    context = multiprocessing.get_context("spawn")
    assert isinstance(issuer.key, ec.EllipticCurvePrivateKey)
    parts = (
        issuer.ca_id,
        _pem(issuer.certificate),
        _pem(issuer.root),
        issuer.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    db = Database(url)
    now = datetime.now(UTC)
    per_process_accounts = 1 + -(-per_worker // PER_ACCOUNT)
    rates: list[float] = []
    for r in range(rounds):
        ids = bulk_accounts(
            db, workers * per_process_accounts, now, f"{label.lower()}-w{workers}-r{r}"
        )
        barrier, results = context.Barrier(workers), context.Queue()
        procs = [
            context.Process(
                target=_worker,
                args=(url,),
                kwargs={
                    "issuer_parts": parts,
                    "accounts": ids[i * per_process_accounts : (i + 1) * per_process_accounts],
                    "pems": pems,
                    "count": per_worker,
                    "barrier": barrier,
                    "results": results,
                },
            )
            for i in range(workers)
        ]
        for proc in procs:
            proc.start()
        done = [results.get(timeout=600) for _ in procs]
        for proc in procs:
            proc.join()
        elapsed = max(end for _, end, _ in done) - min(start for start, _, _ in done)
        rates.append(sum(n for _, _, n in done) / elapsed)
    db.dispose()
    return f"issue, {workers} processes ({label})", statistics.median(rates), workers


def scratch_postgres(admin_url: str) -> tuple[str, Callable[[], None]] | None:
    """A new empty database next to ``admin_url`` and a function that drops it; None if the
    server does not answer."""
    admin = make_url(admin_url).set(drivername="postgresql+psycopg")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"mutls_bench_{uuid.uuid4().hex[:8]}"
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # any failure means "not reachable": skip the row
        print(f"PostgreSQL at {admin_url} skipped: {type(error).__name__}", file=sys.stderr)
        engine.dispose()
        return None

    def drop() -> None:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return admin.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--issue-n", type=int, default=100, help="issuances per round and side")
    parser.add_argument("--ocsp-n", type=int, default=5000, help="OCSP answers per round and side")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--workers",
        default="",
        help="comma-separated process counts for concurrent issuance rows, e.g. 2,8",
    )
    parser.add_argument(
        "--per-worker", type=int, default=200, help="issuances per worker process and round"
    )
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    concurrent: list[tuple[str, float, int]] = []

    print(
        f"python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}; one thread; {args.rounds} rounds"
    )
    now = datetime.now(UTC)
    ca = TestCA(name="Bench CA", organization="mutls bench", now=now - timedelta(minutes=10))
    spec = SubjectSpec(common_name="client.bench.example", country="CA", organization="Bench")
    csrs = [
        build_csr(generate_key(), spec, [x509.DNSName("client.bench.example")])
        for _ in range(CSR_POOL)
    ]
    pems = [c.public_bytes(serialization.Encoding.PEM) for c in csrs]
    rows: list[tuple[str, float, float]] = []
    started = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'mutls.db'}")
        upgrade(db)
        issuer = register_issuer(db, ca, now)
        rows.append(
            issuance_row(
                db, issuer, csrs, label="SQLite", n=args.issue_n, rounds=args.rounds, now=now
            )
        )
        rows.append(ocsp_row(db, issuer, csrs[0], n=args.ocsp_n, rounds=args.rounds))
        db.dispose()
        concurrent.extend(
            concurrent_row(
                f"sqlite:///{Path(tmp) / 'mutls.db'}",
                issuer,
                pems,
                label="SQLite",
                workers=w,
                per_worker=args.per_worker,
                rounds=min(args.rounds, 5),
            )
            for w in workers
        )

    scratch = None if args.no_postgres else scratch_postgres(args.postgres)
    if scratch is not None:
        url, drop = scratch
        try:
            db = Database(url)
            upgrade(db)
            issuer = register_issuer(db, ca, now)
            rows.append(
                issuance_row(
                    db,
                    issuer,
                    csrs,
                    label="PostgreSQL",
                    n=args.issue_n,
                    rounds=args.rounds,
                    now=now,
                )
            )
            db.dispose()
            concurrent.extend(
                concurrent_row(
                    url,
                    issuer,
                    pems,
                    label="PostgreSQL",
                    workers=w,
                    per_worker=args.per_worker,
                    rounds=min(args.rounds, 5),
                )
                for w in workers
            )
        finally:
            drop()

    print(
        f"{'operation':<34} {'mutls µs':>9} {'base µs':>9} {'mutls/s':>9} {'base/s':>9} "
        f"{'ratio':>7}"
    )
    for name, ours, theirs in rows:
        print(
            f"{name:<34} {ours:>9.1f} {theirs:>9.1f} {1e6 / ours:>9.0f} {1e6 / theirs:>9.0f} "
            f"{ours / theirs:>6.2f}x"
        )
    print("baselines: issue = bare sign_csr of a parsed CSR; OCSP = parse + build + sign uncached")
    if concurrent:
        cores = os.cpu_count() or 1
        print(f"\n{'concurrent issuance':<34} {'total/s':>9} {'per core':>9}   ({cores} cores)")
        for name, rate, _ in concurrent:
            print(f"{name:<34} {rate:>9.0f} {rate / cores:>9.0f}")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
