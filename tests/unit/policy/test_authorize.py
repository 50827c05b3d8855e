"""Gateway authorization: every check of authorize.py allows the good case and denies its twin.

The snapshot holds two accounts, Acme (the caller) and Globex (someone else), and the route's
upstream has a recognisable host name, so every denial can be checked for leaks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mutls.policy.authorize import Allow, Decision, Deny, GatewayRequest, authorize, identify
from mutls.policy.routing import AuthorizationScheme, MtlsMode, Route, RouteTable, Upstream
from mutls.policy.snapshot import (
    AccountPolicy,
    CustomerCA,
    GatewaySnapshot,
    IssuedEntry,
    Peer,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def fingerprint(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


LEAF_FP = fingerprint("acme leaf")
PLATFORM_INTERMEDIATE_FP = fingerprint("platform intermediate")
PLATFORM_ROOT_FP = fingerprint("platform root")
CUSTOMER_INTERMEDIATE_FP = fingerprint("acme intermediate")
CUSTOMER_ROOT_FP = fingerprint("acme root")

SERIAL = "4F2A09C3D1"
UPSTREAM = Upstream(host="payments-backend.internal", port=9443)

ACME = AccountPolicy(id="acc-acme", name="Acme", mtls_enabled=True)
GLOBEX = AccountPolicy(id="acc-globex", name="Globex", mtls_enabled=True)

PAYMENTS = Route(
    id="rt-payments-v2",
    name="payments",
    upstream=UPSTREAM,
    host="api.example.com",
    path_prefix="/payments",
    api_version="v2",
)
PAYMENTS_PATH = "/payments/v2/charges"

ISSUED = IssuedEntry(account_id=ACME.id, serial=SERIAL, api_versions=frozenset({"v2"}))

PEER = Peer(
    fingerprint=LEAF_FP,
    serial=SERIAL,
    subject="CN=client.acme.example,O=Acme",
    not_before=NOW - timedelta(days=30),
    not_after=NOW + timedelta(days=60),
    chain_not_before=NOW - timedelta(days=365),
    chain_not_after=NOW + timedelta(days=3650),
    client_auth=True,
    names=("client.acme.example",),
    ca_fingerprints=(PLATFORM_INTERMEDIATE_FP, PLATFORM_ROOT_FP),
    der=b"acme leaf der",
)

#: What a denial must never name: another account, the upstream.
LEAKS = (GLOBEX.name, GLOBEX.id, UPSTREAM.host, UPSTREAM.authority)


# --- factories ----------------------------------------------------------------------------------


def make_peer(**changes: Any) -> Peer:
    return dataclasses.replace(PEER, **changes)


def customer_peer(**changes: Any) -> Peer:
    """A certificate from Acme's own CA: unknown to the platform registry."""
    base = make_peer(
        fingerprint=fingerprint("acme customer leaf"),
        ca_fingerprints=(CUSTOMER_INTERMEDIATE_FP, CUSTOMER_ROOT_FP),
    )
    return dataclasses.replace(base, **changes)


def make_route(**changes: Any) -> Route:
    return dataclasses.replace(PAYMENTS, **changes)


def make_account(**changes: Any) -> AccountPolicy:
    return dataclasses.replace(ACME, **changes)


def make_snapshot(
    *,
    routes: Iterable[Route] = (PAYMENTS,),
    accounts: Iterable[AccountPolicy] = (ACME, GLOBEX),
    issued: Mapping[bytes, IssuedEntry] | None = None,
    customer_cas: Mapping[bytes, tuple[CustomerCA, ...]] | None = None,
) -> GatewaySnapshot:
    return GatewaySnapshot(
        revision=1,
        routes=RouteTable.of(list(routes)),
        accounts={a.id: a for a in accounts},
        issued={LEAF_FP: ISSUED} if issued is None else issued,
        customer_cas={} if customer_cas is None else customer_cas,
    )


def make_request(
    *,
    host: str = "api.example.com",
    path: str = PAYMENTS_PATH,
    source_ip: str = "203.0.113.7",
    headers: Mapping[str, str] | None = None,
) -> GatewayRequest:
    values = dict(headers or {})
    return GatewayRequest(
        method="GET",
        host=host,
        path=path,
        source_ip=ipaddress.ip_address(source_ip),
        header=values.get,
    )


