"""mutls's certificate core side by side with the raw ``cryptography`` calls it wraps.

Run it with ``make bench`` or ``.venv/bin/python bench/pki_bench.py``. Each row times one
operation done by mutls and by the hand-written baseline a developer would otherwise write, on the
same input, in the same process, round after round with the two sides alternating, and prints the
median time per operation of each side and the ratio mutls/baseline. The ratio is the price of
what mutls adds (format sniffing, chain ordering, key matching, findings, error translation,
mutls's own path checks); the baseline is the floor, not a competitor.

This is a measurement, never a test: nothing here fails on a number. See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cryptography
from cryptography import x509
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import mutls
from mutls import (
    ExportFormat,
    P12Profile,
    Profile,
    Purpose,
    load_material,
    sign_csr,
    verify_chain,
)
from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.keys import KeySpec, generate_key
from mutls.testing import Identity, TestCA

Operation = Callable[[], object]

P12_PASSPHRASE = b"bench export passphrase"


@dataclass(frozen=True, kw_only=True)
class Case:
    """One row of the table: the same job done by mutls and by the baseline."""

    name: str
    mutls: Operation
    baseline: Operation


@dataclass(frozen=True, kw_only=True)
class Row:
    name: str
    mutls_ns: float
    baseline_ns: float
    spread: float  # the wider of the two sides' interquartile ranges, relative to its median
    rounds: int
    mutls_batch: int
    baseline_batch: int

    @property
    def ratio(self) -> float:
        return self.mutls_ns / self.baseline_ns


# --- the inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Fixtures:
    ca: TestCA
    identity: Identity
    combined_pem: bytes
    p12_modern: bytes
    p12_legacy: bytes
    now: datetime


def make_fixtures() -> Fixtures:
    """A root, an intermediate and a client identity (EC P-256), as mutls's tests use them."""
    now = datetime.now(UTC)
    ca = TestCA(name="Bench Root CA", organization="mutls bench", now=now)
    identity = ca.issue("client.bench.example", now=now)
    material = load_material(identity.combined_pem())
    p12_modern = mutls.export_material(
        material, ExportFormat.P12, passphrase=P12_PASSPHRASE, profile=P12Profile.MODERN
    )
    p12_legacy = mutls.export_material(
        material, ExportFormat.P12, passphrase=P12_PASSPHRASE, profile=P12Profile.LEGACY
    )
    return Fixtures(
        ca=ca,
        identity=identity,
        combined_pem=identity.combined_pem(),
        p12_modern=p12_modern,
        p12_legacy=p12_legacy,
        now=now,
    )


# --- baselines: what a hand-written loader, verifier and signer would call ----------------------


def raw_load_pem(data: bytes) -> tuple[list[x509.Certificate], object]:
    return x509.load_pem_x509_certificates(data), serialization.load_pem_private_key(data, None)


def raw_load_p12(data: bytes) -> pkcs12.PKCS12KeyAndCertificates:
    return pkcs12.load_pkcs12(data, P12_PASSPHRASE)


def raw_verify_client(
    leaf: x509.Certificate,
    root: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    now: datetime,
) -> object:
    store = verification.Store([root])
    verifier = verification.PolicyBuilder().store(store).time(now).build_client_verifier()
    return verifier.verify(leaf, list(intermediates))


def _client_builder(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    now: datetime,
) -> x509.CertificateBuilder:
    """The same extensions mutls's client profile writes, added by hand."""
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    common_name = subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(common_name, str)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
    )


