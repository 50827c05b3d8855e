"""Gateway routes in the store: validated, unique, audited, platform-wide only, and loaded in the
order the gateway tries them. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from mutls.accounts.principal import Principal
from mutls.accounts.roles import Role
from mutls.accounts.service import create_account
from mutls.audit.log import AuditQuery, query, verify
from mutls.errors import (
    AccountNotFound,
    InvalidArgument,
    NameTaken,
    PermissionDenied,
    RouteNotFound,
)
from mutls.policy.routing import AuthorizationScheme, MtlsMode, Upstream
from mutls.routing import (
    create_route,
    delete_route,
    get_route,
    list_routes,
    load_route_table,
    update_route,
)
from mutls.store.database import Database
from mutls.store.models import AuditEvent
from mutls.store.models import Route as RouteRow

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ADMIN = Principal.system("test:admin")
UPSTREAM = "http://127.0.0.1:9000"


def counts(db: Database) -> tuple[int, int]:
    """(routes, audit rows about routes)."""
    with db.read() as session:
        routes = session.execute(select(func.count()).select_from(RouteRow)).scalar_one()
        events = session.execute(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.resource_type == "gateway_route")
        ).scalar_one()
    return routes, events


def events(db: Database, action: str) -> list[AuditEvent]:
    with db.read() as session:
        return query(session, ADMIN, AuditQuery(action=action))


def test_create_show_list_update_delete_each_audited(db: Database) -> None:
    """The whole life of a route: each change is one audit row naming what changed."""
    acme = create_account(db, ADMIN, name="acme", display_name=None, now=NOW)
    created = create_route(
        db,
        ADMIN,
        now=NOW,
        name="payments-v2",
        upstream_url="http://Payments.internal:8080/",
        host="API.Example.com",
        path_prefix="/payments/",
        api_version="v2",
        version_header="Api-Version",
        allowed_accounts=["acme"],
        authorization="basic",
        description="seed 003",
    )
    assert created.id.startswith("rte_")
    assert created.host == "api.example.com"
    assert created.path_prefix == "/payments"
    assert created.version_header == "api-version"
    assert created.upstream_url == "http://payments.internal:8080"
    assert created.allowed_accounts == (acme.id,)
    assert created.mtls is MtlsMode.REQUIRED
    assert created.authorization is AuthorizationScheme.BASIC
    assert (created.created_at, created.updated_at, created.created_by) == (NOW, NOW, "test:admin")
    assert get_route(db, ADMIN, "payments-v2") == created
    assert get_route(db, ADMIN, created.id) == created
    assert list_routes(db, ADMIN) == [created]
    (event,) = events(db, "route.create")
    assert event.resource_id == created.id
    assert event.details["upstream_url"] == "http://payments.internal:8080"
    assert event.details["allowed_accounts"] == [acme.id]

    later = NOW + timedelta(minutes=5)
    updated = update_route(
        db, ADMIN, "payments-v2", now=later, upstream_url="http://10.0.0.9:81", mtls="optional"
    )
    assert updated.upstream_url == "http://10.0.0.9:81"
    assert updated.mtls is MtlsMode.OPTIONAL
    assert updated.host == "api.example.com"  # left out: kept
    assert (updated.created_at, updated.updated_at) == (NOW, later)
    (change,) = events(db, "route.update")
    assert change.details == {
        "name": "payments-v2",
        "changed": {
            "upstream_url": {
                "before": "http://payments.internal:8080",
                "after": "http://10.0.0.9:81",
            },
            "mtls": {"before": "required", "after": "optional"},
        },
    }

    delete_route(db, ADMIN, created.id, now=later)
    assert list_routes(db, ADMIN) == []
    (removed,) = events(db, "route.delete")
    assert removed.details["name"] == "payments-v2"
    assert counts(db) == (0, 3)
    with db.read() as session:
        assert verify(session).ok


def test_defaults_are_any_host_root_prefix_required_mtls_no_authorization(db: Database) -> None:
    route = create_route(db, ADMIN, now=NOW, name="all", upstream_url="http://svc")
    assert (route.host, route.path_prefix, route.api_version, route.version_header) == (
        None,
        "/",
        None,
        None,
    )
    assert route.upstream_url == "http://svc:80"
    assert (route.mtls, route.authorization) == (MtlsMode.REQUIRED, AuthorizationScheme.NONE)
    assert route.allowed_accounts == ()
    assert route.description == ""


# Each field: a value that is accepted (and what it is stored as), and its rejection twin.
CASES: list[tuple[str, Any, Any, Any]] = [
    ("name", "payments-v2", "payments-v2", "Payments"),
    ("name", "a.b_c-1", "a.b_c-1", "-leading-dash"),
    ("name", "x" * 64, "x" * 64, "x" * 65),
    ("host", "api.example.com.", "api.example.com", "api.example.com:8443"),
    ("host", "*.example.com", "*.example.com", "*.*.example.com"),
    ("host", "10.0.0.1", "10.0.0.1", "999.0.0.1"),
    ("host", "[2001:DB8::1]", "2001:db8::1", "[10.0.0.1]"),
    ("host", "xn--bcher-kva.example", "xn--bcher-kva.example", "bücher.example"),
    ("host", "localhost", "localhost", ""),
    ("path_prefix", "/api/", "/api", "api"),
    ("path_prefix", "/api/v2", "/api/v2", "/api/../v2"),
    ("path_prefix", "/a%20b", "/a%20b", "/a b"),
    ("path_prefix", "/api", "/api", "/api?x=1"),
    ("path_prefix", "/api", "/api", "/api#top"),
    ("path_prefix", "/api", "/api", "/api//v2"),
    ("api_version", "2024-06-01", "2024-06-01", "v 2"),
    ("api_version", "V2", "V2", "-v2"),
    ("upstream_url", "http://127.0.0.1", "http://127.0.0.1:80", "https://127.0.0.1:9000"),
    ("upstream_url", "http://[::1]:9000/", "http://[::1]:9000", "http://user:pw@127.0.0.1"),
    ("upstream_url", "http://svc:9000", "http://svc:9000", "http://svc:9000/base"),
    ("upstream_url", "http://svc:9000", "http://svc:9000", "http://svc:9000?x=1"),
    ("upstream_url", "http://svc:65535", "http://svc:65535", "http://svc:65536"),
    ("upstream_url", "http://svc", "http://svc:80", "svc:9000"),
    ("mtls", "off", MtlsMode.OFF, "sometimes"),
    ("authorization", "any", AuthorizationScheme.ANY, "digest"),
    ("description", "line one\nline two", "line one\nline two", "bell\x07"),
    ("description", "d" * 2000, "d" * 2000, "d" * 2001),
]


@pytest.mark.parametrize(("field", "good", "stored", "bad"), CASES)
def test_each_field_accepts_its_form_and_refuses_its_twin(
    db: Database, field: str, good: Any, stored: Any, bad: Any
) -> None:
    """The good value is stored normalised; the bad one is invalid_argument and writes nothing."""
    base: dict[str, Any] = {"name": "r", "upstream_url": UPSTREAM}
    route = create_route(db, ADMIN, now=NOW, **{**base, field: good})
    assert getattr(route, field) == stored
    delete_route(db, ADMIN, route.id, now=NOW)
    before = counts(db)
    with pytest.raises(InvalidArgument) as caught:
        create_route(db, ADMIN, now=NOW, **{**base, field: bad})
    assert caught.value.message.startswith("expected")
    assert "found" in caught.value.message
    assert caught.value.hint
    assert counts(db) == before


def test_https_upstreams_are_refused_with_the_reason(db: Database) -> None:
    with pytest.raises(InvalidArgument) as caught:
        create_route(db, ADMIN, now=NOW, name="r", upstream_url="https://svc:443")
    assert "not supported yet" in caught.value.message
    assert "http://" in caught.value.hint


def test_version_header_needs_an_api_version(db: Database) -> None:
    """A header alone is refused; with a version it is accepted and lower-cased."""
    with pytest.raises(InvalidArgument) as caught:
        create_route(db, ADMIN, now=NOW, name="r", upstream_url=UPSTREAM, version_header="x-v")
    assert "api_version" in caught.value.message
    route = create_route(
        db, ADMIN, now=NOW, name="r", upstream_url=UPSTREAM, api_version="v1", version_header="X-V"
    )
    assert route.version_header == "x-v"


@pytest.mark.parametrize(
    "header", ["authorization", "Host", "x-mutls-account", "client-cert", "bad header", "a:b"]
)
def test_version_header_refuses_what_the_gateway_owns_and_non_tokens(
    db: Database, header: str
) -> None:
    with pytest.raises(InvalidArgument):
        create_route(
            db,
            ADMIN,
            now=NOW,
            name="r",
            upstream_url=UPSTREAM,
            api_version="v1",
            version_header=header,
        )
    assert counts(db) == (0, 0)


def test_allowed_accounts_resolve_names_to_ids(db: Database) -> None:
    """Ids and names both work, duplicates collapse, ids are stored sorted."""
    acme = create_account(db, ADMIN, name="acme", display_name=None, now=NOW)
    beta = create_account(db, ADMIN, name="beta", display_name=None, now=NOW)
    route = create_route(
        db,
        ADMIN,
        now=NOW,
        name="r",
        upstream_url=UPSTREAM,
        allowed_accounts=["beta", acme.id, "acme", beta.id],
    )
    assert route.allowed_accounts == tuple(sorted([acme.id, beta.id]))


def test_unknown_accounts_are_account_not_found_and_write_nothing(db: Database) -> None:
    create_account(db, ADMIN, name="acme", display_name=None, now=NOW)
    with pytest.raises(AccountNotFound) as caught:
        create_route(
            db, ADMIN, now=NOW, name="r", upstream_url=UPSTREAM, allowed_accounts=["acme", "nope"]
        )
    assert "'nope'" in caught.value.message
    assert counts(db) == (0, 0)


def test_allowed_accounts_are_bounded_and_need_mtls(db: Database) -> None:
    """More than 256 entries, or any entry on an mtls-off route, is invalid_argument."""
    with pytest.raises(InvalidArgument) as too_many:
        create_route(
            db,
            ADMIN,
            now=NOW,
            name="r",
            upstream_url=UPSTREAM,
            allowed_accounts=[f"acc{i}" for i in range(257)],
        )
    assert "256" in too_many.value.message
    create_account(db, ADMIN, name="acme", display_name=None, now=NOW)
    with pytest.raises(InvalidArgument) as off:
        create_route(
            db,
            ADMIN,
            now=NOW,
            name="r",
            upstream_url=UPSTREAM,
            mtls="off",
            allowed_accounts=["acme"],
        )
    assert "mtls off" in off.value.message
    assert counts(db) == (0, 0)


def test_a_taken_name_is_name_taken(db: Database) -> None:
    create_route(db, ADMIN, now=NOW, name="r", upstream_url=UPSTREAM, path_prefix="/a")
    with pytest.raises(NameTaken) as caught:
        create_route(db, ADMIN, now=NOW, name="r", upstream_url=UPSTREAM, path_prefix="/b")
    assert "'r'" in caught.value.message
    assert counts(db) == (1, 1)


def test_the_same_match_twice_is_refused_naming_the_route(db: Database) -> None:
    """Same host, prefix (after normalisation), version and header: name_taken naming the first
    route. Changing any one of them is a different route."""
    first = create_route(
        db,
        ADMIN,
        now=NOW,
        name="first",
        upstream_url=UPSTREAM,
        host="api.example.com",
        path_prefix="/api",
        api_version="v2",
    )
    with pytest.raises(NameTaken) as caught:
        create_route(
            db,
            ADMIN,
            now=NOW,
            name="second",
            upstream_url="http://other:1",
            host="API.example.com",
            path_prefix="/api/",
            api_version="v2",
        )
    assert "'first'" in caught.value.message
    assert first.id in caught.value.message
    assert counts(db) == (1, 1)
    variants: list[dict[str, Any]] = [
        {"host": "api.example.com", "path_prefix": "/api", "api_version": "v1"},
        {"host": "api.example.com", "path_prefix": "/api"},
        {"host": "*.example.com", "path_prefix": "/api", "api_version": "v2"},
        {"path_prefix": "/api", "api_version": "v2"},
        {"host": "api.example.com", "path_prefix": "/apix", "api_version": "v2"},
        {
            "host": "api.example.com",
            "path_prefix": "/api",
            "api_version": "v2",
            "version_header": "v",
        },
    ]
    for i, variant in enumerate(variants):
        create_route(db, ADMIN, now=NOW, name=f"v{i}", upstream_url=UPSTREAM, **variant)
    assert counts(db)[0] == 1 + len(variants)


def test_manage_mtls_and_account_scoped_tokens_are_refused(db: Database) -> None:
    """manage-mtls may neither read nor write routes; an account's own admin neither; an auditor
    reads only."""
    acme = create_account(db, ADMIN, name="acme", display_name=None, now=NOW)
    route = create_route(db, ADMIN, now=NOW, name="r", upstream_url=UPSTREAM)
    manager = Principal(actor="token:tok_m", role=Role.MANAGE_MTLS, account_id=acme.id)
    scoped_admin = Principal(actor="token:tok_a", role=Role.ADMIN, account_id=acme.id)
    auditor = Principal(actor="token:tok_r", role=Role.AUDITOR)
    for who in (manager, scoped_admin):
        with pytest.raises(PermissionDenied):
            create_route(db, who, now=NOW, name="x", upstream_url=UPSTREAM)
        with pytest.raises(PermissionDenied):
            list_routes(db, who)
        with pytest.raises(PermissionDenied):
            get_route(db, who, "r")
        with pytest.raises(PermissionDenied):
            update_route(db, who, "r", now=NOW, mtls="off")
        with pytest.raises(PermissionDenied):
            delete_route(db, who, "r", now=NOW)
    assert list_routes(db, auditor) == [route]
    with pytest.raises(PermissionDenied):
        update_route(db, auditor, "r", now=NOW, mtls="off")
    assert get_route(db, ADMIN, "r") == route
    assert counts(db) == (1, 1)


def test_unknown_routes_are_route_not_found(db: Database) -> None:
    for call in (
        lambda: get_route(db, ADMIN, "nope"),
        lambda: update_route(db, ADMIN, "nope", now=NOW, mtls="off"),
        lambda: delete_route(db, ADMIN, "nope", now=NOW),
    ):
        with pytest.raises(RouteNotFound) as caught:
            call()
        assert "'nope'" in caught.value.message
        assert "mutls route list" in caught.value.hint


def test_update_is_partial_clears_with_none_and_validates_the_result(db: Database) -> None:
    create_route(
        db,
        ADMIN,
        now=NOW,
        name="r",
        upstream_url=UPSTREAM,
        host="api.example.com",
        api_version="v2",
        version_header="api-version",
    )
    with pytest.raises(InvalidArgument):  # the header would be left without a version
        update_route(db, ADMIN, "r", now=NOW, api_version=None)
    cleared = update_route(db, ADMIN, "r", now=NOW, api_version=None, version_header=None)
    assert (cleared.api_version, cleared.version_header) == (None, None)
    assert cleared.host == "api.example.com"
    anyhost = update_route(db, ADMIN, "r", now=NOW, host=None, name="renamed")
    assert (anyhost.host, anyhost.name) == (None, "renamed")
    with pytest.raises(InvalidArgument):
        update_route(db, ADMIN, "renamed", now=NOW, upstream_url=None)
    with pytest.raises(InvalidArgument):
        update_route(db, ADMIN, "renamed", now=NOW, colour="blue")
    with pytest.raises(InvalidArgument):
        update_route(db, ADMIN, "renamed", now=NOW, upstream_url="https://svc")
    assert get_route(db, ADMIN, "renamed").upstream_url == UPSTREAM


def test_update_into_a_clash_is_refused_and_a_no_op_writes_nothing(db: Database) -> None:
    create_route(db, ADMIN, now=NOW, name="a", upstream_url=UPSTREAM, path_prefix="/a")
    create_route(db, ADMIN, now=NOW, name="b", upstream_url=UPSTREAM, path_prefix="/b")
    with pytest.raises(NameTaken):
        update_route(db, ADMIN, "b", now=NOW, path_prefix="/a/")
    with pytest.raises(NameTaken):
        update_route(db, ADMIN, "b", now=NOW, name="a")
    later = NOW + timedelta(hours=1)
    same = update_route(db, ADMIN, "b", now=later, path_prefix="/b/", upstream_url=UPSTREAM)
    assert same.updated_at == NOW
    assert counts(db) == (2, 2)


def test_load_route_table_gives_policy_routes_in_specificity_order(db: Database) -> None:
    """Exact host before wildcard before any host; longer prefix first; versioned first."""
    acme = create_account(db, ADMIN, name="acme", display_name=None, now=NOW)
    specs: list[dict[str, Any]] = [
        {"name": "any-root"},
        {"name": "any-api", "path_prefix": "/api"},
        {"name": "wild", "host": "*.example.com"},
        {"name": "exact", "host": "api.example.com"},
        {"name": "exact-api", "host": "api.example.com", "path_prefix": "/api"},
        {
            "name": "exact-api-v2",
            "host": "api.example.com",
            "path_prefix": "/api",
            "api_version": "v2",
            "version_header": "Api-Version",
            "allowed_accounts": ["acme"],
            "authorization": "bearer",
            "mtls": "optional",
        },
    ]
    for spec in reversed(specs):
        create_route(db, ADMIN, now=NOW, upstream_url="http://svc:9000", **spec)
    with db.read() as session:
        table = load_route_table(session)
    with db.engine.connect() as connection:
        assert load_route_table(connection) == table
    assert [r.name for r in table.routes] == [
        "exact-api-v2",
        "exact-api",
        "exact",
        "wild",
        "any-api",
        "any-root",
    ]
    versioned = table.routes[0]
    assert versioned.upstream == Upstream(host="svc", port=9000)
    assert versioned.mtls is MtlsMode.OPTIONAL
    assert versioned.authorization is AuthorizationScheme.BEARER
    assert versioned.allowed_accounts == frozenset({acme.id})
    assert versioned.version_header == "api-version"
    assert versioned.id == get_route(db, ADMIN, "exact-api-v2").id
    assert [v.name for v in list_routes(db, ADMIN)] == [r.name for r in table.routes]
    matched = table.match("api.example.com", "/api/x", {"api-version": "v2"}.get)
    assert matched is not None
    assert matched.name == "exact-api-v2"


def test_an_empty_store_loads_an_empty_table(db: Database) -> None:
    with db.read() as session:
        assert load_route_table(session).routes == ()
