"""``mutls account mtls`` and ``mutls cert issue|list|revoke``: seed 003's flow through the API.

An admin opts an account into mTLS (``mutls account mtls acme --enable``); a "Manage mTLS" user
of the account sends a CSR and gets the certificate and its chain back (``mutls cert issue acme
--csr client.csr --out client.pem``); ``mutls cert list acme`` shows what the account holds;
``mutls cert revoke SERIAL --reason key_compromise`` takes one back (the platform's CRL and OCSP
answers reflect it at once). The private key never leaves the customer: only the CSR travels.

``cert issue``, ``cert list`` and ``cert revoke`` sit in the local ``mutls cert`` toolkit group,
next to inspect, convert, match and verify, but unlike those they call the running platform's API.
"""

from __future__ import annotations

import base64
import enum
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mutls.cli.client import ApiError, api_client, segment
from mutls.cli.common import JsonOption, handle_errors
from mutls.cli.output import EXIT_ERROR, console, err_console, print_json
from mutls.files import PUBLIC, read_input, write_atomic

__all__ = ["RevokeReason", "account_mtls", "cert_issue", "cert_list", "cert_revoke"]

MAX_CSR_FILE = 64 * 1024

AccountArg = Annotated[str, typer.Argument(help="Account id (acc_...) or name.")]


class RevokeReason(enum.StrEnum):
    """The RFC 5280 reasons in the admin API's spelling (``mutls.api.schemas_ca.REASONS``)."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "key_compromise"
    CA_COMPROMISE = "ca_compromise"
    AFFILIATION_CHANGED = "affiliation_changed"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation_of_operation"
    CERTIFICATE_HOLD = "certificate_hold"
    PRIVILEGE_WITHDRAWN = "privilege_withdrawn"


def _escape(text: object) -> str:
    return str(text).replace("[", r"\[")


def _when(value: object) -> str:
    return value.replace("T", " ")[:19] if isinstance(value, str) else "-"


@contextmanager
def _explained(*, as_json: bool) -> Iterator[None]:
    """An API refusal with details (every broken rule, the live certificates filling the quota)
    lists them before the shared handler prints the message and the hint."""
    try:
        yield
    except ApiError as error:
        if not as_json:
            _print_details(error.extra)
        raise


def _print_details(extra: Mapping[str, object]) -> None:
    violations = extra.get("violations")
    if isinstance(violations, list):
        for v in violations:
            if isinstance(v, dict):
                err_console.print(f"  [red]✗[/] {v.get('rule')}: {_escape(v.get('message'))}")
    live = extra.get("live_certificates")
    if isinstance(live, list):
        err_console.print("live certificates:")
        for c in live:
            if isinstance(c, dict):
                err_console.print(
                    f"  {c.get('serial')}  {_escape(c.get('subject'))}  "
                    f"expires {_when(c.get('not_after'))}"
                )


# --- mutls account mtls --------------------------------------------------------------------


@handle_errors
def account_mtls(
    ctx: typer.Context,
    account: AccountArg,
    enable: Annotated[
        bool | None,
        typer.Option(
            "--enable/--disable", help="Opt the account in or out of mTLS.", show_default=False
        ),
    ] = None,
    enforce: Annotated[
        bool | None,
        typer.Option(
            "--enforce/--no-enforce",
            help="Require mTLS for the whole organisation.",
            show_default=False,
        ),
    ] = None,
    quota: Annotated[
        int | None,
        typer.Option("--quota", help="Live certificates the account may hold.", show_default=False),
    ] = None,
    routes: Annotated[
        list[str] | None,
        typer.Option(
            "--route",
            help="A route or API version the account may call; repeat it. Replaces the list.",
            show_default=False,
        ),
    ] = None,
    allow_ips: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-ip",
            help="A source address or CIDR block; repeat it. Replaces the allowlist.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Show an account's mTLS settings, or change the ones given (platform admins)."""
    body: dict[str, object] = {}
    if enable is not None:
        body["enabled"] = enable
    if enforce is not None:
        body["enforced"] = enforce
    if quota is not None:
        body["certificate_quota"] = quota
    if routes:
        body["allowed_routes"] = routes
    if allow_ips:
        body["ip_allowlist"] = allow_ips
    path = f"/admin/accounts/{segment(account)}/mtls"
    with api_client(ctx) as client:
        settings = client.put(path, body) if body else client.get(path)
    if json_output:
        print_json(settings)
        return
    if body:
        console.print(f"[green]✓[/] updated mTLS settings of {_escape(account)}")
    state = "[green]enabled[/]" if settings.get("enabled") else "[yellow]disabled[/]"
    console.print(f"  mTLS               {state}")
    console.print(f"  enforced           {'yes' if settings.get('enforced') else 'no'}")
    console.print(f"  certificate quota  {settings.get('certificate_quota')}")
    console.print(
        f"  allowed routes     {_escape(', '.join(settings.get('allowed_routes') or []) or 'all')}"
    )
    console.print(
        f"  IP allowlist       {_escape(', '.join(settings.get('ip_allowlist') or []) or 'any')}"
    )


# --- mutls cert issue ----------------------------------------------------------------------


