"""Route matching: the most specific route wins, prefixes match whole segments, versions filter."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mutls.policy.routing import AuthorizationScheme, MtlsMode, Route, RouteTable, Upstream

UPSTREAM = Upstream(host="backend.internal", port=8080)

Header = Callable[[str], str | None]


def route(
    name: str,
    *,
    host: str | None = None,
    path_prefix: str = "/",
    api_version: str | None = None,
    version_header: str | None = None,
) -> Route:
    return Route(
        id=f"rt-{name}",
        name=name,
        upstream=UPSTREAM,
        host=host,
        path_prefix=path_prefix,
        api_version=api_version,
        version_header=version_header,
    )


def headers(values: Mapping[str, str] | None = None) -> Header:
    found = dict(values or {})
    return found.get


def names(routes: Sequence[Route]) -> list[str]:
    return [r.name for r in routes]


def matched(
    routes: Sequence[Route], host: str, path: str, header: Header | None = None
) -> str | None:
    found = RouteTable.of(routes).match(host, path, header or headers())
    return None if found is None else found.name


# --- RouteTable.of ------------------------------------------------------------------------------


def test_of_orders_by_host_kind_then_prefix_length_then_version_then_name() -> None:
    routes = [
        route("any-root"),
        route("any-long", path_prefix="/api/admin"),
        route("wild", host="*.example.com"),
        route("exact-root", host="api.example.com"),
        route("exact-api-b", host="api.example.com", path_prefix="/api"),
        route("exact-api-a", host="api.example.com", path_prefix="/api"),
        route("exact-api-v2", host="api.example.com", path_prefix="/api", api_version="v2"),
    ]
    assert names(RouteTable.of(routes).routes) == [
        "exact-api-v2",
        "exact-api-a",
        "exact-api-b",
        "exact-root",
        "wild",
        "any-long",
        "any-root",
    ]


def test_of_does_not_depend_on_the_order_routes_are_given_in() -> None:
    routes = [
        route("a", host="*.example.com", path_prefix="/api"),
        route("b", path_prefix="/api/v2"),
        route("c", host="api.example.com"),
    ]
    assert RouteTable.of(routes) == RouteTable.of(list(reversed(routes)))


def test_an_empty_table_matches_nothing() -> None:
    assert RouteTable.of([]).match("api.example.com", "/", headers()) is None


# --- hosts --------------------------------------------------------------------------------------


HOST_ROUTES = [
    route("any"),
    route("wild", host="*.example.com"),
    route("exact", host="api.example.com"),
]


@pytest.mark.parametrize(
    ("host", "expected"),
    [("api.example.com", "exact"), ("other.example.com", "wild"), ("example.org", "any")],
)
def test_an_exact_host_beats_a_wildcard_beats_any_host(host: str, expected: str) -> None:
    assert matched(HOST_ROUTES, host, "/x") == expected


def test_the_host_kind_outranks_a_longer_prefix() -> None:
    routes = [route("exact-root", host="api.example.com"), route("any-deep", path_prefix="/a/b/c")]
    assert matched(routes, "api.example.com", "/a/b/c/d") == "exact-root"


@pytest.mark.parametrize(
    ("host", "matches"),
    [
        ("a.example.com", True),
        ("a.b.example.com", True),
        ("example.com", False),
        ("aexample.com", False),
        (".example.com", False),
        ("a.example.com.evil.org", False),
        ("a.example.org", False),
    ],
)
def test_a_wildcard_host_needs_one_or_more_labels_before_the_domain(
    host: str, matches: bool
) -> None:
    wild = route("wild", host="*.example.com")
    assert (wild.host_rank(host) == 1) is matches
    assert (matched([wild], host, "/") == "wild") is matches


def test_an_exact_host_matches_only_itself() -> None:
    exact = route("exact", host="api.example.com")
    assert exact.host_rank("api.example.com") == 2
    assert exact.host_rank("x.api.example.com") == -1
    assert matched([exact], "other.example.com", "/") is None


def test_a_route_without_host_matches_every_host() -> None:
    assert route("any").host_rank("whatever.test") == 0


# --- paths --------------------------------------------------------------------------------------


def test_the_longest_prefix_wins() -> None:
    routes = [route("api", path_prefix="/api"), route("admin", path_prefix="/api/admin")]
    assert matched(routes, "h", "/api/admin/users") == "admin"
    assert matched(routes, "h", "/api/admin") == "admin"
    assert matched(routes, "h", "/api/users") == "api"
    assert matched(routes, "h", "/api/administrators") == "api"


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("/api", True),
        ("/api/", True),
        ("/api/x", True),
        ("/api/x/y", True),
        ("/apix", False),
        ("/api-v2", False),
        ("/ap", False),
        ("/", False),
        ("/v1/api", False),
    ],
)
def test_a_prefix_matches_whole_segments_only(path: str, matches: bool) -> None:
    assert (matched([route("api", path_prefix="/api")], "h", path) == "api") is matches


@pytest.mark.parametrize("path", ["/", "/x", "/api/v2/deep/path"])
def test_the_root_prefix_matches_every_path(path: str) -> None:
    root = route("root")
    assert root.path_rest(path) == path
    assert matched([root], "h", path) == "root"


def test_no_route_for_the_host_or_the_path_is_none() -> None:
    routes = [route("api", host="api.example.com", path_prefix="/api")]
    assert matched(routes, "api.example.com", "/other") is None
    assert matched(routes, "web.example.com", "/api") is None


# --- versions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("/api/v2", True),
        ("/api/v2/", True),
        ("/api/v2/x", True),
        ("/api/v3/x", False),
        ("/api/v2x/y", False),
        ("/api/x/v2", False),
        ("/api/", False),
        ("/api", False),
    ],
)
def test_the_version_is_the_path_segment_after_the_prefix(path: str, matches: bool) -> None:
    v2 = route("api-v2", path_prefix="/api", api_version="v2")
    assert (matched([v2], "h", path) == "api-v2") is matches


def test_a_path_version_on_the_root_prefix_is_the_first_segment() -> None:
    v2 = route("root-v2", api_version="v2")
    assert matched([v2], "h", "/v2/orders") == "root-v2"
    assert matched([v2], "h", "/v1/orders") is None


@pytest.mark.parametrize(
    ("values", "matches"),
    [
        ({"api-version": "v2"}, True),
        ({"api-version": " v2 "}, True),
        ({"api-version": "v3"}, False),
        ({"api-version": ""}, False),
        ({"other": "v2"}, False),
        ({}, False),
    ],
)
def test_the_version_comes_from_the_header_the_route_names(
    values: Mapping[str, str], matches: bool
) -> None:
    v2 = route("api-v2", path_prefix="/api", api_version="v2", version_header="api-version")
    assert (matched([v2], "h", "/api/orders", headers(values)) == "api-v2") is matches


def test_a_header_version_ignores_the_path_segment() -> None:
    v2 = route("api-v2", path_prefix="/api", api_version="v2", version_header="api-version")
    assert matched([v2], "h", "/api/v3/x", headers({"api-version": "v2"})) == "api-v2"
    assert matched([v2], "h", "/api/v2/x", headers({"api-version": "v3"})) is None


def test_the_header_is_looked_up_by_its_lower_case_name() -> None:
    asked: list[str] = []

    def header(name: str) -> str | None:
        asked.append(name)
        return "v2"

    v2 = route("api-v2", path_prefix="/api", api_version="v2", version_header="api-version")
    assert matched([v2], "h", "/api", header) == "api-v2"
    assert asked == ["api-version"]


def test_a_route_with_a_version_beats_one_without_for_the_same_host_and_prefix() -> None:
    routes = [
        route("api", host="api.example.com", path_prefix="/api"),
        route("api-v2", host="api.example.com", path_prefix="/api", api_version="v2"),
    ]
    assert matched(routes, "api.example.com", "/api/v2/x") == "api-v2"
    assert matched(routes, "api.example.com", "/api/v1/x") == "api"
    assert matched(routes, "api.example.com", "/api") == "api"


def test_the_label_names_the_version_when_there_is_one() -> None:
    assert route("payments").label == "payments"
    assert route("payments", api_version="v2").label == "payments (API version v2)"


# --- Authorization header -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "header", "accepted"),
    [
        (AuthorizationScheme.NONE, None, True),
        (AuthorizationScheme.NONE, "", True),
        (AuthorizationScheme.NONE, "garbage", True),
        (AuthorizationScheme.BASIC, "Basic dXNlcjpwYXNz", True),
        (AuthorizationScheme.BASIC, "basic dXNlcjpwYXNz", True),
        (AuthorizationScheme.BASIC, "BASIC dXNlcjpwYXNz", True),
        (AuthorizationScheme.BASIC, "  Basic dXNlcjpwYXNz  ", True),
        (AuthorizationScheme.BASIC, "Basic", False),
        (AuthorizationScheme.BASIC, "Basic ", False),
        (AuthorizationScheme.BASIC, "Basic    ", False),
        (AuthorizationScheme.BASIC, "Bearer abc", False),
        (AuthorizationScheme.BASIC, "Basicabc", False),
        (AuthorizationScheme.BASIC, "", False),
        (AuthorizationScheme.BASIC, None, False),
        (AuthorizationScheme.BEARER, "Bearer abc.def", True),
        (AuthorizationScheme.BEARER, "bEaReR abc", True),
        (AuthorizationScheme.BEARER, "Bearer", False),
        (AuthorizationScheme.BEARER, "Basic dXNlcjpwYXNz", False),
        (AuthorizationScheme.BEARER, None, False),
        (AuthorizationScheme.ANY, "Basic dXNlcjpwYXNz", True),
        (AuthorizationScheme.ANY, "Bearer abc", True),
        (AuthorizationScheme.ANY, "BEARER abc", True),
        (AuthorizationScheme.ANY, "Digest username=x", False),
        (AuthorizationScheme.ANY, "Negotiate abc", False),
        (AuthorizationScheme.ANY, "Bearer ", False),
        (AuthorizationScheme.ANY, None, False),
    ],
)
def test_authorization_scheme_accepts(
    scheme: AuthorizationScheme, header: str | None, accepted: bool
) -> None:
    assert scheme.accepts(header) is accepted


def test_modes_and_schemes_have_stable_values() -> None:
    assert [m.value for m in MtlsMode] == ["required", "optional", "off"]
    assert [s.value for s in AuthorizationScheme] == ["none", "basic", "bearer", "any"]


# --- properties ---------------------------------------------------------------------------------

HOSTS = [None, "api.example.com", "*.example.com", "*.b.example.com", "web.example.com"]
PREFIXES = ["/", "/api", "/apix", "/api/v2", "/api/admin", "/v2"]
SEGMENTS = ["api", "apix", "v1", "v2", "admin", "x"]
REQUEST_HOSTS = ["api.example.com", "a.b.example.com", "web.example.com", "example.com", "x.org"]


@st.composite
def route_lists(draw: st.DrawFn) -> list[Route]:
    specs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(HOSTS),
                st.sampled_from(PREFIXES),
                st.sampled_from([None, "v1", "v2"]),
                st.sampled_from([None, "api-version"]),
            ),
            max_size=8,
        )
    )
    return [
        route(f"r{i}", host=host, path_prefix=prefix, api_version=version, version_header=header)
        for i, (host, prefix, version, header) in enumerate(specs)
    ]


paths = st.lists(st.sampled_from(SEGMENTS), max_size=4).map(lambda s: "/" + "/".join(s))
version_headers = st.sampled_from([{}, {"api-version": "v1"}, {"api-version": "v2"}])


def is_segment_prefix(prefix: str, path: str) -> bool:
    return prefix in {"/", path} or path.startswith(prefix + "/")


def host_kind(r: Route) -> tuple[int, int]:
    """Exact host over wildcard over any host; among wildcards, the one with more labels
    (``*.b.example.com`` before ``*.example.com``), as a server_name would pick."""
    if r.host is None:
        return (0, 0)
    return (1, r.host.count(".")) if r.host.startswith("*.") else (2, 0)


def matches_alone(r: Route, host: str, path: str, header: Header) -> bool:
    return RouteTable.of([r]).match(host, path, header) is r


@given(route_lists(), st.sampled_from(REQUEST_HOSTS), paths, version_headers)
def test_a_match_is_a_segment_prefix_and_no_matching_route_is_more_specific(
    routes: list[Route], host: str, path: str, values: dict[str, str]
) -> None:
    header = headers(values)
    found = RouteTable.of(routes).match(host, path, header)
    candidates = [r for r in routes if matches_alone(r, host, path, header)]
    if found is None:
        assert candidates == []
        return
    assert found in candidates
    assert is_segment_prefix(found.path_prefix, path)
    best = (host_kind(found), len(found.path_prefix), found.api_version is not None)
    assert all(
        (host_kind(r), len(r.path_prefix), r.api_version is not None) <= best for r in candidates
    )


@given(route_lists(), st.sampled_from(REQUEST_HOSTS), paths, version_headers, st.randoms())
def test_the_match_does_not_depend_on_the_order_routes_are_given_in(
    routes: list[Route], host: str, path: str, values: dict[str, str], rng: random.Random
) -> None:
    shuffled = list(routes)
    rng.shuffle(shuffled)
    header = headers(values)
    assert RouteTable.of(shuffled).match(host, path, header) == RouteTable.of(routes).match(
        host, path, header
    )
