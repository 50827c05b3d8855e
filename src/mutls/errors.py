"""The mutls error tree: one stable ``code`` per failure a user can cause.

Every error carries three things: a ``code`` that programs match on and that never changes once
released, a ``message`` for people that says what was expected and what was found, and a ``hint``
that says how to fix it. No message ever contains key material, passphrases or tokens.

Each class also subclasses the builtin it behaves like, so ``except ValueError`` keeps working for
callers that do not know mutls.

::

    MutlsError
    ├── InputError (ValueError)                  the input cannot be used at all
    │   ├── UnsupportedFormat                    unsupported_format
    │   ├── NotACertificate                      not_a_certificate
    │   ├── InputTooLarge                        input_too_large
    │   ├── InvalidArgument                      invalid_argument
    │   ├── FileUnreadable                       file_unreadable
    │   └── RenewalNamesChanged                  renewal_names_changed
    ├── PrivateKeyError (ValueError)             problems with private keys
    │   ├── MissingPrivateKey (LookupError)      missing_private_key
    │   ├── KeyMismatch                          key_mismatch
    │   ├── PassphraseRequired                   passphrase_required
    │   ├── WrongPassphrase                      wrong_passphrase
    │   └── WeakKey                              weak_key
    ├── CertificateError (ValueError)            a certificate or chain is not acceptable
    │   ├── CertificateExpired                   certificate_expired
    │   ├── CertificateNotYetValid               certificate_not_yet_valid
    │   ├── CertificateRevoked                   certificate_revoked
    │   ├── ChainOutOfOrder                      chain_out_of_order
    │   ├── MissingIntermediate                  missing_intermediate
    │   ├── UnknownIssuer                        unknown_issuer
    │   ├── WrongKeyUsage                        wrong_key_usage
    │   ├── NameMismatch                         name_mismatch
    │   ├── NotACA                               not_a_ca
    │   ├── CRLExpired                           crl_expired
    │   └── ChainInvalid                         chain_invalid
    ├── PolicyViolation (ValueError)             csr_policy_violation (names every broken rule)
    ├── CAStateError                             the offline CA directory
    │   ├── CANotInitialized (LookupError)       ca_not_initialized
    │   ├── CAAlreadyExists (FileExistsError)    ca_already_exists
    │   ├── SerialNotFound (LookupError)         serial_not_found
    │   └── AlreadyRevoked                       already_revoked
    ├── NotFound (LookupError)                   a named resource does not exist (HTTP 404)
    │   ├── SecretNotFound                       secret_not_found
    │   ├── EnvironmentValueMissing              environment_value_missing
    │   ├── AccountNotFound                      account_not_found
    │   ├── UserNotFound                         user_not_found
    │   ├── TokenNotFound                        token_not_found
    │   ├── CertificateNotFound                  certificate_not_found
    │   ├── TrustedCANotFound                    trusted_ca_not_found
    │   └── RouteNotFound                        route_not_found
    ├── Conflict                                 the change clashes with what exists (HTTP 409)
    │   ├── NameTaken                            name_taken
    │   ├── ResourceInUse                        resource_in_use
    │   ├── CertificateQuotaExceeded             certificate_quota_exceeded
    │   ├── AccountMtlsDisabled                  account_mtls_disabled
    │   └── CAAlreadyTrusted                     ca_already_trusted
    ├── AuthError                                who is calling, and may they (HTTP 401/403)
    │   ├── AuthenticationRequired               authentication_required
    │   ├── InvalidToken                         invalid_token
    │   ├── ClientCertificateRequired            client_certificate_required
    │   ├── AuthorizationRequired                authorization_required
    │   └── PermissionDenied (PermissionError)   permission_denied
    │       ├── CertificateNotRenewable          certificate_not_renewable
    │       ├── CertificateNotRegistered         certificate_not_registered
    │       ├── RouteForbidden                   route_forbidden
    │       └── SourceIpForbidden                source_ip_forbidden
    ├── UpstreamError                            the gateway's upstream failed (HTTP 502/504)
    │   ├── UpstreamUnavailable                  upstream_unavailable
    │   └── UpstreamTimeout                      upstream_timeout
    ├── PartnerError                             the egress proxy's partner failed (HTTP 502/504)
    │   ├── PartnerUnreachable                   partner_unreachable
    │   ├── PartnerTimeout                       partner_timeout
    │   ├── PartnerCertificateUntrusted          partner_certificate_untrusted
    │   ├── PartnerRequiresClientCertificate     partner_requires_client_certificate
    │   ├── PartnerRejectedCertificate           partner_rejected_certificate
    │   ├── PartnerTlsHandshakeFailed            partner_tls_handshake_failed
    │   ├── PartnerConnectionClosed              partner_connection_closed
    │   └── OAuth2TokenFailed                    oauth2_token_failed
    ├── EgressError                              the egress proxy refused the app's request
    │   ├── EnvironmentForbidden (PermissionError) environment_forbidden
    │   ├── InsecureTlsRefused                   insecure_tls_refused
    │   └── SecretExpired                        secret_expired
    ├── VaultError                               the vault cannot serve (HTTP 503)
    │   ├── MasterKeyMissing                     master_key_missing
    │   ├── MasterKeyMismatch                    master_key_mismatch
    │   ├── MasterKeyUnavailable                 master_key_unavailable
    │   └── DecryptionFailed                     secret_decryption_failed
    └── StoreError                               the database cannot serve (HTTP 503)
        ├── DatabaseUnavailable                  database_unavailable
        └── SchemaOutdated                       database_schema_outdated
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "AccountMtlsDisabled",
    "AccountNotFound",
    "AlreadyRevoked",
    "AuthError",
    "AuthenticationRequired",
    "AuthorizationRequired",
    "CAAlreadyExists",
    "CAAlreadyTrusted",
    "CANotInitialized",
    "CAStateError",
    "CRLExpired",
    "CertificateError",
    "CertificateExpired",
    "CertificateNotFound",
    "CertificateNotRegistered",
    "CertificateNotRenewable",
    "CertificateNotYetValid",
    "CertificateQuotaExceeded",
    "CertificateRevoked",
    "ChainInvalid",
    "ChainOutOfOrder",
    "ClientCertificateRequired",
    "Conflict",
    "DatabaseUnavailable",
    "DecryptionFailed",
    "EgressError",
    "EnvironmentForbidden",
    "EnvironmentValueMissing",
    "FileUnreadable",
    "InputError",
    "InputTooLarge",
    "InsecureTlsRefused",
    "InvalidArgument",
    "InvalidToken",
    "KeyMismatch",
    "LiveCertificate",
    "MasterKeyMismatch",
    "MasterKeyMissing",
    "MasterKeyUnavailable",
    "MissingIntermediate",
    "MissingPrivateKey",
    "MutlsError",
    "NameMismatch",
    "NameTaken",
    "NotACA",
    "NotACertificate",
    "NotFound",
    "OAuth2TokenFailed",
    "PartnerCertificateUntrusted",
    "PartnerConnectionClosed",
    "PartnerError",
    "PartnerRejectedCertificate",
    "PartnerRequiresClientCertificate",
    "PartnerTimeout",
    "PartnerTlsHandshakeFailed",
    "PartnerUnreachable",
    "PassphraseRequired",
    "PermissionDenied",
    "PolicyViolation",
    "PrivateKeyError",
    "RenewalNamesChanged",
    "ResourceInUse",
    "RouteForbidden",
    "RouteNotFound",
    "RuleViolation",
    "SchemaOutdated",
    "SecretExpired",
    "SecretNotFound",
    "SerialNotFound",
    "SourceIpForbidden",
    "StoreError",
    "TokenNotFound",
    "TrustedCANotFound",
    "UnknownIssuer",
    "UnsupportedFormat",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "UserNotFound",
    "VaultError",
    "WeakKey",
    "WrongKeyUsage",
    "WrongPassphrase",
    "all_error_classes",
]


class MutlsError(Exception):
    """Base of every error mutls raises on purpose.

    Subclasses set ``code`` and a default ``hint``; the message is always specific to the case.
    """

    code: ClassVar[str] = "mutls_error"
    default_hint: ClassVar[str] = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def to_dict(self) -> dict[str, object]:
        """The JSON shape used by the CLI, the admin API and the gateway."""
        return {"code": self.code, "message": self.message, "hint": self.hint}

    def __str__(self) -> str:
        return self.message


# --- input ----------------------------------------------------------------------------------


class InputError(MutlsError, ValueError):
    code = "invalid_input"


class UnsupportedFormat(InputError):
    code = "unsupported_format"
    default_hint = (
        "mutls reads PEM, DER, PKCS#12 (.p12/.pfx) and PKCS#7 (.p7b); check that the file is "
        "certificate material and not truncated or re-encoded"
    )


class NotACertificate(InputError):
    code = "not_a_certificate"
    default_hint = "point mutls at the certificate file (.crt/.pem/.cer), not the key or the CSR"


class InputTooLarge(InputError):
    code = "input_too_large"
    default_hint = "certificate files are a few kilobytes; check that this is the right file"


class InvalidArgument(InputError):
    code = "invalid_argument"
    default_hint = "check the value against the command's --help"


class FileUnreadable(InputError):
    code = "file_unreadable"
    default_hint = "check the path and that the file is readable by this user"


# --- private keys ---------------------------------------------------------------------------


class PrivateKeyError(MutlsError, ValueError):
    code = "private_key_error"


class MissingPrivateKey(PrivateKeyError, LookupError):
    code = "missing_private_key"
    default_hint = (
        "the private key is the file you created together with the CSR; pass it with --key, "
        "or use a combined PEM (certificate then key) or a PKCS#12 file"
    )


class KeyMismatch(PrivateKeyError):
    code = "key_mismatch"
    default_hint = (
        "this key was not used to create this certificate; find the key generated with the "
        "CSR, or issue a new certificate for this key"
    )


class PassphraseRequired(PrivateKeyError):
    code = "passphrase_required"
    default_hint = (
        "the key is encrypted: give the passphrase at the prompt, with --passphrase-file FILE, "
        "or in the MUTLS_PASSPHRASE environment variable"
    )


class WrongPassphrase(PrivateKeyError):
    code = "wrong_passphrase"
    default_hint = (
        "check the passphrase (no trailing newline in the passphrase file); if it is right, "
        "the file is damaged: export it again from its source"
    )


class WeakKey(PrivateKeyError):
    code = "weak_key"
    default_hint = "use ECDSA P-256 (the default), RSA 2048 or larger, or Ed25519"


# --- certificates and chains ----------------------------------------------------------------


class CertificateError(MutlsError, ValueError):
    code = "certificate_error"


class CertificateExpired(CertificateError):
    code = "certificate_expired"
    default_hint = "renew the certificate (a new CSR signed by the same CA) and install it"


class CertificateNotYetValid(CertificateError):
    code = "certificate_not_yet_valid"
    default_hint = "check this machine's clock, or wait until the certificate's not-before time"


class CertificateRevoked(CertificateError):
    code = "certificate_revoked"
    default_hint = "a revoked certificate never becomes valid again; request a new certificate"


class ChainOutOfOrder(CertificateError):
    code = "chain_out_of_order"
    default_hint = (
        "TLS sends the leaf first, then each issuer; rewrite the file in order with "
        "`mutls cert convert FILE --to chain --out FILE`"
    )


class MissingIntermediate(CertificateError):
    code = "missing_intermediate"
    default_hint = (
        "append the intermediate CA certificate(s) after the leaf in the certificate file, or "
        "pass them with --untrusted; your CA publishes them as its chain"
    )


class UnknownIssuer(CertificateError):
    code = "unknown_issuer"
    default_hint = (
        "add the issuing CA's root certificate to the CA bundle (--ca) you verify against"
    )


class WrongKeyUsage(CertificateError):
    code = "wrong_key_usage"
    default_hint = (
        "a client certificate needs extendedKeyUsage clientAuth and keyUsage digitalSignature; "
        "ask the CA to issue it with a client profile"
    )


class NameMismatch(CertificateError):
    code = "name_mismatch"
    default_hint = "connect with a hostname listed in the certificate's subjectAltName"


class NotACA(CertificateError):
    code = "not_a_ca"
    default_hint = "use a certificate with basicConstraints CA:TRUE and keyUsage keyCertSign"


class CRLExpired(CertificateError):
    code = "crl_expired"
    default_hint = (
        "download a fresh CRL from the CA's distribution point; a CRL past its nextUpdate "
        "can no longer prove that a certificate is not revoked"
    )


class ChainInvalid(CertificateError):
    code = "chain_invalid"
    default_hint = "inspect each certificate with `mutls cert inspect` to find the broken one"


# --- issuance policy ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RuleViolation:
    """One broken issuance rule: which rule, and what it found."""

    rule: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


class PolicyViolation(MutlsError, ValueError):
    """Every rule the request broke, not just the first."""

    code = "csr_policy_violation"
    default_hint = "fix the listed fields and create the CSR again"

    def __init__(self, violations: Sequence[RuleViolation], *, hint: str | None = None) -> None:
        self.violations = tuple(violations)
        rules = ", ".join(v.rule for v in self.violations)
        super().__init__(
            f"the request breaks {len(self.violations)} issuance rule(s): {rules}", hint=hint
        )

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["violations"] = [v.to_dict() for v in self.violations]
        return data


# --- offline CA -----------------------------------------------------------------------------


class CAStateError(MutlsError):
    code = "ca_state_error"


class CANotInitialized(CAStateError, LookupError):
    code = "ca_not_initialized"
    default_hint = "create it with `mutls ca init --dir DIR`, or point --dir at an existing CA"


class CAAlreadyExists(CAStateError, FileExistsError):
    code = "ca_already_exists"
    default_hint = "choose another --dir; mutls never overwrites a CA"


class SerialNotFound(CAStateError, LookupError):
    code = "serial_not_found"
    default_hint = "list what this CA issued with `mutls ca list`"


class AlreadyRevoked(CAStateError, ValueError):
    code = "already_revoked"
    default_hint = "nothing to do: the certificate is already on the CRL"


# --- resources ------------------------------------------------------------------------------


class NotFound(MutlsError, LookupError):
    code = "not_found"
    default_hint = (
        "list what exists with the matching `GET /admin/...` endpoint or `mutls ... list`"
    )


class SecretNotFound(NotFound):
    code = "secret_not_found"
    default_hint = "list secrets with `GET /admin/secrets` or `mutls secret list`"


class EnvironmentValueMissing(NotFound):
    """A secret has no value for the environment asked for; mutls never falls back to another."""

    code = "environment_value_missing"
    default_hint = (
        "set the value with `PUT /admin/secrets/{id}/environments/{environment}` "
        "or `mutls secret set SECRET --env ENV ...`"
    )


class AccountNotFound(NotFound):
    code = "account_not_found"
    default_hint = "list accounts with `GET /admin/accounts` or `mutls account list`"


class UserNotFound(NotFound):
    code = "user_not_found"
    default_hint = "list users with `GET /admin/users` or `mutls user list`"


class TokenNotFound(NotFound):
    code = "token_not_found"
    default_hint = "list tokens with `GET /admin/tokens` or `mutls token list`"


class CertificateNotFound(NotFound):
    code = "certificate_not_found"
    default_hint = "list the account's certificates with `GET /admin/accounts/{id}/certificates`"


class RouteNotFound(NotFound):
    """No gateway route matches the request, or an admin named a route that does not exist."""

    code = "route_not_found"
    default_hint = (
        "check the host name, the path and the API version against the API's documentation"
    )


class TrustedCANotFound(NotFound):
    code = "trusted_ca_not_found"
    default_hint = "list the account's trusted CAs with `GET /admin/accounts/{id}/cas`"


class Conflict(MutlsError):
    code = "conflict"


class NameTaken(Conflict, ValueError):
    code = "name_taken"
    default_hint = "choose another name, or change the existing one instead of creating it again"


class ResourceInUse(Conflict):
    code = "resource_in_use"
    default_hint = "remove what refers to it first"


@dataclass(frozen=True, kw_only=True)
class LiveCertificate:
    """One live certificate named in a quota refusal (public facts only)."""

    serial: str
    subject: str
    not_after: str

    def to_dict(self) -> dict[str, str]:
        return {"serial": self.serial, "subject": self.subject, "not_after": self.not_after}


class CertificateQuotaExceeded(Conflict):
    """The account already holds as many live certificates as its quota allows."""

    code = "certificate_quota_exceeded"
    default_hint = (
        "revoke a certificate you no longer use (the one expiring first, once its successor is "
        "deployed), or ask the provider to raise the quota"
    )

    def __init__(
        self, message: str, *, live: Sequence[LiveCertificate], hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.live = tuple(live)

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["live_certificates"] = [c.to_dict() for c in self.live]
        return data


class AccountMtlsDisabled(Conflict):
    code = "account_mtls_disabled"
    default_hint = "an admin enables mTLS for the account first (`PUT /admin/accounts/{id}/mtls`)"


class CAAlreadyTrusted(Conflict):
    """The uploaded CA is trusted already: by this account, by another one, or by the platform."""

    code = "ca_already_trusted"
    default_hint = "list what is trusted with `GET /admin/accounts/{id}/cas`"


# --- authentication and roles --------------------------------------------------------------


class AuthError(MutlsError):
    code = "auth_error"


class AuthenticationRequired(AuthError):
    code = "authentication_required"
    default_hint = (
        "send an API token as `Authorization: Bearer <token>`; the first admin token is in "
        "<data dir>/admin-token"
    )


class InvalidToken(AuthError):
    code = "invalid_token"
    default_hint = (
        "check that the token was copied whole; ask an admin for a new one if it was revoked"
    )


class PermissionDenied(AuthError, PermissionError):
    code = "permission_denied"
    default_hint = "use a token with a role that may do this, or ask an admin"


class ClientCertificateRequired(AuthError):
    """An mTLS endpoint was reached without a client certificate."""

    code = "client_certificate_required"
    default_hint = (
        "send your client certificate and key with the request (curl --cert C --key K, "
        "`mutls renew --cert C --key K`)"
    )


class AuthorizationRequired(AuthError):
    """The route wants an ``Authorization`` header besides the client certificate (seed 003)."""

    code = "authorization_required"
    default_hint = (
        "send your API credentials in the Authorization header along with the certificate"
    )


class CertificateNotRegistered(PermissionDenied):
    """The certificate chains to a trusted CA but maps to no account."""

    code = "certificate_not_registered"
    default_hint = (
        "use a client certificate issued to your account (portal or `mutls cert issue`), or ask "
        "the provider to register your CA for your account"
    )


class RouteForbidden(PermissionDenied):
    """The caller's account or certificate may not use this route or API version (seed 001)."""

    code = "route_forbidden"
    default_hint = "use a certificate issued for this API version, or ask the provider for access"


