"""``mutls cert``: inspect, convert, match and verify certificate material.

``issue`` and ``list`` join this group from ``cli/certs.py`` (they call the admin API).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from mutls.cli.common import (
    JsonOption,
    OutPassphraseFileOption,
    PassphraseFileOption,
    handle_errors,
    in_source,
    load_file,
    out_source,
    parse_time,
)
from mutls.cli.output import console, fail, print_json, render_report
from mutls.errors import ChainOutOfOrder, InvalidArgument, KeyMismatch
from mutls.files import PRIVATE, PUBLIC, read_input, write_atomic
from mutls.pki.export import ExportFormat, P12Profile, export_material
from mutls.pki.inspect import inspect_material
from mutls.pki.keys import match_key
from mutls.pki.loader import DEFAULT_MAX_INPUT, load_certificates, load_crl
from mutls.pki.verify import Purpose, verify_chain

app = typer.Typer(
    no_args_is_help=True,
    help="Inspect, convert, match and verify certificates; issue and list an account's "
    "client certificates (via the API).",
)

FileArg = Annotated[
    Path, typer.Argument(help="PEM, DER, PKCS#12 (.p12/.pfx) or PKCS#7 (.p7b) file.")
]
KeyOption = Annotated[
    Path | None, typer.Option("--key", help="Private key in a separate file.", show_default=False)
]

_KEY_FORMATS = {ExportFormat.KEY, ExportFormat.COMBINED, ExportFormat.P12}
_BINARY_FORMATS = {ExportFormat.DER, ExportFormat.P12}


@app.command()
@handle_errors
def inspect(
    file: FileArg,
    key: KeyOption = None,
    passphrase_file: PassphraseFileOption = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit non-zero when any finding is an error.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Show what a file holds: subject, validity, SANs, key, fingerprints, chain, problems."""
    material = load_file(file, key_path=key, passphrase=in_source(passphrase_file))
    report = inspect_material(material, datetime.now(UTC))
    if json_output:
        print_json(report.to_dict())
    else:
        render_report(report, str(file))
    if strict and any(f.severity.value == "error" for f in report.findings):
        raise typer.Exit(1)