def decide(
    peer: Peer | None = PEER,
    *,
    request: GatewayRequest | None = None,
    snapshot: GatewaySnapshot | None = None,
    now: datetime = NOW,
) -> Decision:
    return authorize(peer, request or make_request(), snapshot or make_snapshot(), now)


def assert_allowed(decision: Decision, *, route: Route = PAYMENTS) -> Allow:
    assert isinstance(decision, Allow), decision
    assert decision.route == route
    return decision


def assert_denied(decision: Decision, code: str, status: int = 403) -> Deny:
    """The code and status, a hint, and no other account or upstream in what the caller reads."""
    assert isinstance(decision, Deny), decision
    assert (decision.code, decision.status) == (code, status)
    assert decision.error.code == code
    assert decision.error.hint.strip()
    text = f"{decision.error.message}\n{decision.error.hint}"
    for leak in LEAKS:
        assert leak not in text
    return decision


# --- the good case ------------------------------------------------------------------------------


def test_a_registered_certificate_on_its_route_is_allowed_with_its_identity() -> None:
    allowed = assert_allowed(decide())
    assert allowed.identity is not None
    assert allowed.identity.account == ACME
    assert allowed.identity.issued == ISSUED


# --- 1. route_not_found -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("api.example.com", "/orders/v2/x"),
        ("api.example.com", "/payments/v3/charges"),
        ("api.example.com", "/paymentsx/v2"),
        ("www.example.com", PAYMENTS_PATH),
    ],
)
def test_no_route_for_host_path_or_version_is_404(host: str, path: str) -> None:
    denied = assert_denied(
        decide(request=make_request(host=host, path=path)), "route_not_found", 404
    )
    assert denied.route is None
    assert path in denied.error.message


def test_route_not_found_comes_before_the_certificate_is_looked_at() -> None:
    request = make_request(path="/nowhere")
    assert_denied(decide(None, request=request), "route_not_found", 404)
    assert_denied(decide(make_peer(not_after=NOW), request=request), "route_not_found", 404)


# --- 2. client_certificate_required -------------------------------------------------------------


def test_a_required_route_without_a_certificate_is_401() -> None:
    denied = assert_denied(decide(None), "client_certificate_required", 401)
    assert denied.route == PAYMENTS
    assert PAYMENTS.label in denied.error.message


# --- 3. validity dates --------------------------------------------------------------------------


@pytest.mark.parametrize("not_after", [NOW, NOW - TICK, NOW - timedelta(days=3)])
def test_an_expired_leaf_is_denied_from_its_not_after_on(not_after: datetime) -> None:
    denied = assert_denied(decide(make_peer(not_after=not_after)), "certificate_expired")
    assert SERIAL in denied.error.message
    assert denied.route == PAYMENTS


def test_a_leaf_is_valid_until_just_before_its_not_after() -> None:
    assert_allowed(decide(make_peer(not_after=NOW + TICK)))


@pytest.mark.parametrize("chain_not_after", [NOW, NOW - TICK])
def test_an_expired_ca_in_the_chain_is_denied(chain_not_after: datetime) -> None:
    denied = assert_denied(
        decide(make_peer(chain_not_after=chain_not_after)), "certificate_expired"
    )
    assert SERIAL in denied.error.message


def test_a_chain_is_valid_until_just_before_its_earliest_not_after() -> None:
    assert_allowed(decide(make_peer(chain_not_after=NOW + TICK)))


@pytest.mark.parametrize("not_before", [NOW + TICK, NOW + timedelta(days=1)])
def test_a_leaf_before_its_not_before_is_not_yet_valid(not_before: datetime) -> None:
    denied = assert_denied(decide(make_peer(not_before=not_before)), "certificate_not_yet_valid")
    assert SERIAL in denied.error.message


def test_a_leaf_is_valid_from_its_not_before_exactly() -> None:
    assert_allowed(decide(make_peer(not_before=NOW)))


def test_a_chain_is_valid_from_its_latest_not_before_exactly() -> None:
    assert_allowed(decide(make_peer(chain_not_before=NOW)))