@handle_errors
def cert_issue(
    ctx: typer.Context,
    account: AccountArg,
    csr: Annotated[
        Path, typer.Option("--csr", help="The CSR (PEM or DER); `-` reads standard input.")
    ],
    days: Annotated[
        int | None,
        typer.Option("--days", help="Validity in days (1-398; default 365).", show_default=False),
    ] = None,
    api_versions: Annotated[
        list[str] | None,
        typer.Option(
            "--api-version",
            help="An API version the certificate may call; repeat it.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every issuance rule; issue nothing.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the certificate and its chain (PEM, mode 0644) here; else stdout.",
            show_default=False,
        ),
    ] = None,
    ca_out: Annotated[
        Path | None,
        typer.Option(
            "--ca-out", help="Also write the root CA certificate (PEM) here.", show_default=False
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Issue a client certificate to an account from a CSR (the key never leaves you)."""
    csr_text = _csr_text(read_input(csr, max_size=MAX_CSR_FILE))
    body: dict[str, object] = {"csr_pem": csr_text, "dry_run": dry_run}
    if days is not None:
        body["validity_days"] = days
    if api_versions:
        body["api_versions"] = api_versions
    path = f"/admin/accounts/{segment(account)}/certificates"
    with _explained(as_json=json_output), api_client(ctx) as client:
        answer = client.post(path, body)
    if dry_run:
        _report_dry_run(answer, as_json=json_output)
        return
    bundle = answer["certificate_pem"] + answer["chain_pem"]
    if out is not None:
        write_atomic(out, bundle.encode(), mode=PUBLIC)
    if ca_out is not None:
        write_atomic(ca_out, answer["ca_pem"].encode(), mode=PUBLIC)
    if json_output:
        print_json(answer)
        return
    if out is None:
        typer.echo(bundle, nl=False)
    err_console.print(
        f"[green]✓[/] issued {answer['serial']} to {_escape(account)}: "
        f"{_escape(answer['subject'])}, valid until {_when(answer['not_after'])}"
        + (f"; certificate and chain in {out}" if out is not None else "")
    )


def _csr_text(data: bytes) -> str:
    """PEM as it is; DER (binary) is wrapped in PEM so that it travels in JSON."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return data.decode("ascii", errors="replace")
    encoded = "\n".join(textwrap.wrap(base64.b64encode(data).decode(), 64))
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{encoded}\n-----END CERTIFICATE REQUEST-----\n"


def _report_dry_run(result: Mapping[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json(result)
    elif result.get("ok"):
        console.print(
            f"[green]✓[/] the CSR passes every issuance rule: {_escape(result['subject'])}"
        )
    else:
        console.print(f"[red]✗[/] the CSR breaks {len(result['violations'])} issuance rule(s):")
        for v in result["violations"]:
            console.print(f"  [red]✗[/] {v['rule']}: {_escape(v['message'])}")
    if not result.get("ok"):
        raise typer.Exit(EXIT_ERROR)


# --- mutls cert list -----------------------------------------------------------------------


@handle_errors
def cert_list(
    ctx: typer.Context,
    account: AccountArg,
    status: Annotated[
        str | None,
        typer.Option("--status", help="live, expired or revoked.", show_default=False),
    ] = None,
    expiring_within: Annotated[
        int | None,
        typer.Option(
            "--expiring-within", help="Live ones expiring within DAYS.", show_default=False
        ),
    ] = None,
    serial: Annotated[str | None, typer.Option("--serial", show_default=False)] = None,
    fingerprint: Annotated[
        str | None, typer.Option("--fingerprint", help="SHA-256.", show_default=False)
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="A part of the subject, any case.", show_default=False),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """An account's issued certificates, soonest expiry first, with lineage."""
    params = {
        "status": status,
        "expiring_within_days": expiring_within,
        "serial": serial,
        "fingerprint": fingerprint,
        "subject": subject,
    }
    with api_client(ctx) as client:
        answer = client.get(f"/admin/accounts/{segment(account)}/certificates", params=params)
    if json_output:
        print_json(answer)
        return
    rows = answer.get("certificates", [])
    if not rows:
        err_console.print(
            "no certificates match; issue one with `mutls cert issue ACCOUNT --csr FILE`"
        )
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("Serial", "Subject", "Status", "Expires", "API versions", "Lineage", "ID"):
        table.add_column(column, overflow="fold")
    style = {"live": "green", "expired": "yellow", "revoked": "red"}
    for row in rows:
        lineage = []
        if row.get("renewed_from_id"):
            lineage.append(f"from {row['renewed_from_id']}")
        if row.get("renewed_by_id"):
            lineage.append(f"by {row['renewed_by_id']}")
        table.add_row(
            row["serial"],
            _escape(row["subject"]),
            f"[{style.get(row['status'], 'white')}]{row['status']}[/]",
            _when(row["not_after"]),
            ", ".join(row.get("api_versions") or []) or "-",
            "; ".join(lineage) or "-",
            row["id"],
        )
    console.print(table)


# --- mutls cert revoke ---------------------------------------------------------------------


@handle_errors
def cert_revoke(
    ctx: typer.Context,
    certificate: Annotated[
        str, typer.Argument(help="The certificate's id (crt_...) or serial (hex, colons allowed).")
    ],
    reason: Annotated[
        RevokeReason | None,
        typer.Option(
            "--reason",
            help="RFC 5280 reason; key_compromise if the private key may have leaked "
            "[default: unspecified].",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Revoke an issued certificate; the platform's CRL and OCSP answers show it at once."""
    body: dict[str, object] = {} if reason is None else {"reason": reason.value}
    with api_client(ctx) as client:
        answer = client.post(f"/admin/certificates/{segment(certificate)}/revoke", body or None)
    if json_output:
        print_json(answer)
        return
    err_console.print(
        f"[green]✓[/] revoked {answer['serial']} ({_escape(answer['subject'])}) "
        f"at {_when(answer['revoked_at'])}, reason {answer.get('revocation_reason') or '-'}"
    )
