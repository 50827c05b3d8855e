"""``mutls secret``: create, list, show, set, update and delete vault secrets through the admin
API.

Values are read from files or stdin, never from argv (which every user of the machine can read).
Certificate material in PEM goes to the server as it is, so the server's loader names anything
wrong with it; binary material (DER, PKCS#7, a .p12 given as --cert) is loaded here and sent as
PEM, because the API's certificate fields are text. A ``--p12`` file goes as ``pkcs12_base64``.

An encrypted key's passphrase comes from ``--passphrase-file`` or ``$MUTLS_PASSPHRASE``; with
neither, the value is sent without one and, if the server answers ``passphrase_required`` and
there is a terminal, mutls asks and sends it again.
"""

from __future__ import annotations

import base64
import enum
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization
from rich.table import Table

from mutls.cli.client import ApiClient, ApiError, api_client, segment
from mutls.cli.common import JsonOption, PassphraseFileOption, handle_errors, in_source, load_file
from mutls.cli.output import console, err_console, print_json
from mutls.cli.passphrase import PassphraseSource
from mutls.cli.secret_view import (
    days_style,
    escape,
    render_environment_summary,
    render_secret,
    soonest_expiry,
)
from mutls.errors import InvalidArgument, UnsupportedFormat
from mutls.files import read_input
from mutls.pki.export import private_key_pem
from mutls.pki.loader import DEFAULT_MAX_INPUT, load_certificates

__all__ = ["app", "days_style"]

app = typer.Typer(
    no_args_is_help=True,
    help="Vault secrets (certificates, OAuth2 credentials, strings) per environment, via the API.",
)

_PEM_MARK = b"-----BEGIN "
_MAX_VALUE = 256 * 1024
_CERT, _OAUTH2, _STRING = "Certificate value", "OAuth2 value", "String value"


class SecretType(enum.StrEnum):
    CERTIFICATE = "certificate"
    OAUTH2 = "oauth2"
    STRING = "string"


# --- options --------------------------------------------------------------------------------

RefArg = Annotated[str, typer.Argument(help="The secret's id (sec_...) or its name.")]
EnvOption = Annotated[
    str, typer.Option("--env", help="Environment: production, sandbox, or any name.")
]
CertOption = Annotated[
    Path | None,
    typer.Option(
        "--cert",
        help="Certificate, PEM (may hold chain and key too), DER, PKCS#7 or PKCS#12.",
        show_default=False,
        rich_help_panel=_CERT,
    ),
]
KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key", help="Private key (PEM or DER).", show_default=False, rich_help_panel=_CERT
    ),
]
ChainOption = Annotated[
    Path | None,
    typer.Option(
        "--chain",
        help="Intermediate certificates.",
        show_default=False,
        rich_help_panel=_CERT,
    ),
]
CaBundleOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-bundle",
        help="CA certificates that verify the partner's server.",
        show_default=False,
        rich_help_panel=_CERT,
    ),
]
P12Option = Annotated[
    Path | None,
    typer.Option(
        "--p12",
        help="A .p12/.pfx file with certificate, chain and key (instead of --cert/--key).",
        show_default=False,
        rich_help_panel=_CERT,
    ),
]
TokenUrlOption = Annotated[
    str | None,
    typer.Option("--token-url", show_default=False, rich_help_panel=_OAUTH2),
]
ClientIdOption = Annotated[
    str | None,
    typer.Option("--client-id", show_default=False, rich_help_panel=_OAUTH2),
]
ClientSecretFileOption = Annotated[
    Path | None,
    typer.Option(
        "--client-secret-file",
        help="File holding the client secret (not needed with tls_client_auth).",
        show_default=False,
        rich_help_panel=_OAUTH2,
    ),
]
ScopeOption = Annotated[
    list[str] | None,
    typer.Option("--scope", help="Repeat for each scope.", rich_help_panel=_OAUTH2),
]
AuthMethodOption = Annotated[
    str | None,
    typer.Option(
        "--auth-method",
        help="client_secret_basic, client_secret_post, tls_client_auth, ...",
        show_default=False,
        rich_help_panel=_OAUTH2,
    ),
]
CertificateSecretOption = Annotated[
    str | None,
    typer.Option(
        "--certificate-secret",
        help="A certificate secret (name or id) for mTLS to the token endpoint.",
        show_default=False,
        rich_help_panel=_OAUTH2,
    ),
]
AudienceOption = Annotated[
    str | None, typer.Option("--audience", show_default=False, rich_help_panel=_OAUTH2)
]
ValueFileOption = Annotated[
    Path | None,
    typer.Option(
        "--value-file",
        help="File holding the value (one trailing newline is dropped).",
        show_default=False,
        rich_help_panel=_STRING,
    ),
]
ValueStdinOption = Annotated[
    bool,
    typer.Option(
        "--value-stdin",
        help="Read the value from stdin (one trailing newline is dropped).",
        rich_help_panel=_STRING,
    ),
]