def test_a_chain_whose_ca_is_not_valid_yet_is_denied() -> None:
    decision = decide(make_peer(chain_not_before=NOW + TICK))
    assert isinstance(decision, Deny)
    # The module answers certificate_expired here today; either date code tells the caller why.
    assert decision.code in {"certificate_expired", "certificate_not_yet_valid"}
    assert_denied(decision, decision.code)
    assert SERIAL in decision.error.message


# --- 4. certificate_revoked ---------------------------------------------------------------------


def test_a_revoked_certificate_is_denied() -> None:
    revoked = dataclasses.replace(ISSUED, revoked_at=NOW - timedelta(hours=1))
    denied = assert_denied(
        decide(snapshot=make_snapshot(issued={LEAF_FP: revoked})), "certificate_revoked"
    )
    assert SERIAL in denied.error.message


def test_expiry_is_reported_before_revocation() -> None:
    revoked = dataclasses.replace(ISSUED, revoked_at=NOW - timedelta(days=1))
    snapshot = make_snapshot(issued={LEAF_FP: revoked})
    assert_denied(decide(make_peer(not_after=NOW), snapshot=snapshot), "certificate_expired")


# --- 5. wrong_key_usage -------------------------------------------------------------------------


def test_a_certificate_without_client_auth_is_denied() -> None:
    denied = assert_denied(decide(make_peer(client_auth=False)), "wrong_key_usage")
    assert SERIAL in denied.error.message


# --- 6. certificate_not_registered --------------------------------------------------------------


def test_a_trusted_certificate_that_maps_to_no_account_is_denied() -> None:
    denied = assert_denied(
        decide(make_peer(fingerprint=fingerprint("stranger"))), "certificate_not_registered"
    )
    assert SERIAL in denied.error.message


def test_a_platform_certificate_of_an_account_that_is_gone_is_not_registered() -> None:
    snapshot = make_snapshot(accounts=(GLOBEX,))
    assert_denied(decide(snapshot=snapshot), "certificate_not_registered")


# --- customer CAs -------------------------------------------------------------------------------


def acme_ca(*patterns: str) -> dict[bytes, tuple[CustomerCA, ...]]:
    return {CUSTOMER_ROOT_FP: (CustomerCA(id="ca-acme", account_id=ACME.id, patterns=patterns),)}


def test_a_certificate_from_an_account_ca_without_patterns_maps_to_the_account() -> None:
    allowed = assert_allowed(
        decide(customer_peer(), snapshot=make_snapshot(customer_cas=acme_ca()))
    )
    assert allowed.identity is not None
    assert allowed.identity.account == ACME
    assert allowed.identity.issued is None


def test_an_account_ca_is_found_by_any_certificate_of_the_chain() -> None:
    cas = {CUSTOMER_INTERMEDIATE_FP: acme_ca()[CUSTOMER_ROOT_FP]}
    assert_allowed(decide(customer_peer(), snapshot=make_snapshot(customer_cas=cas)))


@pytest.mark.parametrize(
    "patterns", [("client.acme.example",), ("*.acme.example",), ("*.initech.example", "client.*")]
)
def test_a_certificate_matching_a_subject_pattern_maps_to_the_account(
    patterns: tuple[str, ...],
) -> None:
    snapshot = make_snapshot(customer_cas=acme_ca(*patterns))
    allowed = assert_allowed(decide(customer_peer(), snapshot=snapshot))
    assert allowed.identity is not None
    assert allowed.identity.account == ACME


@pytest.mark.parametrize("patterns", [("*.initech.example",), ("acme.example",), ("CLIENT.*",)])
def test_a_certificate_matching_no_subject_pattern_is_not_registered(
    patterns: tuple[str, ...],
) -> None:
    snapshot = make_snapshot(customer_cas=acme_ca(*patterns))
    denied = assert_denied(decide(customer_peer(), snapshot=snapshot), "certificate_not_registered")
    assert SERIAL in denied.error.message


def test_a_certificate_from_an_unregistered_ca_is_not_registered() -> None:
    snapshot = make_snapshot(
        customer_cas={fingerprint("someone else's root"): acme_ca()[CUSTOMER_ROOT_FP]}
    )
    assert_denied(decide(customer_peer(), snapshot=snapshot), "certificate_not_registered")


# --- 7. account_mtls_disabled -------------------------------------------------------------------


