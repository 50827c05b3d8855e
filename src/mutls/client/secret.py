"""A client identity straight from the vault: ``MtlsAdapter.from_secret("bank_api_cert")``.

For trusted processes on the platform's own host (or pointed at the same PostgreSQL, with the
master key): the caller opens the platform's store the way ``mutls`` commands do
(``MUTLS_DATA_DIR``, ``MUTLS_DATABASE_URL``, ``MUTLS_MASTER_KEY[_FILE]``), so it needs read
access to the data directory and the master key. Every other application should call partners
through the egress proxy instead (:class:`~mutls.client.EgressAdapter`), which needs only an app
token.

Each call decrypts one environment's value as the platform itself (``Principal.system``, actor
``client:python``) and writes a ``secret.access`` audit row with the purpose ``python client``.
There is no fallback to another environment: a missing value is ``environment_value_missing``.
The secret's ``ca_bundle_pem``, when it has one, is what the server is verified against.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mutls.accounts.principal import Principal
from mutls.client.context import ClientTls, client_tls_from_material
from mutls.config import Settings
from mutls.errors import DatabaseUnavailable, InsecureTlsRefused, InvalidArgument
from mutls.pki.loader import load_certificates, load_identity
from mutls.vault.payloads import SecretType

__all__ = [
    "ACTOR",
    "DEFAULT_ENVIRONMENT",
    "PURPOSE",
    "certificate_secret_fields",
    "client_tls_from_secret",
]

ACTOR = "client:python"
PURPOSE = "python client"
#: ``mutls.vault.secrets.DEFAULT_ENVIRONMENT``, repeated so that importing the client does not
#: import the store (SQLAlchemy); a test keeps the two equal.
DEFAULT_ENVIRONMENT = "production"


def client_tls_from_secret(
    name: str,
    environment: str = DEFAULT_ENVIRONMENT,
    *,
    settings: Settings | None = None,
    verify: bool = True,
) -> ClientTls:
    """The TLS configuration of the certificate secret ``name`` in ``environment``.

    ``settings`` defaults to :meth:`Settings.from_env`. ``verify=False`` is refused for
    ``production``, as the egress proxy refuses it (``insecure_tls_refused``).
    """
    if not verify and environment == DEFAULT_ENVIRONMENT:
        raise InsecureTlsRefused(
            f"expected the server to be verified for the {environment!r} environment; "
            "verify=False was asked for",
            hint="store the server's CA in the secret's ca_bundle_pem instead; switch "
            "verification off only for a test environment",
        )
    fields = _reveal(name, environment, settings or Settings.from_env())
    certificate = _text(fields, "certificate_pem", name)
    key = _text(fields, "private_key_pem", name)
    passphrase = fields.get("passphrase")
    bundle = fields.get("ca_bundle_pem")
    material = load_identity(
        certificate.encode("utf-8"),
        key.encode("utf-8"),
        passphrase.encode("utf-8") if isinstance(passphrase, str) and passphrase else None,
    )
    cas = []
    if verify and isinstance(bundle, str) and bundle:  # verify=False outranks the bundle
        cas = load_certificates(bundle.encode("utf-8"))
    return client_tls_from_material(material, cas=cas, verify=verify)


def certificate_secret_fields(
    name: str,
    environment: str = DEFAULT_ENVIRONMENT,
    *,
    settings: Settings | None = None,
    actor: str = ACTOR,
    purpose: str = PURPOSE,
) -> dict[str, object]:
    """The decrypted fields of the certificate secret ``name`` in ``environment``
    (``certificate_pem``, ``private_key_pem``, ``passphrase``, ``ca_bundle_pem``), unparsed, for
    a caller that checks them itself (``mutls doctor``). Audited like every reveal."""
    return _reveal(name, environment, settings or Settings.from_env(), actor=actor, purpose=purpose)


def _reveal(
    name: str,
    environment: str,
    settings: Settings,
    *,
    actor: str = ACTOR,
    purpose: str = PURPOSE,
) -> dict[str, object]:
    # The store is imported here: mutls.client itself must stay light for plain HTTP clients.
    from mutls.runtime.platform import Platform  # noqa: PLC0415
    from mutls.store.migrate import require_current  # noqa: PLC0415
    from mutls.vault.secrets import reveal_secret  # noqa: PLC0415

    if not settings.database_url and not (settings.data_dir / "mutls.db").is_file():
        raise DatabaseUnavailable(
            f"expected a mutls data directory with mutls.db at {settings.data_dir}; there is none",
            hint="set MUTLS_DATA_DIR (or MUTLS_DATABASE_URL) as for `mutls up`, or pass "
            "settings=; apps without access to the platform's store use the egress proxy",
        )
    platform = Platform.from_settings(settings)
    try:
        require_current(platform.db)
        revealed = reveal_secret(
            platform.db,
            platform.keys,
            Principal.system(actor),
            name,
            environment,
            purpose=purpose,
            now=datetime.now(UTC),
        )
    finally:
        platform.close()
    if revealed.secret_type is not SecretType.CERTIFICATE:
        raise InvalidArgument(
            f"expected {name!r} to be a certificate secret; it is a "
            f"{revealed.secret_type.value} secret",
            hint="name the secret that holds the client certificate and key",
        )
    return revealed.fields


def _text(fields: dict[str, object], field: str, name: str) -> str:
    value = fields.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidArgument(
            f"expected the certificate secret {name!r} to hold {field}; it does not"
        )
    return value
