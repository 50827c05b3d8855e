"""``mutls doctor URL``: walk an mTLS connection and stop at the first failure, with its fix.

A checklist for people (✓/✗ with hints), one JSON object with ``--json``. Exit 0 when every step
passes, 1 otherwise. The identity comes from files (``--cert``/``--key`` or ``--p12``) or from
the local vault (``--secret NAME --env ENV``, as ``mutls.client.secret`` reads it, audited with
the purpose ``doctor``). Passphrases come from ``--passphrase-file`` or ``$MUTLS_PASSPHRASE``,
never from a prompt: a missing passphrase is itself a finding.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from mutls.cli.common import JsonOption, PassphraseFileOption, handle_errors, in_source
from mutls.cli.output import EXIT_ERROR, console, print_json
from mutls.client.secret import DEFAULT_ENVIRONMENT, certificate_secret_fields
from mutls.doctor import ClientSource, DoctorOptions, Report, diagnose
from mutls.doctor.material import DOCTOR_PURPOSE, source_from_secret
from mutls.errors import InvalidArgument
from mutls.files import read_input
from mutls.pki.loader import DEFAULT_MAX_INPUT, load_certificates
from mutls.tls.egress_context import EgressTlsPreset

__all__ = ["doctor", "render_checklist"]

DOCTOR_ACTOR = "cli:doctor"


@handle_errors
def doctor(
    url: Annotated[str, typer.Argument(help="The https:// URL to call, path included.")],
    cert: Annotated[
        Path | None,
        typer.Option(
            "--cert", help="Our client certificate (and chain), any format.", show_default=False
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", help="Its private key, if not in the certificate file.", show_default=False
        ),
    ] = None,
    p12: Annotated[
        Path | None,
        typer.Option(
            "--p12", help="A PKCS#12 file with certificate, chain and key.", show_default=False
        ),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret", help="A certificate secret in the local vault.", show_default=False
        ),
    ] = None,
    env: Annotated[
        str, typer.Option("--env", help="The secret's environment.")
    ] = DEFAULT_ENVIRONMENT,
    ca: Annotated[
        Path | None,
        typer.Option(
            "--ca",
            help="CA bundle the server must chain to (default: the secret's ca_bundle_pem, else "
            "the system store).",
            show_default=False,
        ),
    ] = None,
    servername: Annotated[
        str | None,
        typer.Option(
            "--servername",
            help="SNI and the name the server certificate must hold (default: the URL's host).",
            show_default=False,
        ),
    ] = None,
    tls: Annotated[
        EgressTlsPreset, typer.Option("--tls", help="TLS versions we offer (egress presets).")
    ] = EgressTlsPreset.DEFAULT,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.5, max=120, help="Seconds per network step.")
    ] = 10.0,
    passphrase_file: PassphraseFileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Walk an mTLS connection step by step and name the first thing that fails, with the fix."""
    given = [
        flag for flag, value in (("--cert", cert), ("--p12", p12), ("--secret", secret)) if value
    ]
    if len(given) > 1:
        raise InvalidArgument(f"expected one of --cert, --p12 or --secret; got {', '.join(given)}")
    if key is not None and cert is None:
        raise InvalidArgument("--key goes with --cert")
    source: ClientSource | None = None
    bundle: bytes | None = None
    passphrase = in_source(passphrase_file, "the client key").read(required=False)
    if secret is not None:
        fields = certificate_secret_fields(secret, env, actor=DOCTOR_ACTOR, purpose=DOCTOR_PURPOSE)
        source, bundle = source_from_secret(fields, secret, env)
    elif cert is not None or p12 is not None:
        path = cert or p12
        assert path is not None
        source = ClientSource(
            certificate=read_input(path, max_size=DEFAULT_MAX_INPUT),
            key=read_input(key, max_size=DEFAULT_MAX_INPUT) if key else None,
            passphrase=passphrase,
            origin=str(path),
        )
    options = DoctorOptions(servername=servername, preset=tls, timeout=timeout)
    if ca is not None:
        cas = load_certificates(read_input(ca, max_size=DEFAULT_MAX_INPUT))
        options = DoctorOptions(
            servername=servername, preset=tls, timeout=timeout, cas=tuple(cas), ca_origin=str(ca)
        )
    elif bundle is not None:
        options = DoctorOptions(
            servername=servername,
            preset=tls,
            timeout=timeout,
            cas=tuple(load_certificates(bundle)),
            ca_origin=f"the ca_bundle_pem of secret {secret}",
        )
    report = diagnose(url, source, options=options, now=datetime.now(UTC))
    if json_output:
        print_json(report.to_dict())
    else:
        render_checklist(report)
    if not report.ok:
        raise typer.Exit(EXIT_ERROR)


_LABELS = {
    "material.load": "our certificate and key load",
    "material.key": "the key matches the certificate",
    "material.validity": "our certificate is valid now",
    "material.usage": "our certificate allows clientAuth",
    "material.chain": "the chain we send",
    "dns": "name resolution",
    "tcp": "TCP connect",
    "tls.versions": "TLS versions",
    "server.certificate": "the server's certificate and name",
    "server.client_ca": "client CAs the server accepts",
    "handshake": "handshake with our certificate",
    "http": "HTTP answer",
}


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def render_checklist(report: Report) -> None:
    console.print(f"[bold]mutls doctor[/] {_escape(report.url)}")
    for step in report.steps:
        mark = "[green]✓[/]" if step.ok else "[bold red]✗[/]"
        code = (
            f" [dim]({step.code}{'/' + step.reason if step.reason else ''})[/]" if step.code else ""
        )
        console.print(
            f"{mark} [bold]{_LABELS.get(step.name, step.name)}[/]{code}: {_escape(step.detail)}"
        )
        if step.hint:
            console.print(f"    [bold]hint[/]: {_escape(step.hint)}")
    cause = report.cause
    if cause is None:
        console.print("[green]all checks passed[/]")
    else:
        console.print(f"[bold red]stopped[/]: {cause.code}")