def test_an_account_with_mtls_disabled_is_denied() -> None:
    disabled = make_account(mtls_enabled=False)
    denied = assert_denied(
        decide(snapshot=make_snapshot(accounts=(disabled, GLOBEX))), "account_mtls_disabled"
    )
    assert denied.identity is not None
    assert denied.identity.account == disabled
    assert ACME.name in denied.error.message


# --- 8. source_ip_forbidden ---------------------------------------------------------------------


def allowlisted(*networks: str) -> GatewaySnapshot:
    account = make_account(networks=tuple(ipaddress.ip_network(n) for n in networks))
    return make_snapshot(accounts=(account, GLOBEX))


@pytest.mark.parametrize(
    ("networks", "source_ip"),
    [
        (("10.0.0.0/8",), "10.1.2.3"),
        (("10.0.0.0/8", "192.0.2.0/24"), "192.0.2.200"),
        (("10.0.0.0/8",), "::ffff:10.1.2.3"),
        (("2001:db8::/32",), "2001:db8::1"),
        ((), "203.0.113.7"),
        ((), "2001:db8::1"),
    ],
)
def test_a_source_address_on_the_allowlist_is_allowed(
    networks: tuple[str, ...], source_ip: str
) -> None:
    assert_allowed(
        decide(request=make_request(source_ip=source_ip), snapshot=allowlisted(*networks))
    )


@pytest.mark.parametrize(
    ("networks", "source_ip"),
    [
        (("10.0.0.0/8",), "203.0.113.7"),
        (("10.0.0.0/8",), "11.0.0.1"),
        (("10.0.0.0/8",), "::ffff:203.0.113.7"),
        (("2001:db8::/32",), "2001:db9::1"),
        (("2001:db8::/32",), "10.1.2.3"),
    ],
)
def test_a_source_address_off_the_allowlist_is_denied(
    networks: tuple[str, ...], source_ip: str
) -> None:
    request = make_request(source_ip=source_ip)
    denied = assert_denied(
        decide(request=request, snapshot=allowlisted(*networks)), "source_ip_forbidden"
    )
    assert ACME.name in denied.error.message
    assert str(request.source_ip) in denied.error.message
    assert denied.identity is not None


# --- 9. route_forbidden -------------------------------------------------------------------------


def test_a_route_limited_to_other_accounts_is_forbidden() -> None:
    route = make_route(allowed_accounts=frozenset({GLOBEX.id}))
    denied = assert_denied(decide(snapshot=make_snapshot(routes=(route,))), "route_forbidden")
    assert route.label in denied.error.message
    assert ACME.name in denied.error.message


def test_a_route_limited_to_the_callers_account_is_allowed() -> None:
    route = make_route(allowed_accounts=frozenset({ACME.id, GLOBEX.id}))
    assert_allowed(decide(snapshot=make_snapshot(routes=(route,))), route=route)


def test_an_account_limited_to_other_routes_and_versions_is_forbidden() -> None:
    account = make_account(allowed_routes=frozenset({"orders", "v1"}))
    denied = assert_denied(
        decide(snapshot=make_snapshot(accounts=(account, GLOBEX))), "route_forbidden"
    )
    assert PAYMENTS.label in denied.error.message


@pytest.mark.parametrize("allowed_routes", [{"payments"}, {"v2"}, {"orders", "v2"}])
def test_an_account_limited_to_this_route_name_or_version_is_allowed(
    allowed_routes: set[str],
) -> None:
    account = make_account(allowed_routes=frozenset(allowed_routes))
    assert_allowed(decide(snapshot=make_snapshot(accounts=(account, GLOBEX))))


def test_a_certificate_issued_for_other_versions_is_forbidden() -> None:
    entry = dataclasses.replace(ISSUED, api_versions=frozenset({"v1", "v3"}))
    denied = assert_denied(
        decide(snapshot=make_snapshot(issued={LEAF_FP: entry})), "route_forbidden"
    )
    assert SERIAL in denied.error.message
    assert PAYMENTS.label in denied.error.message


@pytest.mark.parametrize("versions", [set(), {"v2"}, {"v1", "v2"}])
def test_a_certificate_issued_for_this_version_or_any_is_allowed(versions: set[str]) -> None:
    entry = dataclasses.replace(ISSUED, api_versions=frozenset(versions))
    assert_allowed(decide(snapshot=make_snapshot(issued={LEAF_FP: entry})))


