"""Gateway routes: the admin side (store, validation, audit) of ``mutls.policy.routing``."""

from __future__ import annotations

from mutls.routing.fields import RouteSpec, parse_upstream, validate_spec
from mutls.routing.service import (
    EDITABLE_FIELDS,
    RouteView,
    create_route,
    delete_route,
    get_route,
    list_routes,
    load_route_table,
    update_route,
)

__all__ = [
    "EDITABLE_FIELDS",
    "RouteSpec",
    "RouteView",
    "create_route",
    "delete_route",
    "get_route",
    "list_routes",
    "load_route_table",
    "parse_upstream",
    "update_route",
    "validate_spec",
]