class SourceIpForbidden(PermissionDenied):
    """The request came from an address outside the account's allowlist (seed 004)."""

    code = "source_ip_forbidden"
    default_hint = "call from an address on your account's allowlist, or ask the provider to add it"


class CertificateNotRenewable(PermissionDenied):
    """The presented certificate chains to our CA but is not one the platform issued to an
    account (a server certificate, or one issued outside the registry)."""

    code = "certificate_not_renewable"
    default_hint = (
        "only client certificates issued to an account by this platform renew themselves; "
        "issue a new one with `mutls cert issue` or in the portal"
    )


class RenewalNamesChanged(InputError):
    """A renewal CSR asks for other names than the certificate it renews."""

    code = "renewal_names_changed"
    default_hint = (
        "a renewal keeps the subject and SANs of the current certificate: make the CSR with the "
        "same names (`mutls renew` without --csr does), or issue a new certificate instead"
    )


# --- gateway upstream -----------------------------------------------------------------------


class UpstreamError(MutlsError):
    code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """The gateway could not reach the service behind it, or it broke the connection."""

    code = "upstream_unavailable"
    default_hint = "retry shortly; if it persists, the provider's service is down"


class UpstreamTimeout(UpstreamError):
    """The service behind the gateway did not answer in time."""

    code = "upstream_timeout"
    default_hint = "retry shortly; if it persists, contact the provider"