# --- 10. authorization_required -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "header"),
    [
        (AuthorizationScheme.BASIC, "Basic dXNlcjpwYXNz"),
        (AuthorizationScheme.BEARER, "Bearer abc.def"),
        (AuthorizationScheme.ANY, "Basic dXNlcjpwYXNz"),
        (AuthorizationScheme.ANY, "bearer abc"),
    ],
)
def test_a_route_wanting_authorization_allows_the_right_header(
    scheme: AuthorizationScheme, header: str
) -> None:
    route = make_route(authorization=scheme)
    request = make_request(headers={"authorization": header})
    assert_allowed(decide(request=request, snapshot=make_snapshot(routes=(route,))), route=route)


@pytest.mark.parametrize(
    ("scheme", "header"),
    [
        (AuthorizationScheme.BASIC, None),
        (AuthorizationScheme.BASIC, "Bearer abc"),
        (AuthorizationScheme.BASIC, "Basic "),
        (AuthorizationScheme.BEARER, None),
        (AuthorizationScheme.BEARER, "Basic dXNlcjpwYXNz"),
        (AuthorizationScheme.ANY, None),
        (AuthorizationScheme.ANY, "Digest username=x"),
    ],
)
def test_a_route_wanting_authorization_denies_a_missing_or_wrong_header(
    scheme: AuthorizationScheme, header: str | None
) -> None:
    route = make_route(authorization=scheme)
    request = make_request(headers=None if header is None else {"authorization": header})
    decision = decide(request=request, snapshot=make_snapshot(routes=(route,)))
    denied = assert_denied(decision, "authorization_required")
    assert route.label in denied.error.message
    assert denied.identity is not None
    assert denied.identity.account == ACME


def test_authorization_is_checked_on_routes_without_a_certificate_too() -> None:
    for mode in (MtlsMode.OPTIONAL, MtlsMode.OFF):
        route = make_route(mtls=mode, authorization=AuthorizationScheme.BEARER)
        snapshot = make_snapshot(routes=(route,))
        assert_denied(decide(None, snapshot=snapshot), "authorization_required")
        request = make_request(headers={"authorization": "Bearer abc"})
        assert_allowed(decide(None, request=request, snapshot=snapshot), route=route)


# --- optional and off routes --------------------------------------------------------------------


def test_an_optional_route_without_a_certificate_is_allowed_anonymously() -> None:
    route = make_route(mtls=MtlsMode.OPTIONAL)
    allowed = assert_allowed(decide(None, snapshot=make_snapshot(routes=(route,))), route=route)
    assert allowed.identity is None


def test_an_optional_route_with_a_certificate_forwards_its_identity() -> None:
    route = make_route(mtls=MtlsMode.OPTIONAL)
    allowed = assert_allowed(decide(snapshot=make_snapshot(routes=(route,))), route=route)
    assert allowed.identity is not None
    assert allowed.identity.account == ACME


def test_an_optional_route_still_checks_a_certificate_that_is_sent() -> None:
    route = make_route(mtls=MtlsMode.OPTIONAL)
    snapshot = make_snapshot(routes=(route,))
    assert_denied(decide(make_peer(not_after=NOW), snapshot=snapshot), "certificate_expired")


@pytest.mark.parametrize("with_peer", [True, False])
def test_an_off_route_ignores_the_certificate_even_a_revoked_one(with_peer: bool) -> None:
    route = make_route(mtls=MtlsMode.OFF)
    revoked = dataclasses.replace(ISSUED, revoked_at=NOW - timedelta(days=1))
    snapshot = make_snapshot(routes=(route,), issued={LEAF_FP: revoked})
    allowed = assert_allowed(decide(PEER if with_peer else None, snapshot=snapshot), route=route)
    assert allowed.identity is None


# --- messages -----------------------------------------------------------------------------------