def raw_issue(ca: TestCA, now: datetime) -> x509.Certificate:
    """What a trustme-style helper does: a new key, then one certificate straight from a builder
    (no CSR, no key check, no CA check)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client.bench.example")])
    builder = _client_builder(subject, key.public_key(), ca.issuer, now)
    return builder.sign(ca.issuer_key, hashes.SHA256())


def raw_sign_csr(
    csr: x509.CertificateSigningRequest, ca: TestCA, now: datetime
) -> x509.Certificate:
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    builder = _client_builder(csr.subject, public_key, ca.issuer, now)
    return builder.sign(ca.issuer_key, hashes.SHA256())


# --- the cases ------------------------------------------------------------------------------------


def make_cases(fx: Fixtures) -> list[Case]:
    ca, now = fx.ca, fx.now
    leaf = fx.identity.certificate
    inters = list(ca.intermediates)
    csr = build_csr(generate_key(KeySpec.EC_P256), SubjectSpec(common_name="client.bench.example"))

    def mutls_verify() -> object:
        return verify_chain(
            leaf, anchors=[ca.root], intermediates=inters, purpose=Purpose.CLIENT, at=now
        )

    def mutls_sign() -> object:
        return sign_csr(
            csr,
            issuer=ca.issuer,
            issuer_key=ca.issuer_key,
            profile=Profile.CLIENT,
            now=now,
            validity=timedelta(days=365),
        )

    return [
        Case(
            name="(a) load PEM leaf+chain+key",
            mutls=lambda: load_material(fx.combined_pem),
            baseline=lambda: raw_load_pem(fx.combined_pem),
        ),
        Case(
            name="(b) load PKCS#12 modern (AES)",
            mutls=lambda: load_material(fx.p12_modern, P12_PASSPHRASE),
            baseline=lambda: raw_load_p12(fx.p12_modern),
        ),
        Case(
            name="(b) load PKCS#12 legacy (3DES)",
            mutls=lambda: load_material(fx.p12_legacy, P12_PASSPHRASE),
            baseline=lambda: raw_load_p12(fx.p12_legacy),
        ),
        Case(
            name="(c) verify client chain",
            mutls=mutls_verify,
            baseline=lambda: raw_verify_client(leaf, ca.root, inters, now),
        ),
        Case(
            name="(d) issue: key+cert (TestCA)",
            mutls=lambda: ca.issue("client.bench.example", now=now),
            baseline=lambda: raw_issue(ca, now),
        ),
        Case(
            name="(d) sign a CSR (client profile)",
            mutls=mutls_sign,
            baseline=lambda: raw_sign_csr(csr, ca, now),
        ),
    ]


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"pki_bench: the two sides disagree: {what}")


def check_equivalence(fx: Fixtures) -> None:
    """Before timing: both sides must produce the same answer, or the comparison means nothing."""
    material = load_material(fx.combined_pem)
    certs, key = raw_load_pem(fx.combined_pem)
    _require(material.chain == tuple(certs), "PEM: leaf and chain")
    _require(key is not None and bool(material.key_matches), "PEM: private key")
    for blob in (fx.p12_modern, fx.p12_legacy):
        loaded = load_material(blob, P12_PASSPHRASE)
        raw = raw_load_p12(blob)
        _require(raw.cert is not None and loaded.leaf == raw.cert.certificate, "PKCS#12: leaf")
        _require(bool(loaded.key_matches) and raw.key is not None, "PKCS#12: private key")
    leaf, inters = fx.identity.certificate, list(fx.ca.intermediates)
    ours = verify_chain(
        leaf, anchors=[fx.ca.root], intermediates=inters, purpose=Purpose.CLIENT, at=fx.now
    )
    theirs = raw_verify_client(leaf, fx.ca.root, inters, fx.now)
    _require(len(ours.chain) == 3 and theirs is not None, "verify: chain")
    csr = build_csr(generate_key(KeySpec.EC_P256), SubjectSpec(common_name="client.bench.example"))
    ours_cert = sign_csr(
        csr,
        issuer=fx.ca.issuer,
        issuer_key=fx.ca.issuer_key,
        profile=Profile.CLIENT,
        now=fx.now,
        validity=timedelta(days=365),
    )
    theirs_cert = raw_sign_csr(csr, fx.ca, fx.now)
    same_extensions = [e.oid for e in ours_cert.extensions] == [
        e.oid for e in theirs_cert.extensions
    ]
    _require(same_extensions, "signing: the baseline must write the same extensions")


# --- timing ---------------------------------------------------------------------------------------


def _batch_ns(operation: Operation, count: int) -> float:
    """Nanoseconds per call over ``count`` calls, with the collector paused as timeit does."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(count):
            operation()
        elapsed = time.perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()
    return elapsed / count


