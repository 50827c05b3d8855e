"""Rendering for the CLI: Rich for people, one JSON object for programs, errors for both."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import NoReturn

import typer
from rich.console import Console
from rich.tree import Tree

from mutls.errors import MutlsError
from mutls.pki.inspect import CertificateReport, ExpiryStatus, MaterialReport
from mutls.pki.material import Finding, Severity

__all__ = ["console", "err_console", "fail", "print_json", "render_report"]

# When piped, Rich would crop at 80 columns; fingerprints and subjects are longer than that.
_PIPE_WIDTH = 240
# emoji=False: Rich would turn fingerprint pairs such as ":CD:" into emoji.
console = Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else _PIPE_WIDTH)
err_console = Console(
    stderr=True, highlight=False, emoji=False, width=None if sys.stderr.isatty() else _PIPE_WIDTH
)

EXIT_ERROR = 1

_STATUS_STYLE = {
    ExpiryStatus.OK: "green",
    ExpiryStatus.WARNING: "yellow",
    ExpiryStatus.URGENT: "bold red",
    ExpiryStatus.EXPIRED: "bold red",
    ExpiryStatus.NOT_YET_VALID: "bold red",
}
_SEVERITY_MARK = {
    Severity.INFO: "[cyan]i[/]",
    Severity.WARNING: "[yellow]![/]",
    Severity.ERROR: "[bold red]✗[/]",
}


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def fail(error: MutlsError, *, as_json: bool) -> NoReturn:
    """Print ``error`` (message and hint) and exit non-zero."""
    if as_json:
        print_json({"error": error.to_dict()})
    else:
        err_console.print(f"[bold red]error[/] [dim]({error.code})[/]: {_escape(error.message)}")
        violations = getattr(error, "violations", ())
        for violation in violations:
            err_console.print(f"  [red]✗[/] {violation.rule}: {_escape(violation.message)}")
        if error.hint:
            err_console.print(f"[bold]hint[/]: {_escape(error.hint)}")
    raise typer.Exit(EXIT_ERROR)


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def _cert_branch(tree: Tree, report: CertificateReport) -> None:
    style = _STATUS_STYLE[report.expiry_status]
    tree.add(f"[bold]Subject[/]  {_escape(report.subject)}")
    tree.add(f"[bold]Issuer[/]   {_escape(report.issuer)}")
    tree.add(f"[bold]Serial[/]   {report.serial}")
    tree.add(
        f"[bold]Validity[/] {report.not_before.isoformat()} → {report.not_after.isoformat()}  "
        f"[{style}]{report.expiry_status.value}, {report.days_remaining} days left[/]"
    )
    if report.subject_alt_names:
        tree.add(f"[bold]SANs[/]     {_escape(', '.join(report.subject_alt_names))}")
    tree.add(f"[bold]Key[/]      {report.key.label()}")
    if report.key_usage:
        tree.add(f"[bold]Key usage[/] {', '.join(report.key_usage)}")
    if report.extended_key_usage:
        tree.add(f"[bold]Extended key usage[/] {', '.join(report.extended_key_usage)}")
    if report.is_ca:
        tree.add(f"[bold]CA[/]       yes (path length {report.path_length})")
    tree.add(f"[bold]SHA-256[/]  {report.sha256_fingerprint}")
    tree.add(f"[bold]SPKI pin[/] sha256/{report.spki_sha256}")


def render_findings(tree: Tree, findings: Iterable[Finding]) -> None:
    items = list(findings)
    if not items:
        return
    branch = tree.add("[bold]Findings[/]")
    for finding in items:
        node = branch.add(
            f"{_SEVERITY_MARK[finding.severity]} {_escape(finding.message)} "
            f"[dim]({finding.code})[/]"
        )
        if finding.hint:
            node.add(f"[dim]hint: {_escape(finding.hint)}[/]")


def render_report(report: MaterialReport, title: str) -> None:
    if report.certificate is not None:
        tree = Tree(f"[bold]Certificate[/] {_escape(title)} [dim]({report.source_format})[/]")
        _cert_branch(tree, report.certificate)
        if report.has_private_key:
            match = report.key_matches
            mark = (
                "[green]✓ matches the certificate[/]" if match else "[bold red]✗ does not match[/]"
            )
            encrypted = " (was encrypted)" if report.key_was_encrypted else ""
            tree.add(f"[bold]Private key[/] present{encrypted}, {mark}")
        else:
            tree.add("[bold]Private key[/] not in this file")
        if len(report.chain) > 1:
            chain = tree.add(f"[bold]Chain[/] ({len(report.chain)} certificates, leaf first)")
            for index, link in enumerate(report.chain):
                style = _STATUS_STYLE[link.expiry_status]
                node = chain.add(f"[{index}] {_escape(link.subject)}")
                node.add(f"issuer {_escape(link.issuer)}")
                node.add(
                    f"valid {link.not_before.date()} → {link.not_after.date()} "
                    f"[{style}]{link.expiry_status.value}[/]"
                )
    elif report.kind == "csr":
        tree = Tree(f"[bold]Certificate signing request[/] {_escape(title)}")
        tree.add(f"[bold]Subject[/] {_escape(report.csr_subject or '')}")
        if report.csr_subject_alt_names:
            tree.add(f"[bold]SANs[/]    {_escape(', '.join(report.csr_subject_alt_names))}")
        if report.csr_key:
            tree.add(f"[bold]Key[/]     {report.csr_key.label()}")
            tree.add(f"[bold]Public key SHA-256[/] {report.csr_key.public_key_sha256}")
    else:
        tree = Tree(f"[bold]Private key[/] {_escape(title)} [dim]({report.source_format})[/]")
        if report.key:
            tree.add(f"[bold]Type[/]    {report.key.label()}")
            tree.add(f"[bold]Public key SHA-256[/] {report.key.public_key_sha256}")
        tree.add(f"[bold]Encrypted[/] {'yes' if report.key_was_encrypted else 'no'}")
    render_findings(tree, report.findings)
    console.print(tree)