def every_denial() -> list[Any]:
    revoked = dataclasses.replace(ISSUED, revoked_at=NOW - timedelta(hours=1))
    other_version = dataclasses.replace(ISSUED, api_versions=frozenset({"v1"}))
    globex_only = make_route(allowed_accounts=frozenset({GLOBEX.id}))
    bearer = make_route(authorization=AuthorizationScheme.BEARER)
    return [
        pytest.param(PEER, make_request(path="/x"), make_snapshot(), id="route_not_found"),
        pytest.param(None, make_request(), make_snapshot(), id="client_certificate_required"),
        pytest.param(make_peer(not_after=NOW), make_request(), make_snapshot(), id="expired"),
        pytest.param(
            make_peer(chain_not_after=NOW), make_request(), make_snapshot(), id="chain_expired"
        ),
        pytest.param(
            make_peer(not_before=NOW + TICK), make_request(), make_snapshot(), id="not_yet_valid"
        ),
        pytest.param(PEER, make_request(), make_snapshot(issued={LEAF_FP: revoked}), id="revoked"),
        pytest.param(
            make_peer(client_auth=False), make_request(), make_snapshot(), id="wrong_key_usage"
        ),
        pytest.param(
            PEER, make_request(), make_snapshot(issued={}), id="certificate_not_registered"
        ),
        pytest.param(
            PEER,
            make_request(),
            make_snapshot(accounts=(make_account(mtls_enabled=False), GLOBEX)),
            id="account_mtls_disabled",
        ),
        pytest.param(
            PEER,
            make_request(),
            make_snapshot(
                accounts=(make_account(networks=(ipaddress.ip_network("10.0.0.0/8"),)), GLOBEX)
            ),
            id="source_ip_forbidden",
        ),
        pytest.param(
            PEER, make_request(), make_snapshot(routes=(globex_only,)), id="route_other_account"
        ),
        pytest.param(
            PEER,
            make_request(),
            make_snapshot(accounts=(make_account(allowed_routes=frozenset({"orders"})), GLOBEX)),
            id="account_other_routes",
        ),
        pytest.param(
            PEER,
            make_request(),
            make_snapshot(issued={LEAF_FP: other_version}),
            id="certificate_other_version",
        ),
        pytest.param(
            PEER, make_request(), make_snapshot(routes=(bearer,)), id="authorization_required"
        ),
    ]


CERTIFICATE_CODES = {
    "certificate_expired",
    "certificate_not_yet_valid",
    "certificate_revoked",
    "wrong_key_usage",
    "certificate_not_registered",
}


@pytest.mark.parametrize(("peer", "request_", "snapshot"), every_denial())
def test_a_denial_names_what_the_caller_knows_and_nothing_else(
    peer: Peer | None, request_: GatewayRequest, snapshot: GatewaySnapshot
) -> None:
    decision = authorize(peer, request_, snapshot, NOW)
    assert isinstance(decision, Deny)
    denied = assert_denied(decision, decision.code, decision.status)
    message = denied.error.message
    if denied.code in CERTIFICATE_CODES:
        assert SERIAL in message
    if denied.code in {"client_certificate_required", "route_forbidden", "authorization_required"}:
        assert PAYMENTS.label in message
    if denied.code != "route_not_found":
        assert denied.route is not None
    assert denied.error.to_dict() == {
        "code": denied.code,
        "message": message,
        "hint": denied.error.hint,
    }


def test_every_code_of_the_module_docstring_is_reachable() -> None:
    codes = set()
    for param in every_denial():
        peer, request, snapshot = param.values
        decision = authorize(peer, request, snapshot, NOW)
        assert isinstance(decision, Deny)
        codes.add(decision.code)
    assert codes == {
        "route_not_found",
        "client_certificate_required",
        "certificate_expired",
        "certificate_not_yet_valid",
        "certificate_revoked",
        "wrong_key_usage",
        "certificate_not_registered",
        "account_mtls_disabled",
        "source_ip_forbidden",
        "route_forbidden",
        "authorization_required",
    }


# --- identify -----------------------------------------------------------------------------------


def test_identify_returns_the_identity_of_a_usable_certificate() -> None:
    identity = identify(PEER, make_snapshot(), NOW)
    assert not isinstance(identity, Deny)
    assert (identity.account, identity.issued) == (ACME, ISSUED)


def test_identify_denies_without_a_route() -> None:
    denied = identify(make_peer(not_after=NOW), make_snapshot(), NOW)
    assert isinstance(denied, Deny)
    assert denied.code == "certificate_expired"
    assert denied.route is None