# --- egress proxy ---------------------------------------------------------------------------


class PartnerError(MutlsError):
    """The partner the egress proxy called for the app failed, before answering in HTTP.

    The partner's own HTTP answers, 4xx and 5xx included, pass through untouched; these errors
    are for what happened before there was an answer: connection, TLS, token endpoint. ``reason``
    is a short machine-readable detail (a TLS alert name, a verification failure) or None.
    """

    code = "partner_error"

    def __init__(self, message: str, *, hint: str | None = None, reason: str | None = None):
        super().__init__(message, hint=hint)
        self.reason = reason

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        if self.reason is not None:
            data["reason"] = self.reason
        return data


class PartnerUnreachable(PartnerError):
    """The partner's host did not resolve, or refused or dropped the TCP connection."""

    code = "partner_unreachable"
    default_hint = (
        "check the route's target_url (host and port) and that this machine may reach it (DNS, "
        "firewall, the partner's IP allowlist); `mutls doctor URL` walks the connection"
    )


class PartnerTimeout(PartnerError):
    """Connecting, the TLS handshake or the partner's answer took longer than allowed."""

    code = "partner_timeout"
    default_hint = (
        "retry; if it persists, the partner is slow or a firewall drops packets silently; the "
        "limits are the route's timeout_seconds and MUTLS_EGRESS_CONNECT_TIMEOUT"
    )


