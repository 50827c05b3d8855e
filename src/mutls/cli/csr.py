"""``mutls csr``: create a private key and a CSR that a provider will accept."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization

from mutls.cli.common import (
    JsonOption,
    OutPassphraseFileOption,
    PassphraseFileOption,
    handle_errors,
    in_source,
    load_file,
    out_source,
)
from mutls.cli.output import console, print_json
from mutls.errors import InvalidArgument, WeakKey
from mutls.files import PRIVATE, PUBLIC, write_atomic
from mutls.pki.authority import Profile
from mutls.pki.csr import SubjectSpec, build_csr, parse_san
from mutls.pki.export import private_key_pem
from mutls.pki.keys import KeySpec, describe_public_key, generate_key, key_weakness
from mutls.policy.issuance import DEFAULT_RULES, SERVER_RULES, IssuanceRequest, check_request

app = typer.Typer(no_args_is_help=True, help="Create keys and certificate signing requests.")


@app.command("new")
@handle_errors
def new(
    cn: Annotated[str, typer.Option("--cn", help="Common name: the FQDN of the calling service.")],
    san: Annotated[
        list[str] | None,
        typer.Option(
            "--san",
            help="Subject alternative name, e.g. DNS:api.example.com (repeatable).",
            show_default=False,
        ),
    ] = None,
    country: Annotated[
        str | None,
        typer.Option("--country", "-C", help="Two-letter ISO country code.", show_default=False),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option("--state", help="State or province, not abbreviated.", show_default=False),
    ] = None,
    locality: Annotated[
        str | None, typer.Option("--locality", help="City, not abbreviated.", show_default=False)
    ] = None,
    org: Annotated[
        str | None, typer.Option("--org", help="Full legal organisation name.", show_default=False)
    ] = None,
    ou: Annotated[
        str | None, typer.Option("--ou", help="Organisational unit.", show_default=False)
    ] = None,
    profile: Annotated[
        Profile,
        typer.Option(help="client: CN must be an FQDN; server: host names such as localhost too."),
    ] = Profile.CLIENT,
    key_type: Annotated[
        KeySpec, typer.Option("--key-type", help="Algorithm of the new key.")
    ] = KeySpec.EC_P256,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", help="Use this existing private key instead of making one.", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="CSR file (default CN.csr.pem).", show_default=False),
    ] = None,
    key_out: Annotated[
        Path | None,
        typer.Option("--key-out", help="New key file (default CN.key.pem).", show_default=False),
    ] = None,
    encrypt_key: Annotated[
        bool | None,
        typer.Option(
            "--encrypt-key/--no-encrypt-key",
            help="Encrypt the new key (default: when an output passphrase is given).",
            show_default=False,
        ),
    ] = None,
    passphrase_file: PassphraseFileOption = None,
    out_passphrase_file: OutPassphraseFileOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Make a key and a CSR. The subject is checked against the issuance rules before anything
    is written, with the same rules a mutls CA applies when it signs."""
    subject = SubjectSpec(
        common_name=cn,
        country=country,
        state=state,
        locality=locality,
        organization=org,
        organizational_unit=ou,
    )
    names = [parse_san(s) for s in san or []]
    if key is not None:
        private = load_file(key, passphrase=in_source(passphrase_file, str(key))).require_key()
        weakness = key_weakness(private.public_key())
        if weakness:
            raise WeakKey(f"{key}: {weakness}")
    else:
        private = generate_key(key_type)
    csr = build_csr(private, subject, names)
    check_request(
        IssuanceRequest(csr=csr), SERVER_RULES if profile is Profile.SERVER else DEFAULT_RULES
    )
    stem = cn.replace("*", "wildcard")
    csr_path = out or Path(f"{stem}.csr.pem")
    key_path = key_out or Path(f"{stem}.key.pem")
    for path in [csr_path] if key is not None else [csr_path, key_path]:
        if path.exists() and not force:
            raise InvalidArgument(
                f"expected a new file; {path} already exists",
                hint="choose another path with --out/--key-out, or pass --force",
            )
    encrypted = False
    if key is None:
        target = out_source(out_passphrase_file, "the new key")
        wants = encrypt_key if encrypt_key is not None else target.given()
        secret = target.read(required=True, confirm=True) if wants else None
        encrypted = secret is not None
        write_atomic(key_path, private_key_pem(private, secret), mode=PRIVATE, overwrite=force)
    write_atomic(
        csr_path, csr.public_bytes(serialization.Encoding.PEM), mode=PUBLIC, overwrite=force
    )
    info = describe_public_key(private.public_key())
    if json_output:
        print_json(
            {
                "csr": str(csr_path),
                "key": str(key if key is not None else key_path),
                "key_created": key is None,
                "key_encrypted": encrypted,
                "key_type": info.type,
                "key_size": info.size,
                "public_key_sha256": info.public_key_sha256,
                "subject": csr.subject.rfc4514_string(),
            }
        )
        return
    console.print(f"[green]✓[/] CSR {csr_path}  subject {csr.subject.rfc4514_string()}")
    if key is None:
        state_text = "encrypted" if encrypted else "[yellow]not encrypted[/] (use --encrypt-key)"
        console.print(f"[green]✓[/] key {key_path}  {info.label()}, mode 0600, {state_text}")
    console.print("Send the CSR to your CA; keep the key where it is. It never needs to leave.")
