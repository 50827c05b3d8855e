"""``mutls renew``: get the successor of a client certificate over mTLS, once or as a daemon.

The current certificate and key are the only credential: the command connects to the platform's
renewal listener (``mutls up`` serves it on port 8444) with them, sends a CSR for the same names,
and installs the answer. By default it makes a fresh key of the same type (so a renewal is also a
key rotation) and writes key and certificate back over the files it read, atomically and with
the key at mode 0600, encrypted with the same passphrase if it was encrypted. ``--csr`` sends a
CSR you made yourself instead (its key is yours to install).

``--daemon`` keeps running: it renews two thirds into each certificate's life (``--renew-at``),
a little earlier at random, runs ``--exec`` after each renewal (reload the app that uses the
certificate), and retries transient failures with backoff. A refusal that retrying cannot fix
(certificate expired or revoked, names changed) stops it with that error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.cli.client import ApiClient, ApiError
from mutls.cli.common import JsonOption, PassphraseFileOption, handle_errors, in_source
from mutls.cli.output import console, err_console, print_json
from mutls.errors import InvalidArgument, MutlsError
from mutls.files import PRIVATE, PUBLIC, read_input, write_atomic
from mutls.pki.csr import csr_like
from mutls.pki.export import private_key_pem
from mutls.pki.inspect import serial_hex
from mutls.pki.keys import generate_key, key_spec_of
from mutls.pki.loader import DEFAULT_MAX_INPUT, load_identity, load_material
from mutls.pki.material import Material, SourceFormat
from mutls.policy.renewal import DEFAULT_RENEW_AT, renewal_time
from mutls.tls.context import client_context

__all__ = ["RENEW_SERVER_ENV", "renew"]

RENEW_SERVER_ENV = "MUTLS_RENEW_SERVER"
DEFAULT_RENEW_SERVER = "https://localhost:8444"

# Codes a retry cannot fix: the daemon stops on them instead of hammering the server.
_PERMANENT = frozenset(
    {
        "certificate_expired",
        "certificate_revoked",
        "certificate_not_renewable",
        "renewal_names_changed",
        "csr_policy_violation",
        "account_mtls_disabled",
        "client_certificate_required",
        "tls_handshake_failed",
    }
)
_RETRY_FIRST, _RETRY_MAX = 30.0, 3600.0


@dataclass(frozen=True, kw_only=True)
class _Paths:
    cert: Path
    key: Path
    out: Path
    key_out: Path
    csr: Path | None
    ca: Path | None


@dataclass(frozen=True, kw_only=True)
class _Renewed:
    old_serial: str
    serial: str
    not_after: datetime
    certificate: x509.Certificate
    rekeyed: bool

    def to_dict(self, paths: _Paths) -> dict[str, object]:
        return {
            "renewed_from_serial": self.old_serial,
            "serial": self.serial,
            "not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "certificate_file": str(paths.out),
            "key_file": str(paths.key_out) if self.rekeyed else None,
        }


def _anchors(material: Material, ca: Path | None) -> list[x509.Certificate]:
    """The certificates to check the renewal server with: ``--ca``, else the CA chain that came
    with the certificate (intermediates are anchors too: the server's certificate is issued by
    the same intermediate as ours)."""
    if ca is not None:
        loaded = load_material(read_input(ca, max_size=DEFAULT_MAX_INPUT))
        certs = [*loaded.chain, *loaded.extra_certificates]
        if not certs:
            raise InvalidArgument(f"expected CA certificates in {ca}; found none")
        return certs
    issuers = [*material.chain[1:], *material.extra_certificates]
    if not issuers:
        raise InvalidArgument(
            "expected the platform CA chain to check the renewal server with; the certificate "
            "file holds only the leaf",
            hint="pass --ca with the CA chain (curl <admin API>/ca/platform/chain.pem), or keep "
            "the chain in the certificate file as `mutls cert issue --out` writes it",
        )
    return issuers


def _load(paths: _Paths, passphrase_file: Path | None) -> tuple[Material, bytes | None]:
    source = in_source(passphrase_file, str(paths.key))
    cert_data = read_input(paths.cert, max_size=DEFAULT_MAX_INPUT)
    key_data = read_input(paths.key, max_size=DEFAULT_MAX_INPUT)
    secret = source.read(required=False)
    try:
        material = load_identity(cert_data, key_data, secret)
    except MutlsError as error:
        if error.code != "passphrase_required" or secret is not None or source.file is not None:
            raise
        secret = source.ask()
        material = load_identity(cert_data, key_data, secret)
    material.require_identity()
    return material, secret if material.key_was_encrypted else None


def _renew_once(
    paths: _Paths, server: str, passphrase_file: Path | None
) -> tuple[_Renewed, Material]:
    material, passphrase = _load(paths, passphrase_file)
    leaf, key = material.require_identity()
    anchors = _anchors(material, paths.ca)
    identity = Material(source_format=SourceFormat.PEM, leaf=leaf, chain=material.chain, key=key)
    context = client_context(identity, cas=anchors, partial_chain=True)
    new_key = None
    if paths.csr is not None:
        csr_pem = read_input(paths.csr, max_size=DEFAULT_MAX_INPUT).decode("ascii", "replace")
    else:
        new_key = generate_key(key_spec_of(key))
        csr_pem = csr_like(leaf, new_key).public_bytes(serialization.Encoding.PEM).decode()
    with ApiClient(
        server, None, verify=context, what="the mutls renewal endpoint", client_certificate=True
    ) as client:
        answer: Any = client.post("/renew", {"csr_pem": csr_pem})
    bundle = str(answer["certificate_pem"]) + str(answer["chain_pem"])
    certificate = x509.load_pem_x509_certificate(str(answer["certificate_pem"]).encode())
    if new_key is not None:
        write_atomic(paths.key_out, private_key_pem(new_key, passphrase), mode=PRIVATE)
    write_atomic(paths.out, bundle.encode(), mode=PUBLIC)
    renewed = _Renewed(
        old_serial=serial_hex(leaf.serial_number),
        serial=str(answer["serial"]),
        not_after=certificate.not_valid_after_utc,
        certificate=certificate,
        rekeyed=new_key is not None,
    )
    return renewed, material


def _run_hook(command: str, paths: _Paths, renewed: _Renewed) -> None:
    env = {
        **os.environ,
        "MUTLS_RENEWED_CERT": str(paths.out),
        "MUTLS_RENEWED_KEY": str(paths.key_out),
        "MUTLS_RENEWED_SERIAL": renewed.serial,
    }
    result = subprocess.run(command, shell=True, env=env, check=False)  # noqa: S602 - the user's own hook
    if result.returncode != 0:
        raise ApiError(
            "renew_hook_failed",
            f"expected the --exec hook to exit 0 after renewing to serial {renewed.serial}; it "
            f"exited {result.returncode}",
            hint="the new certificate is installed; fix the hook and run it by hand once",
        )


def _say(text: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    err_console.print(f"{stamp} {text}", soft_wrap=True, highlight=False)


def _daemon(
    paths: _Paths,
    server: str,
    passphrase_file: Path | None,
    renew_at: float,
    hook: str | None,
) -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        _say("stopping")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    current = paths
    failures = 0
    try:
        while True:
            leaf = load_material(read_input(current.cert, max_size=DEFAULT_MAX_INPUT)).leaf
            if leaf is None:
                raise InvalidArgument(f"expected a certificate in {current.cert}; found none")
            due = renewal_time(leaf.not_valid_before_utc, leaf.not_valid_after_utc, at=renew_at)
            wait = (due - datetime.now(UTC)).total_seconds()
            if wait > 0 and failures == 0:
                _say(
                    f"serial {serial_hex(leaf.serial_number)} expires "
                    f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; renewing at "
                    f"{due:%Y-%m-%d %H:%M:%S} UTC"
                )
                time.sleep(wait)
            try:
                renewed, _ = _renew_once(current, server, passphrase_file)
            except MutlsError as error:
                if error.code in _PERMANENT:
                    raise
                failures += 1
                delay = min(_RETRY_MAX, _RETRY_FIRST * 2 ** (failures - 1))
                remaining = (leaf.not_valid_after_utc - datetime.now(UTC)).total_seconds()
                delay = max(1.0, min(delay, remaining / 10))
                _say(f"renewal failed ({error.code}: {error.message}); retrying in {delay:.0f}s")
                time.sleep(delay)
                continue
            failures = 0
            _say(
                f"renewed serial {renewed.old_serial} -> {renewed.serial}, valid until "
                f"{renewed.not_after:%Y-%m-%d %H:%M} UTC; written to {current.out}"
            )
            # From now on the installed files are the current certificate.
            current = _Paths(
                cert=current.out,
                key=current.key_out if renewed.rekeyed else current.key,
                out=current.out,
                key_out=current.key_out,
                csr=current.csr,
                ca=current.ca,
            )
            if hook:
                try:
                    _run_hook(hook, current, renewed)
                except MutlsError as error:
                    _say(f"{error.message}; {error.hint}")
    except KeyboardInterrupt:
        _say("stopping")


@handle_errors
def renew(
    cert: Annotated[
        Path, typer.Option("--cert", help="The current certificate (PEM, with its chain).")
    ],
    key: Annotated[Path, typer.Option("--key", help="The current certificate's private key.")],
    server: Annotated[
        str,
        typer.Option(
            "--server",
            envvar=RENEW_SERVER_ENV,
            show_envvar=True,
            help="The platform's renewal endpoint (mutls up: port 8444).",
        ),
    ] = DEFAULT_RENEW_SERVER,
    csr: Annotated[
        Path | None,
        typer.Option(
            "--csr",
            help="Send this CSR (same names) instead of making a new key and CSR.",
            show_default=False,
        ),
    ] = None,
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca",
            help="CA certificates to check the server with (default: the chain in --cert).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the new certificate here (default: over --cert).",
            show_default=False,
        ),
    ] = None,
    key_out: Annotated[
        Path | None,
        typer.Option(
            "--key-out", help="Write the new key here (default: over --key).", show_default=False
        ),
    ] = None,
    daemon: Annotated[
        bool, typer.Option("--daemon", help="Keep running and renew each certificate when due.")
    ] = False,
    renew_at: Annotated[
        float,
        typer.Option(
            "--renew-at",
            min=0.0,
            max=1.0,
            help="With --daemon: renew at this fraction of the lifetime (a little earlier, at "
            "random).",
        ),
    ] = round(DEFAULT_RENEW_AT, 3),
    hook: Annotated[
        str | None,
        typer.Option(
            "--exec",
            help="Shell command to run after each renewal (e.g. reload the app). It gets "
            "$MUTLS_RENEWED_CERT, $MUTLS_RENEWED_KEY and $MUTLS_RENEWED_SERIAL.",
            show_default=False,
        ),
    ] = None,
    passphrase_file: PassphraseFileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Renew a client certificate over mTLS, authenticated by the certificate itself.

    The successor has the same names, API versions and lifetime; the old certificate keeps
    working until it expires or is revoked, so the swap needs no downtime.
    """
    if csr is not None and key_out is not None:
        raise InvalidArgument(
            "expected --key-out only when mutls makes the new key; --csr brings your own",
        )
    paths = _Paths(
        cert=cert,
        key=key,
        out=out or cert,
        key_out=key_out or key,
        csr=csr,
        ca=ca,
    )
    if daemon:
        _daemon(paths, server, passphrase_file, renew_at, hook)
        return
    renewed, material = _renew_once(paths, server, passphrase_file)
    if json_output:
        print_json(renewed.to_dict(paths))
    else:
        due = renewal_time(
            renewed.certificate.not_valid_before_utc, renewed.not_after, at=DEFAULT_RENEW_AT
        )
        console.print(
            f"renewed serial {renewed.old_serial} -> {renewed.serial}, valid until "
            f"{renewed.not_after:%Y-%m-%d %H:%M} UTC\n"
            f"  certificate and chain: {paths.out}"
            + (f"\n  new key (mode 0600): {paths.key_out}" if renewed.rekeyed else "")
            + f"\n  renew again around {due:%Y-%m-%d} (or run with --daemon)",
            soft_wrap=True,
            highlight=False,
        )
    del material
    if hook:
        _run_hook(hook, paths, renewed)