@dataclass(frozen=True, kw_only=True)
class ValueOptions:
    """The value options of ``create`` and ``set``, turned into the API's value fields."""

    cert: Path | None = None
    key: Path | None = None
    chain: Path | None = None
    ca_bundle: Path | None = None
    p12: Path | None = None
    passphrase_file: Path | None = None
    token_url: str | None = None
    client_id: str | None = None
    client_secret_file: Path | None = None
    scopes: list[str] = field(default_factory=list)
    auth_method: str | None = None
    certificate_secret: str | None = None
    audience: str | None = None
    value_file: Path | None = None
    value_stdin: bool = False

    def given(self) -> dict[str, str]:
        """Each value option given, by its flag, with the secret type it belongs to."""
        flags = {
            "--cert": (self.cert, "certificate"),
            "--key": (self.key, "certificate"),
            "--chain": (self.chain, "certificate"),
            "--ca-bundle": (self.ca_bundle, "certificate"),
            "--p12": (self.p12, "certificate"),
            "--token-url": (self.token_url, "oauth2"),
            "--client-id": (self.client_id, "oauth2"),
            "--client-secret-file": (self.client_secret_file, "oauth2"),
            "--scope": (self.scopes or None, "oauth2"),
            "--auth-method": (self.auth_method, "oauth2"),
            "--certificate-secret": (self.certificate_secret, "oauth2"),
            "--audience": (self.audience, "oauth2"),
            "--value-file": (self.value_file, "string"),
            "--value-stdin": (self.value_stdin or None, "string"),
        }
        return {flag: kind for flag, (value, kind) in flags.items() if value is not None}

    def passphrase_source(self) -> PassphraseSource:
        return in_source(self.passphrase_file, "the private key")

    def fields(self, secret_type: str) -> dict[str, object]:
        """The API value fields for ``secret_type``; refuses options of another type."""
        given = self.given()
        wrong = [flag for flag, kind in given.items() if kind != secret_type]
        if wrong:
            raise InvalidArgument(
                f"expected value options for a {secret_type} secret; found {', '.join(wrong)}, "
                f"which belong to {given[wrong[0]]} secrets"
            )
        if not given:
            raise InvalidArgument(
                f"expected a value for the {secret_type} secret; no value option was given",
                hint=_VALUE_HINTS[secret_type],
            )
        if self.passphrase_file is not None and secret_type != "certificate":
            raise InvalidArgument("expected --passphrase-file only with a certificate value")
        if secret_type == "certificate":
            return self._certificate()
        if secret_type == "oauth2":
            return self._oauth2()
        return {"value": self._string()}

    def _certificate(self) -> dict[str, object]:
        if self.p12 is not None and (self.cert is not None or self.key is not None):
            raise InvalidArgument("expected either --p12 or --cert/--key; found both")
        if self.p12 is None and self.cert is None:
            raise InvalidArgument(
                "expected the certificate with --cert FILE (or --p12 FILE); found neither",
                hint=_VALUE_HINTS["certificate"],
            )
        source = self.passphrase_source()
        fields: dict[str, object] = {}
        may_need_passphrase = False
        if self.p12 is not None:
            data = read_input(self.p12, max_size=DEFAULT_MAX_INPUT)
            fields["pkcs12_base64"] = base64.b64encode(data).decode("ascii")
            may_need_passphrase = True
        if self.cert is not None:
            text, encrypted = _material_text(self.cert, source)
            fields["certificate_pem"] = text
            may_need_passphrase = may_need_passphrase or encrypted
        if self.key is not None:
            text, encrypted = _material_text(self.key, source)
            fields["private_key_pem"] = text
            may_need_passphrase = may_need_passphrase or encrypted
        if self.chain is not None:
            fields["chain_pem"] = _certificates_text(self.chain)
        if self.ca_bundle is not None:
            fields["ca_bundle_pem"] = _certificates_text(self.ca_bundle)
        if may_need_passphrase:
            # Only a key the server will decrypt needs it; binary input was decrypted above.
            secret = source.read(required=False)
            if secret is not None:
                fields["passphrase"] = _text(secret, "the passphrase")
        return fields

    def _oauth2(self) -> dict[str, object]:
        fields: dict[str, object] = {}
        for name, value in (
            ("token_url", self.token_url),
            ("client_id", self.client_id),
            ("auth_method", self.auth_method),
            ("certificate_secret", self.certificate_secret),
            ("audience", self.audience),
        ):
            if value is not None:
                fields[name] = value
        if self.scopes:
            fields["scopes"] = list(self.scopes)
        if self.client_secret_file is not None:
            raw = read_input(self.client_secret_file, max_size=_MAX_VALUE)
            secret = _text(_one_line(raw), str(self.client_secret_file))
            if not secret:
                raise InvalidArgument(
                    f"expected a client secret in {self.client_secret_file}; the file is empty"
                )
            fields["client_secret"] = secret
        return fields

    def _string(self) -> str:
        if self.value_file is not None and self.value_stdin:
            raise InvalidArgument("expected one of --value-file and --value-stdin; found both")
        if self.value_file is not None:
            raw = read_input(self.value_file, max_size=_MAX_VALUE)
            where = str(self.value_file)
        else:
            if sys.stdin.isatty():
                err_console.print("Enter the value, then Ctrl-D:")
            raw = sys.stdin.buffer.read(_MAX_VALUE + 1)
            if len(raw) > _MAX_VALUE:
                raise InvalidArgument(f"expected a value of at most {_MAX_VALUE} bytes on stdin")
            where = "stdin"
        value = _text(raw.removesuffix(b"\n").removesuffix(b"\r"), where)
        if not value:
            raise InvalidArgument(f"expected a value in {where}; found nothing")
        return value


