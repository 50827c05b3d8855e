"""``mutls ca``: an offline CA in a directory (seed 004's OpenSSL tutorial as commands)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization

from mutls.ca.offline import OfflineCA
from mutls.cli.common import JsonOption, PassphraseFileOption, handle_errors, in_source
from mutls.cli.output import console, print_json
from mutls.files import read_input, write_atomic
from mutls.pki.authority import IssuerUrls, Profile, RevocationReason
from mutls.pki.inspect import name_to_text, serial_hex, sha256_fingerprint
from mutls.pki.keys import KeySpec
from mutls.pki.loader import DEFAULT_MAX_INPUT

app = typer.Typer(no_args_is_help=True, help="Run an offline CA kept in a directory.")

CA_DIR_ENV = "MUTLS_CA_DIR"

DirOption = Annotated[
    Path,
    typer.Option(
        "--dir",
        help=f"The CA directory (else ${CA_DIR_ENV}, else ./mutls-ca).",
        default_factory=lambda: Path(os.environ.get(CA_DIR_ENV, "mutls-ca")),
        show_default=False,
    ),
]


def _ca_passphrase(file: Path | None, *, confirm: bool = False) -> bytes:
    secret = in_source(file, "the CA key").read(required=True, confirm=confirm)
    assert secret is not None  # required=True never returns None
    return secret


@app.command()
@handle_errors
def init(
    directory: DirOption,
    name: Annotated[str, typer.Option("--name", help="The root CA's common name.")],
    org: Annotated[
        str | None, typer.Option("--org", help="Organisation name.", show_default=False)
    ] = None,
    country: Annotated[
        str | None, typer.Option("--country", help="Two-letter country code.", show_default=False)
    ] = None,
    intermediate: Annotated[
        bool,
        typer.Option(
            "--intermediate",
            help="Also create an issuing intermediate CA; the root then only signs it.",
        ),
    ] = False,
    key_type: Annotated[
        KeySpec, typer.Option("--key-type", help="Key algorithm of the CA keys.")
    ] = KeySpec.EC_P384,
    root_days: Annotated[
        int, typer.Option("--root-days", min=1, max=36500, help="Root validity.")
    ] = 3650,
    days: Annotated[
        int, typer.Option("--days", min=1, help="Default validity of issued certificates.")
    ] = 365,
    max_days: Annotated[
        int, typer.Option("--max-days", min=1, help="Longest validity this CA issues.")
    ] = 825,
    crl_url: Annotated[
        str | None,
        typer.Option(
            "--crl-url",
            help="CRL distribution point put in issued certificates.",
            show_default=False,
        ),
    ] = None,
    ocsp_url: Annotated[
        str | None, typer.Option("--ocsp-url", help="OCSP responder URL (AIA).", show_default=False)
    ] = None,
    ca_issuers_url: Annotated[
        str | None,
        typer.Option(
            "--ca-issuers-url",
            help="Where the issuing CA certificate is published (AIA).",
            show_default=False,
        ),
    ] = None,
    passphrase_file: PassphraseFileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a root CA (and optionally an intermediate) with encrypted keys."""
    secret = _ca_passphrase(passphrase_file, confirm=True)
    ca = OfflineCA.init(
        directory,
        name=name,
        organization=org,
        country=country,
        passphrase=secret,
        now=datetime.now(UTC),
        key_spec=key_type,
        intermediate=intermediate,
        root_validity_days=root_days,
        default_validity_days=days,
        max_validity_days=max_days,
        urls=IssuerUrls(crl=crl_url, ocsp=ocsp_url, ca_issuers=ca_issuers_url),
    )
    root = ca.root_certificate()
    if json_output:
        print_json(
            {
                "directory": str(directory),
                "root_subject": name_to_text(root.subject),
                "root_sha256_fingerprint": sha256_fingerprint(root),
                "issuer": ca.config.issuer,
                "chain": str(directory / "chain.pem"),
            }
        )
        return
    console.print(f"[green]✓[/] CA created in {directory}")
    console.print(f"  root   {name_to_text(root.subject)}")
    if intermediate:
        console.print(f"  issues {name_to_text(ca.issuer_certificate().subject)}")
    console.print(
        f"  trust  {directory / 'root.pem'}  (give this to whoever verifies your certificates)"
    )