class PartnerCertificateUntrusted(PartnerError):
    """The partner's server certificate failed our check (chain, dates or name)."""

    code = "partner_certificate_untrusted"
    default_hint = (
        "if the partner uses a private CA, store its CA certificate in a secret and set the "
        "route's ca_bundle_secret; if the name differs from the URL's host, set tls_servername"
    )


class PartnerRequiresClientCertificate(PartnerError):
    """The partner asked for a client certificate and the route sent none."""

    code = "partner_requires_client_certificate"
    default_hint = (
        "set the route's certificate_secret to the certificate the partner issued you (or whose "
        "CA they registered), with a value for this environment"
    )


class PartnerRejectedCertificate(PartnerError):
    """The partner's TLS stack refused the client certificate the route sent (a TLS alert)."""

    code = "partner_rejected_certificate"
    default_hint = (
        "check that the environment's certificate is the one registered with the partner, "
        "issued by a CA they trust, not expired and not revoked; then ask the partner"
    )


class PartnerTlsHandshakeFailed(PartnerError):
    """The TLS handshake failed for another reason: no common version or cipher suite, a
    protocol error."""

    code = "partner_tls_handshake_failed"
    default_hint = (
        "the partner and the route share no TLS version or cipher suite: try the route's "
        "tls_preset (default, tls12, tls13, fapi), or `mutls doctor URL` to see what it accepts"
    )


