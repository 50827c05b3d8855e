"""How `mutls secret` shows secrets: trees of per-environment metadata, expiry in colour.

Rendering only: the commands live in :mod:`mutls.cli.secrets`. Nothing here ever sees a secret
value; the API never returns one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.tree import Tree

from mutls.cli.output import console

_STATUS_STYLE = {
    "ok": "green",
    "warning": "yellow",
    "urgent": "bold red",
    "expired": "bold red",
    "not_yet_valid": "bold red",
}


def days_style(metadata: Mapping[str, Any]) -> str:
    return _STATUS_STYLE.get(str(metadata.get("expiry_status")), "")


_CERT_FIELDS = (
    "subject",
    "issuer",
    "serial",
    "valid_from",
    "valid_until",
    "days_remaining",
    "expiry_status",
    "fingerprint_sha256",
    "has_private_key",
    "has_passphrase",
    "warnings",
)


def escape(text: str) -> str:
    return text.replace("[", r"\[")


def _days(metadata: Mapping[str, Any]) -> str | None:
    """``N days remaining`` in the expiry status's colour, or None for values without expiry."""
    days = metadata.get("days_remaining")
    if days is None:
        return None
    style = days_style(metadata) or "default"
    status = str(metadata.get("expiry_status") or "")
    if isinstance(days, int) and days < 0:
        text = f"expired {-days} days ago"
    else:
        text = f"{days} days remaining"
    if status and status != "ok":
        text += f" ({status})"
    return f"[{style}]{text}[/]"


def _date(value: object) -> str:
    if not isinstance(value, str):
        return str(value)
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d")
    except ValueError:
        return value


def soonest_expiry(environments: Mapping[str, Any]) -> str:
    dated = [
        (str(item["metadata"]["valid_until"]), env, item["metadata"])
        for env, item in environments.items()
        if isinstance(item.get("metadata"), dict) and item["metadata"].get("valid_until")
    ]
    if not dated:
        return "[dim]-[/]"
    # The API writes every time in one UTC format, so the strings sort like the times.
    _, env, metadata = min(dated, key=lambda row: row[0])
    days = _days(metadata) or ""
    return f"{_date(metadata['valid_until'])} {days} [dim]({env})[/]"


def _when(value: object) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS UTC`` (the API speaks UTC only)."""
    if not isinstance(value, str):
        return "?" if value is None else str(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC")


def render_environment_summary(secret: Mapping[str, Any], env: str) -> None:
    """One line about the value just stored, and any warnings the server had about it."""
    item = secret.get("environments", {}).get(env)
    if not isinstance(item, dict):
        return
    metadata = item.get("metadata") or {}
    if metadata.get("subject"):
        days = _days(metadata) or ""
        console.print(
            f"  {escape(str(metadata['subject']))}, valid until "
            f"{_date(metadata.get('valid_until'))} {days}"
        )
    for warning in metadata.get("warnings") or []:
        console.print(f"  [yellow]![/] {escape(_warning_text(warning))}")


def _warning_text(warning: object) -> str:
    if isinstance(warning, dict):
        text = str(warning.get("message") or warning)
        return f"{text} ({warning['code']})" if warning.get("code") else text
    return str(warning)


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


_LABELS = {
    "san": "SANs",
    "chain_length": "Chain (leaf + intermediates)",
    "has_ca_bundle": "CA bundle",
    "ca_bundle_subjects": "CA bundle subjects",
    "extended_key_usage": "Extended key usage",
    "key_type": "Key type",
    "token_url": "Token URL",
    "client_id": "Client ID",
    "auth_method": "Auth method",
    "certificate_secret": "Certificate secret",
    "certificate_secret_id": "Certificate secret ID",
    "has_client_secret": "Client secret",
    "has_value": "Value",
}


def _metadata_branch(tree: Tree, metadata: Mapping[str, Any]) -> None:
    if "subject" in metadata:
        tree.add(f"[bold]Subject[/]  {escape(str(metadata['subject']))}")
    if "issuer" in metadata:
        tree.add(f"[bold]Issuer[/]   {escape(str(metadata['issuer']))}")
    if "serial" in metadata:
        tree.add(f"[bold]Serial[/]   {metadata['serial']}")
    if "valid_until" in metadata:
        days = _days(metadata) or ""
        tree.add(
            f"[bold]Validity[/] {_when(metadata.get('valid_from'))} → "
            f"{_when(metadata['valid_until'])}  {days}"
        )
    if "fingerprint_sha256" in metadata:
        tree.add(f"[bold]SHA-256[/]  {metadata['fingerprint_sha256']}")
    if "has_private_key" in metadata:
        tree.add(
            f"[bold]Private key[/] {_value_text(metadata['has_private_key'])}, "
            f"passphrase {_value_text(metadata.get('has_passphrase', False))}"
        )
    for key, value in metadata.items():
        if key in _CERT_FIELDS or value in (None, "", [], {}):
            continue
        label = _LABELS.get(key) or key.replace("_", " ").capitalize()
        tree.add(f"[bold]{label}[/] {escape(_value_text(value))}")
    warnings = metadata.get("warnings") or []
    if warnings:
        branch = tree.add("[bold]Warnings[/]")
        for warning in warnings:
            branch.add(f"[yellow]![/] {escape(_warning_text(warning))}")


def render_secret(secret: Mapping[str, Any]) -> None:
    tree = Tree(
        f"[bold]Secret[/] {escape(str(secret['name']))} [dim]({secret['id']})[/]",
    )
    tree.add(f"[bold]Type[/]     {secret['secret_type']}")
    tree.add(f"[bold]Account[/]  {secret.get('account_id') or 'platform'}")
    if secret.get("description"):
        tree.add(f"[bold]Description[/] {escape(str(secret['description']))}")
    if secret.get("strict_expiry_enforcement"):
        tree.add("[bold]Strict expiry[/] on: the egress proxy refuses an expired certificate")
    tree.add(f"[bold]Created[/]  {_when(secret.get('created_at'))} by {secret.get('created_by')}")
    tree.add(f"[bold]Updated[/]  {_when(secret.get('updated_at'))}")
    environments = secret.get("environments", {})
    if not environments:
        tree.add("[bold]Environments[/] [yellow]none: the secret has no value yet[/]")
    default = secret.get("default_environment")
    for env in sorted(environments, key=lambda e: (e != default, e)):
        item = environments[env]
        mark = " [dim](default)[/]" if env == default else ""
        branch = tree.add(
            f"[bold cyan]{env}[/]{mark}  version {item.get('version')}, set "
            f"{_when(item.get('created_at'))} by {item.get('created_by')}"
        )
        _metadata_branch(branch, item.get("metadata") or {})
    console.print(tree)