@app.command()
@handle_errors
def convert(
    file: FileArg,
    to: Annotated[ExportFormat, typer.Option("--to", help="Output format.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output file ('-' for stdout).", show_default=False),
    ] = None,
    key: KeyOption = None,
    profile: Annotated[
        P12Profile,
        typer.Option(help="PKCS#12 encryption: modern (AES-256) or legacy (3DES, old keystores)."),
    ] = P12Profile.MODERN,
    encrypt: Annotated[
        bool | None,
        typer.Option(
            "--encrypt/--no-encrypt",
            help="Encrypt the key in key/combined output (default: when an output passphrase "
            "is given).",
            show_default=False,
        ),
    ] = None,
    passphrase_file: PassphraseFileOption = None,
    out_passphrase_file: OutPassphraseFileOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Write the material as PEM, DER, a chain, a combined PEM, a key, PKCS#12 or PKCS#7.

    Use --to key --no-encrypt to remove a passphrase, --to key with an output passphrase to add one.
    """
    material = load_file(file, key_path=key, passphrase=in_source(passphrase_file))
    secret = None
    target = out_source(out_passphrase_file)
    if to is ExportFormat.P12:
        secret = target.read(required=True, confirm=True)
    elif to in _KEY_FORMATS:
        wants = encrypt if encrypt is not None else target.given()
        secret = target.read(required=True, confirm=True) if wants else None
    data = export_material(material, to, passphrase=secret, profile=profile)
    if out is None or str(out) == "-":
        if to in _BINARY_FORMATS and sys.stdout.isatty():
            raise InvalidArgument(
                f"--to {to.value} is binary; refusing to print it to a terminal",
                hint="write it to a file with --out FILE",
            )
        if json_output:
            raise InvalidArgument("--json needs --out FILE: stdout carries the JSON summary")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    mode = PRIVATE if to in _KEY_FORMATS else PUBLIC
    write_atomic(out, data, mode=mode, overwrite=force)
    summary = {
        "written": str(out),
        "format": to.value,
        "bytes": len(data),
        "key_encrypted": bool(secret) if to in _KEY_FORMATS else None,
        "profile": profile.value if to is ExportFormat.P12 else None,
    }
    if json_output:
        print_json(summary)
    else:
        note = " (mode 0600)" if mode == PRIVATE else ""
        console.print(f"[green]✓[/] wrote {to.value} to {out}{note}")


@app.command()
@handle_errors
def match(
    certificate: Annotated[Path, typer.Argument(help="The certificate (any format).")],
    key: Annotated[Path, typer.Argument(help="The private key (any format).")],
    passphrase_file: PassphraseFileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Does this private key belong to this certificate? Works for RSA, EC and EdDSA."""
    cert = load_file(certificate, passphrase=in_source(passphrase_file)).require_certificate()
    private = load_file(key, passphrase=in_source(passphrase_file, str(key))).require_key()
    result = match_key(cert, private)
    if not result.matches:
        error = KeyMismatch(
            "the private key does not belong to the certificate: certificate public key SHA-256 "
            f"{result.certificate_public_key_sha256}, private key's public key SHA-256 "
            f"{result.private_key_public_key_sha256}"
        )
        if json_output:
            print_json({"error": error.to_dict(), **result.to_dict()})
            raise typer.Exit(1)
        fail(error, as_json=False)
    if json_output:
        print_json(result.to_dict())
        return
    console.print("[green]✓ the key matches the certificate[/]")
    console.print(f"  public key SHA-256 {result.certificate_public_key_sha256}")


@app.command()
@handle_errors
def verify(
    certificate: Annotated[
        Path, typer.Argument(help="Certificate, optionally followed by its chain.")
    ],
    ca: Annotated[Path, typer.Option("--ca", help="CA bundle to trust (PEM, DER or PKCS#7).")],
    untrusted: Annotated[
        Path | None,
        typer.Option("--untrusted", help="Extra intermediate certificates.", show_default=False),
    ] = None,
    purpose: Annotated[
        Purpose, typer.Option(help="What the certificate must be good for.")
    ] = Purpose.CLIENT,
    hostname: Annotated[
        str | None,
        typer.Option(
            "--hostname", help="Name the server certificate must carry.", show_default=False
        ),
    ] = None,
    crl: Annotated[
        list[Path] | None,
        typer.Option(
            "--crl", help="CRL to check revocation against (repeatable).", show_default=False
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="Check validity at this ISO 8601 time instead of now.", show_default=False
        ),
    ] = None,
    passphrase_file: PassphraseFileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Build and check the chain for a purpose, and name the first failure."""
    when = parse_time(at)
    material = load_file(certificate, passphrase=in_source(passphrase_file))
    leaf = material.require_certificate()
    if material.finding("chain_out_of_order") is not None:
        raise ChainOutOfOrder(
            f"{certificate} does not list the leaf first, each certificate followed by its issuer"
        )
    anchors = load_certificates(read_input(ca, max_size=DEFAULT_MAX_INPUT))
    extra = []
    if untrusted is not None:
        extra = load_certificates(read_input(untrusted, max_size=DEFAULT_MAX_INPUT))
    crls = [load_crl(read_input(p, max_size=DEFAULT_MAX_INPUT)) for p in crl or []]
    result = verify_chain(
        leaf,
        anchors=anchors,
        intermediates=[*material.intermediates, *extra],
        purpose=purpose,
        at=when,
        crls=crls,
        hostname=hostname,
    )
    if json_output:
        print_json(result.to_dict())
        return
    console.print(f"[green]✓ valid {purpose.value} certificate[/] at {when.isoformat()}")
    for index, cert in enumerate(result.chain):
        console.print(f"  [{index}] {cert.subject.rfc4514_string()}")
    if not result.crl_checked:
        console.print("  [dim]revocation not checked (no CRL given with --crl)[/]")