class PartnerConnectionClosed(PartnerError):
    """The partner closed the connection, or sent something that is not HTTP, before a whole
    answer."""

    code = "partner_connection_closed"
    default_hint = "retry; if it persists, the partner's service is failing"


class OAuth2TokenFailed(PartnerError):
    """The token endpoint refused the client credentials or could not be reached."""

    code = "oauth2_token_failed"
    default_hint = (
        "check the oauth2 secret for this environment (token_url, client_id, client_secret or "
        "the certificate for tls_client_auth, scopes) against what the partner registered"
    )


class EgressError(MutlsError):
    code = "egress_error"


class EnvironmentForbidden(EgressError, PermissionError):
    """The app token may not use the environment the request asked for."""

    code = "environment_forbidden"
    default_hint = (
        "send X-Mutls-Environment with one of the token's environments, or use a token made "
        "for this environment (`mutls token create --role app --environment ENV`)"
    )


class InsecureTlsRefused(EgressError, ValueError):
    """``tls_reject_unauthorized: false`` was asked for where it is never allowed."""

    code = "insecure_tls_refused"
    default_hint = (
        "production always verifies the partner's certificate: store the partner's CA in a "
        "secret and set ca_bundle_secret instead; switch verification off only in a test "
        "environment (environments.sandbox.tls_reject_unauthorized)"
    )