@app.command()
@handle_errors
def sign(
    csr: Annotated[Path, typer.Argument(help="The certificate signing request (PEM or DER).")],
    directory: DirOption,
    profile: Annotated[
        Profile, typer.Option(help="client (clientAuth) or server (serverAuth).")
    ] = Profile.CLIENT,
    days: Annotated[
        int | None,
        typer.Option("--days", help="Validity in days (default: the CA's).", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write the certificate here (else stdout).", show_default=False
        ),
    ] = None,
    with_chain: Annotated[
        bool, typer.Option("--chain", help="Append the issuing CA chain (without the root).")
    ] = False,
    passphrase_file: PassphraseFileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Issue a certificate for a CSR after every issuance rule passes."""
    ca = OfflineCA.open(directory)
    data = read_input(csr, max_size=DEFAULT_MAX_INPUT)
    secret = _ca_passphrase(passphrase_file)
    cert = ca.sign(
        data, passphrase=secret, now=datetime.now(UTC), profile=profile, validity_days=days
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    if with_chain and ca.config.issuer != "root":
        pem += ca.issuer_certificate().public_bytes(serialization.Encoding.PEM)
    if out is not None:
        write_atomic(out, pem)
    if json_output:
        print_json(
            {
                "serial": serial_hex(cert.serial_number),
                "subject": name_to_text(cert.subject),
                "not_after": cert.not_valid_after_utc.isoformat(),
                "sha256_fingerprint": sha256_fingerprint(cert),
                "written": str(out) if out else None,
                "certificate": pem.decode("ascii") if out is None else None,
            }
        )
        return
    if out is None:
        typer.echo(pem.decode("ascii"), nl=False)
        return
    console.print(
        f"[green]✓[/] issued serial {serial_hex(cert.serial_number)} "
        f"to {name_to_text(cert.subject)}"
    )
    console.print(f"  {out}, valid until {cert.not_valid_after_utc.date()}")


@app.command()
@handle_errors
def revoke(
    serial: Annotated[
        str, typer.Argument(help="Serial number in hex, as `mutls ca list` shows it.")
    ],
    directory: DirOption,
    reason: Annotated[
        RevocationReason, typer.Option(help="RFC 5280 revocation reason.")
    ] = RevocationReason.UNSPECIFIED,
    json_output: JsonOption = False,
) -> None:
    """Mark a certificate revoked. Publish the change with `mutls ca crl`."""
    ca = OfflineCA.open(directory)
    record = ca.revoke(serial, now=datetime.now(UTC), reason=reason)
    if json_output:
        print_json(record.to_dict(datetime.now(UTC)))
        return
    console.print(f"[green]✓[/] revoked {record.serial} ({record.subject}), reason {reason.value}")
    console.print("  run `mutls ca crl` to publish a new CRL")


@app.command()
@handle_errors
def crl(
    directory: DirOption,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Also write the CRL here.", show_default=False),
    ] = None,
    der: Annotated[bool, typer.Option("--der", help="Write --out in DER instead of PEM.")] = False,
    passphrase_file: PassphraseFileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Sign a new CRL listing every revoked certificate (also kept as DIR/crl.pem)."""
    ca = OfflineCA.open(directory)
    secret = _ca_passphrase(passphrase_file)
    result = ca.crl(passphrase=secret, now=datetime.now(UTC))
    if out is not None:
        encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
        write_atomic(out, result.public_bytes(encoding))
    next_update = result.next_update_utc.isoformat() if result.next_update_utc else None
    if json_output:
        print_json(
            {
                "crl_number": ca.config.crl_number,
                "revoked": [serial_hex(r.serial_number) for r in result],
                "next_update": next_update,
                "written": str(out or directory / "crl.pem"),
            }
        )
        return
    console.print(
        f"[green]✓[/] CRL number {ca.config.crl_number}: {len(list(result))} revoked, "
        f"next update {next_update}"
    )
    console.print(f"  {out or directory / 'crl.pem'}")


@app.command("list")
@handle_errors
def list_issued(directory: DirOption, json_output: JsonOption = False) -> None:
    """What this CA issued: serial, subject, expiry and status."""
    ca = OfflineCA.open(directory)
    now = datetime.now(UTC)
    records = ca.records()
    if json_output:
        print_json([r.to_dict(now) for r in records])
        return
    if not records:
        console.print("nothing issued yet")
    for record in records:
        status = record.status(now)
        style = {"live": "green", "expired": "yellow", "revoked": "red"}[status]
        console.print(
            f"{record.serial}  [{style}]{status:7}[/]  "
            f"until {record.not_after[:10]}  {record.subject}"
        )
