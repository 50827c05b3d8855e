"""Gateway authorization: a pure function of the verified peer, the request and the snapshot.

The TLS handshake only refuses certificates from CAs mutls does not trust at all. Everything else is
decided here, per request, so the client gets an HTTP answer with a stable code, a message that
says what to do, and a hint, instead of an opaque TLS alert. The checks run in the order DESIGN.md
gives, and the first failure is the answer:

1. a route matches host, path and API version          ``route_not_found`` (404)
2. a certificate was sent (route ``required``)          ``client_certificate_required`` (401)
3. it is valid now, leaf and chain                      ``certificate_expired`` / ``_not_yet_valid``
4. it is not revoked                                    ``certificate_revoked``
5. it may be used for client authentication             ``wrong_key_usage``
6. it maps to an account                                ``certificate_not_registered``
7. the account's mTLS is enabled                        ``account_mtls_disabled``
8. the source address is on the account's allowlist     ``source_ip_forbidden``
9. the account and certificate may use this route       ``route_forbidden``
10. an Authorization header, if the route wants one     ``authorization_required``

Messages name only what the caller already knows: its own certificate, its own account, the route
and version it asked for. Never another account, an upstream address, or why a route exists.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase

from mutls.errors import (
    AccountMtlsDisabled,
    AuthorizationRequired,
    CertificateExpired,
    CertificateNotRegistered,
    CertificateNotYetValid,
    CertificateRevoked,
    ClientCertificateRequired,
    MutlsError,
    RouteForbidden,
    RouteNotFound,
    SourceIpForbidden,
    WrongKeyUsage,
)
from mutls.policy.routing import MtlsMode, Route
from mutls.policy.snapshot import AccountPolicy, GatewaySnapshot, IssuedEntry, Peer

__all__ = [
    "Allow",
    "Decision",
    "Deny",
    "GatewayRequest",
    "Identity",
    "authorize",
    "check_dates",
    "check_source",
    "identify",
    "names_match",
    "resolve",
]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayRequest:
    method: str
    host: str
    """Lower case, without the port."""
    path: str
    """Without the query string."""
    source_ip: IpAddress
    header: Callable[[str], str | None]
    """Looks a request header up by lower-case name."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Identity:
    """Who a certificate belongs to."""

    account: AccountPolicy
    issued: IssuedEntry | None
    """The platform's record, or None for a certificate from the account's own CA."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Allow:
    route: Route
    identity: Identity | None
    """None on an ``optional`` route without a certificate, and on every ``off`` route."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Deny:
    error: MutlsError
    status: int
    route: Route | None = None
    identity: Identity | None = None

    @property
    def code(self) -> str:
        return self.error.code


Decision = Allow | Deny


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def identify(peer: Peer, snapshot: GatewaySnapshot, now: datetime) -> Identity | Deny:
    """Checks 3-7: the certificate is usable now and belongs to an account with mTLS enabled."""
    return check_dates(peer, now) or resolve(peer, snapshot)


def check_dates(peer: Peer, now: datetime) -> Deny | None:
    """Check 3: the leaf and the CA certificates of its chain are valid at ``now``."""
    serial = peer.serial
    if now >= peer.not_after:
        return Deny(
            error=CertificateExpired(
                f"certificate serial {serial} expired on {_day(peer.not_after)}; "
                "renew it and retry",
                hint="`mutls renew --cert C --key K` renews it, or issue a new one in the portal",
            ),
            status=403,
        )
    if now < peer.not_before:
        return Deny(
            error=CertificateNotYetValid(
                f"certificate serial {serial} is valid from {_day(peer.not_before)}; "
                "retry then, or check this machine's clock",
            ),
            status=403,
        )
    if now >= peer.chain_not_after:
        return Deny(
            error=CertificateExpired(
                f"a CA certificate in the chain of certificate serial {serial} expired on "
                f"{_day(peer.chain_not_after)}; the certificate cannot be used",
                hint="ask whoever runs the issuing CA for a certificate from a current CA",
            ),
            status=403,
        )
    if now < peer.chain_not_before:
        return Deny(
            error=CertificateNotYetValid(
                f"a CA certificate in the chain of certificate serial {serial} is valid from "
                f"{_day(peer.chain_not_before)}; retry then, or check this machine's clock",
            ),
            status=403,
        )
    return None