_VALUE_HINTS = {
    "certificate": "give --cert FILE (and --key FILE unless the file holds the key), or --p12 FILE",
    "oauth2": "give --token-url, --client-id and --client-secret-file (or --auth-method "
    "tls_client_auth with --certificate-secret)",
    "string": "give --value-file FILE or --value-stdin",
}


def _one_line(raw: bytes) -> bytes:
    return raw.removesuffix(b"\n").removesuffix(b"\r")


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"expected UTF-8 text in {where}; found binary data") from None


def _material_text(path: Path, source: PassphraseSource) -> tuple[str, bool]:
    """PEM text for ``path`` and whether it holds an encrypted key the server must open."""
    data = read_input(path, max_size=DEFAULT_MAX_INPUT)
    if _PEM_MARK in data:
        text = _pem(data, path)
        return text, "ENCRYPTED" in text
    # Binary: load it here (asking for a passphrase if it is protected) and send PEM.
    material = load_file(path, passphrase=source)
    certificates = (*material.chain, *material.extra_certificates)
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    if material.key is not None:
        pem += private_key_pem(material.key, None)
    return pem.decode("ascii"), False


def _certificates_text(path: Path) -> str:
    data = read_input(path, max_size=DEFAULT_MAX_INPUT)
    if _PEM_MARK in data:
        return _pem(data, path)
    certificates = load_certificates(data)
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates).decode()