class SecretExpired(EgressError, ValueError):
    """A secret with strict expiry enforcement holds an expired certificate for this
    environment."""

    code = "secret_expired"
    default_hint = (
        "upload the renewed certificate (`mutls secret set NAME --env ENV --cert ... --key ...`); "
        "the proxy uses it on the next request"
    )


# --- vault ----------------------------------------------------------------------------------


class VaultError(MutlsError):
    code = "vault_error"


class MasterKeyMissing(VaultError):
    code = "master_key_missing"
    default_hint = (
        "set MUTLS_MASTER_KEY or restore <data dir>/master.key from your backup; "
        "without it no secret can be decrypted"
    )


class MasterKeyMismatch(VaultError):
    code = "master_key_mismatch"
    default_hint = "the master key given is not the one this database was encrypted with"


class MasterKeyUnavailable(VaultError):
    code = "master_key_unavailable"
    default_hint = "add the missing master key version to the keyring, or re-upload the secret"


class DecryptionFailed(VaultError):
    code = "secret_decryption_failed"
    default_hint = (
        "the stored ciphertext does not belong to this secret, environment and version; "
        "check `mutls audit verify` and restore the secret from its source"
    )


# --- store ----------------------------------------------------------------------------------


class StoreError(MutlsError):
    code = "store_error"


class DatabaseUnavailable(StoreError):
    code = "database_unavailable"
    default_hint = "check MUTLS_DATABASE_URL and that the database server is running"


class SchemaOutdated(StoreError):
    code = "database_schema_outdated"
    default_hint = "apply the migrations with `mutls db upgrade`"


def all_error_classes() -> list[type[MutlsError]]:
    """Every concrete error class, for documentation and for the test that codes are unique."""
    seen: list[type[MutlsError]] = []
    stack: list[type[MutlsError]] = [MutlsError]
    while stack:
        cls = stack.pop()
        if cls.__module__ == __name__:  # not wrappers elsewhere, such as the CLI's ApiError
            seen.append(cls)
        stack.extend(cls.__subclasses__())
    return sorted(seen, key=lambda c: c.code)