def resolve(peer: Peer, snapshot: GatewaySnapshot) -> Identity | Deny:
    """Checks 4-7, which depend on the snapshot but not on the time: a connection may keep the
    answer for as long as it keeps the snapshot."""
    serial = peer.serial
    issued = snapshot.issued.get(peer.fingerprint)
    if issued is not None and issued.revoked_at is not None:
        return Deny(
            error=CertificateRevoked(
                f"certificate serial {serial} was revoked on {_day(issued.revoked_at)}; "
                "use another certificate",
                hint="issue a new certificate in the portal or with `mutls cert issue`",
            ),
            status=403,
        )
    if not peer.client_auth:
        return Deny(
            error=WrongKeyUsage(
                f"certificate serial {serial} is not allowed for TLS client authentication "
                "(its extended key usage lacks clientAuth)",
                hint="request a client certificate: the CSR or CA profile must allow clientAuth",
            ),
            status=403,
        )
    account: AccountPolicy | None = None
    if issued is not None:
        account = snapshot.accounts.get(issued.account_id)
    else:
        account = _customer_account(peer, snapshot)
    if account is None:
        return Deny(
            error=CertificateNotRegistered(
                f"certificate serial {serial} ({peer.subject}) chains to a trusted CA but "
                "belongs to no account"
            ),
            status=403,
        )
    identity = Identity(account=account, issued=issued)
    if not account.mtls_enabled:
        return Deny(
            error=AccountMtlsDisabled(
                f"mTLS is not enabled for account {account.name}",
                hint="an administrator of the provider enables mTLS for your account",
            ),
            status=403,
            identity=identity,
        )
    return identity


def _customer_account(peer: Peer, snapshot: GatewaySnapshot) -> AccountPolicy | None:
    for ca_fingerprint in peer.ca_fingerprints:
        for ca in snapshot.customer_cas.get(ca_fingerprint, ()):
            if ca.patterns and not names_match(peer.names, ca.patterns):
                continue
            return snapshot.accounts.get(ca.account_id)
    return None


def names_match(names: Sequence[str], patterns: Sequence[str]) -> bool:
    """Whether a pattern matches one of the names; ``*`` matches dots too (``*.acme.example``
    matches ``a.b.acme.example``)."""
    return any(fnmatchcase(name, pattern) for pattern in patterns for name in names)


def check_source(identity: Identity, source_ip: IpAddress) -> Deny | None:
    """Check 8: the request comes from the account's allowlist (seed 004)."""
    if identity.account.allows_ip(source_ip):
        return None
    return Deny(
        error=SourceIpForbidden(
            f"requests for account {identity.account.name} are not accepted from {source_ip}"
        ),
        status=403,
        identity=identity,
    )


def _route_forbidden(route: Route, identity: Identity, peer: Peer) -> Deny | None:
    account = identity.account
    account_denied = route.allowed_accounts and account.id not in route.allowed_accounts
    route_denied = account.allowed_routes and not (
        route.name in account.allowed_routes
        or (route.api_version is not None and route.api_version in account.allowed_routes)
    )
    if account_denied or route_denied:
        reason = f"account {account.name} may not use route {route.label}"
    elif (
        identity.issued is not None
        and identity.issued.api_versions
        and route.api_version is not None
        and route.api_version not in identity.issued.api_versions
    ):
        versions = ", ".join(sorted(identity.issued.api_versions))
        reason = (
            f"certificate serial {peer.serial} is issued for API version {versions}, "
            f"not for route {route.label}"
        )
    else:
        return None
    return Deny(error=RouteForbidden(reason), status=403, route=route, identity=identity)


def authorize(
    peer: Peer | None,
    request: GatewayRequest,
    snapshot: GatewaySnapshot,
    now: datetime,
    *,
    resolved: Identity | Deny | None = None,
) -> Decision:
    """Allow the request, or deny it with the first failed check (see the module docstring).

    ``resolved`` is ``resolve(peer, snapshot)`` if the caller kept it from an earlier request on
    the same connection and snapshot (the gateway does, per connection); the result is the same.
    """
    route = snapshot.routes.match(request.host, request.path, request.header)
    if route is None:
        return Deny(
            error=RouteNotFound(f"no API is served at {request.path} on {request.host}"),
            status=404,
        )
    if route.mtls is MtlsMode.OFF or (peer is None and route.mtls is MtlsMode.OPTIONAL):
        return _check_authorization(route, None, request) or Allow(route=route, identity=None)
    if peer is None:
        return Deny(
            error=ClientCertificateRequired(
                f"route {route.label} requires a client certificate and none was sent"
            ),
            status=401,
            route=route,
        )
    identified = check_dates(peer, now) or resolved or resolve(peer, snapshot)
    if isinstance(identified, Deny):
        return Deny(
            error=identified.error,
            status=identified.status,
            route=route,
            identity=identified.identity,
        )
    refused = check_source(identified, request.source_ip)
    if refused is not None:
        return Deny(error=refused.error, status=refused.status, route=route, identity=identified)
    forbidden = _route_forbidden(route, identified, peer)
    if forbidden is not None:
        return forbidden
    return _check_authorization(route, identified, request) or Allow(
        route=route, identity=identified
    )


def _check_authorization(
    route: Route, identity: Identity | None, request: GatewayRequest
) -> Deny | None:
    if route.authorization.accepts(request.header("authorization")):
        return None
    wanted = {"basic": "Basic", "bearer": "Bearer", "any": "Basic or Bearer"}[
        route.authorization.value
    ]
    return Deny(
        error=AuthorizationRequired(
            f"route {route.label} needs an Authorization header ({wanted}) besides the client "
            "certificate"
        ),
        status=403,
        route=route,
        identity=identity,
    )