def _pem(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsupportedFormat(
            f"expected PEM text in {path}; found a PEM header among bytes that are not text"
        ) from None


def _send(
    call: Callable[[dict[str, object]], Any],
    fields: dict[str, object],
    source: PassphraseSource | None,
) -> Any:
    """Send ``fields``; if the server needs a passphrase that was not given, ask and resend."""
    try:
        return call(fields)
    except ApiError as error:
        retry = (
            error.code == "passphrase_required"
            and source is not None
            and "passphrase" not in fields
            and not source.given()
            and sys.stdin.isatty()
        )
        if not retry or source is None:
            raise
        secret = source.ask()
        return call({**fields, "passphrase": _text(secret, "the passphrase")})


# --- commands ------------------------------------------------------------------------------


@app.command("create")
@handle_errors
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name, unique within its account.")],
    secret_type: Annotated[SecretType, typer.Option("--type", help="What the secret holds.")],
    env: EnvOption = "production",
    description: Annotated[str | None, typer.Option(show_default=False)] = None,
    account: Annotated[
        str | None,
        typer.Option("--account", help="Owner account (id or name).", show_default=False),
    ] = None,
    cert: CertOption = None,
    key: KeyOption = None,
    chain: ChainOption = None,
    ca_bundle: CaBundleOption = None,
    p12: P12Option = None,
    passphrase_file: PassphraseFileOption = None,
    token_url: TokenUrlOption = None,
    client_id: ClientIdOption = None,
    client_secret_file: ClientSecretFileOption = None,
    scope: ScopeOption = None,
    auth_method: AuthMethodOption = None,
    certificate_secret: CertificateSecretOption = None,
    audience: AudienceOption = None,
    value_file: ValueFileOption = None,
    value_stdin: ValueStdinOption = False,
    strict_expiry: Annotated[
        bool,
        typer.Option(
            "--strict-expiry",
            help="The egress proxy refuses an expired certificate of this secret "
            "(secret_expired) instead of using it with a warning.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Create a secret with its value for one environment (add others with `secret set`)."""
    values = ValueOptions(
        cert=cert,
        key=key,
        chain=chain,
        ca_bundle=ca_bundle,
        p12=p12,
        passphrase_file=passphrase_file,
        token_url=token_url,
        client_id=client_id,
        client_secret_file=client_secret_file,
        scopes=scope or [],
        auth_method=auth_method,
        certificate_secret=certificate_secret,
        audience=audience,
        value_file=value_file,
        value_stdin=value_stdin,
    )
    fields = values.fields(secret_type.value)
    body: dict[str, object] = {"name": name, "secret_type": secret_type.value, "environment": env}
    if description is not None:
        body["description"] = description
    if account is not None:
        body["account_id"] = account
    if strict_expiry:
        body["strict_expiry_enforcement"] = True
    source = values.passphrase_source() if secret_type is SecretType.CERTIFICATE else None
    with api_client(ctx) as client:
        created = _send(lambda f: client.post("/admin/secrets", {**body, **f}), fields, source)
    if json_output:
        print_json(created)
        return
    console.print(f"[green]✓[/] created {secret_type} secret {name} ({created['id']}) for {env}")
    render_environment_summary(created, env)


@app.command("set")
@handle_errors
def set_value(
    ctx: typer.Context,
    ref: RefArg,
    env: Annotated[
        str, typer.Option("--env", help="Environment whose value to create or replace.")
    ],
    cert: CertOption = None,
    key: KeyOption = None,
    chain: ChainOption = None,
    ca_bundle: CaBundleOption = None,
    p12: P12Option = None,
    passphrase_file: PassphraseFileOption = None,
    token_url: TokenUrlOption = None,
    client_id: ClientIdOption = None,
    client_secret_file: ClientSecretFileOption = None,
    scope: ScopeOption = None,
    auth_method: AuthMethodOption = None,
    certificate_secret: CertificateSecretOption = None,
    audience: AudienceOption = None,
    value_file: ValueFileOption = None,
    value_stdin: ValueStdinOption = False,
    json_output: JsonOption = False,
) -> None:
    """Create or replace one environment's value (a new version; the old one is destroyed)."""
    values = ValueOptions(
        cert=cert,
        key=key,
        chain=chain,
        ca_bundle=ca_bundle,
        p12=p12,
        passphrase_file=passphrase_file,
        token_url=token_url,
        client_id=client_id,
        client_secret_file=client_secret_file,
        scopes=scope or [],
        auth_method=auth_method,
        certificate_secret=certificate_secret,
        audience=audience,
        value_file=value_file,
        value_stdin=value_stdin,
    )
    with api_client(ctx) as client:
        # The value options depend on the secret's type, which only the server knows.
        current = _get(client, ref)
        secret_type = str(current["secret_type"])
        fields = values.fields(secret_type)
        source = values.passphrase_source() if secret_type == "certificate" else None
        path = f"/admin/secrets/{segment(str(current['id']))}/environments/{segment(env)}"
        updated = _send(lambda f: client.put(path, f), fields, source)
    if json_output:
        print_json(updated)
        return
    version = updated["environments"].get(env, {}).get("version", "?")
    console.print(f"[green]✓[/] {updated['name']}: {env} value set (version {version})")
    render_environment_summary(updated, env)


@app.command("update")
@handle_errors
def update(
    ctx: typer.Context,
    ref: RefArg,
    description: Annotated[
        str | None,
        typer.Option("--description", help="A new description ('' clears it).", show_default=False),
    ] = None,
    strict_expiry: Annotated[
        bool | None,
        typer.Option(
            "--strict-expiry/--no-strict-expiry",
            help="Whether the egress proxy refuses an expired certificate of this secret "
            "(secret_expired) or uses it with a warning.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Change a secret's settings, not its values (those change with `secret set`)."""
    body: dict[str, object] = {}
    if description is not None:
        body["description"] = description
    if strict_expiry is not None:
        body["strict_expiry_enforcement"] = strict_expiry
    if not body:
        raise InvalidArgument(
            "expected at least one change (--description, --strict-expiry or "
            "--no-strict-expiry); found none",
            hint="see `mutls secret update --help`",
        )
    with api_client(ctx) as client:
        updated = client.request("PATCH", f"/admin/secrets/{segment(ref)}", body=body)
    if not isinstance(updated, dict):
        raise ApiError("unexpected_response", "expected a secret object from the API")
    if json_output:
        print_json(updated)
        return
    strict = "on" if updated.get("strict_expiry_enforcement") else "off"
    console.print(f"[green]✓[/] updated secret {escape(str(updated['name']))}")
    console.print(f"  strict expiry  {strict}")
    console.print(f"  description    {escape(str(updated.get('description') or '-'))}")


@app.command("list")
@handle_errors
def list_command(
    ctx: typer.Context,
    secret_type: Annotated[
        SecretType | None, typer.Option("--type", help="Only this type.", show_default=False)
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Part of the name, any case.", show_default=False)
    ] = None,
    env: Annotated[
        str | None,
        typer.Option("--env", help="Only secrets with a value here.", show_default=False),
    ] = None,
    expiring_within: Annotated[
        int | None,
        typer.Option(
            "--expiring-within",
            min=0,
            metavar="DAYS",
            help="Only certificates whose validity ends within DAYS days.",
            show_default=False,
        ),
    ] = None,
    account: Annotated[
        str | None,
        typer.Option("--account", help="Owner account (id or name).", show_default=False),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Secrets you may see, with environments and the soonest certificate expiry."""
    params = {
        "type": secret_type.value if secret_type else None,
        "name": name,
        "environment": env,
        "expiring_within_days": expiring_within,
        "account_id": account,
    }
    with api_client(ctx) as client:
        answer = client.get("/admin/secrets", params=params)
    if json_output:
        print_json(answer)
        return
    secrets = answer.get("secrets", [])
    if not secrets:
        err_console.print("no secrets match")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("Name", "Type", "Environments", "Soonest expiry", "ID"):
        table.add_column(column, overflow="fold")
    for secret in secrets:
        environments = secret.get("environments", {})
        table.add_row(
            escape(str(secret["name"])),
            str(secret["secret_type"]),
            ", ".join(sorted(environments)) or "[dim]none[/]",
            soonest_expiry(environments),
            str(secret["id"]),
        )
    console.print(table)


@app.command("show")
@handle_errors
def show(ctx: typer.Context, ref: RefArg, json_output: JsonOption = False) -> None:
    """A secret's metadata per environment (never its value), with days remaining."""
    with api_client(ctx) as client:
        secret = _get(client, ref)
    if json_output:
        print_json(secret)
        return
    render_secret(secret)


@app.command("delete")
@handle_errors
def delete(
    ctx: typer.Context,
    ref: RefArg,
    env: Annotated[
        str | None,
        typer.Option("--env", help="Delete only this environment's value.", show_default=False),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Delete a secret (every environment) or one environment's value. Not reversible."""
    with api_client(ctx) as client:
        secret = _get(client, ref)
        secret_id, name = str(secret["id"]), str(secret["name"])
        what = f"the {env} value of {name}" if env else f"secret {name} and all its values"
        if env is not None and env not in secret.get("environments", {}):
            raise InvalidArgument(
                f"expected {name} to have a value for {env}; it has "
                f"{', '.join(sorted(secret.get('environments', {}))) or 'none'}"
            )
        _confirm(what, yes=yes)
        if env is None:
            answer = client.delete(f"/admin/secrets/{segment(secret_id)}")
        else:
            path = f"/admin/secrets/{segment(secret_id)}/environments/{segment(env)}"
            answer = client.delete(path)
    if json_output:
        print_json(answer if answer is not None else {"deleted": secret_id, "environment": env})
        return
    console.print(f"[green]✓[/] deleted {what}")


def _confirm(what: str, *, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidArgument(
            f"refusing to delete {what} without confirmation: there is no terminal to ask",
            hint="add --yes to delete without asking",
        )
    if not typer.confirm(f"Delete {what}? This cannot be undone", default=False, err=True):
        raise typer.Exit(1)


def _get(client: ApiClient, ref: str) -> dict[str, Any]:
    secret = client.get(f"/admin/secrets/{segment(ref)}")
    if not isinstance(secret, dict):
        raise ApiError("unexpected_response", "expected a secret object from the API")
    return secret


# --- rendering -----------------------------------------------------------------------------