def _batch_size(operation: Operation, target_ns: float) -> int:
    """How many calls make one round last about ``target_ns`` (after one warm-up call)."""
    operation()
    single = _batch_ns(operation, 1)
    probe = max(1, min(1000, int(target_ns / 10 / max(single, 1.0))))
    per_call = _batch_ns(operation, probe)
    return max(1, int(target_ns / max(per_call, 1.0)))


def _relative_iqr(samples: Sequence[float]) -> float:
    if len(samples) < 4:
        return 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return (q3 - q1) / statistics.median(samples)


def measure(case: Case, *, rounds: int, target_ns: float) -> Row:
    mutls_n = _batch_size(case.mutls, target_ns)
    baseline_n = _batch_size(case.baseline, target_ns)
    ours: list[float] = []
    theirs: list[float] = []
    for index in range(rounds):
        # Alternate who goes first so that drift (turbo, cache, a noisy neighbour) hits both.
        if index % 2 == 0:
            ours.append(_batch_ns(case.mutls, mutls_n))
            theirs.append(_batch_ns(case.baseline, baseline_n))
        else:
            theirs.append(_batch_ns(case.baseline, baseline_n))
            ours.append(_batch_ns(case.mutls, mutls_n))
    return Row(
        name=case.name,
        mutls_ns=statistics.median(ours),
        baseline_ns=statistics.median(theirs),
        spread=max(_relative_iqr(ours), _relative_iqr(theirs)),
        rounds=rounds,
        mutls_batch=mutls_n,
        baseline_batch=baseline_n,
    )


# --- report ---------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_lines() -> list[str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"machine   nproc {usable}, {_cpu_model()}, {platform.system()} {platform.release()}",
        f"python    {platform.python_implementation()} {platform.python_version()}",
        f"mutls     {mutls.__version__}",
        f"cryptography {cryptography.__version__} with {openssl_backend.openssl_version_text()}",
        f"stdlib ssl   {ssl.OPENSSL_VERSION} (not used by these rows)",
    ]


def render(rows: Sequence[Row], *, elapsed_s: float, argv: Sequence[str]) -> str:
    header = (
        f"{'operation':<34} {'mutls µs':>10} {'baseline µs':>12} {'ratio':>7} {'IQR':>5}"
        "  rounds x calls"
    )
    lines = [
        "mutls PKI benchmark: median time per operation, mutls vs raw cryptography",
        "",
        *machine_lines(),
        f"command   {' '.join(argv)}",
        "",
        header,
        "-" * len(header),
    ]
    for row in rows:
        calls = f"{row.rounds} x {row.mutls_batch}/{row.baseline_batch}"
        lines.append(
            f"{row.name:<34} {row.mutls_ns / 1000:>10.1f} {row.baseline_ns / 1000:>12.1f} "
            f"{row.ratio:>6.2f}x {row.spread:>5.0%}  {calls}"
        )
    lines += [
        "",
        "ratio = mutls median / baseline median; 1.00x means no overhead.",
        "IQR = interquartile range of the noisier side, relative to its median: how far to trust "
        "the ratio.",
        f"total {elapsed_s:.1f} s",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per side")
    parser.add_argument(
        "--round-ms", type=float, default=100.0, help="target duration of one round, per side"
    )
    parser.add_argument("--only", default="", help="run only rows whose name contains this text")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.round_ms <= 0:
        parser.error("--rounds and --round-ms must be positive")
    started = time.perf_counter()
    fixtures = make_fixtures()
    check_equivalence(fixtures)
    rows = [
        measure(case, rounds=args.rounds, target_ns=args.round_ms * 1e6)
        for case in make_cases(fixtures)
        if args.only in case.name
    ]
    command = ["bench/pki_bench.py", *(sys.argv[1:] if argv is None else argv)]
    print(render(rows, elapsed_s=time.perf_counter() - started, argv=command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
