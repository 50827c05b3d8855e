"""Operations: liveness with a database check, and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from mutls import __version__
from mutls.accounts.principal import Principal
from mutls.accounts.roles import Permission
from mutls.api.auth import platform_of, requires
from mutls.api.errors import documented
from mutls.api.metrics import CONTENT_TYPE, ApiMetrics
from mutls.api.schemas import Health

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses=documented(503))
def healthz(request: Request) -> Health:
    """Liveness and readiness: 200 when the database answers, 503 with the error otherwise.

    No token needed, so load balancers and `mutls up` can poll it.
    """
    platform_of(request).db.ping()
    return Health(status="ok", version=__version__, database="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}},
        **documented(401, 403, 503),
    },
)
def metrics(
    request: Request, principal: Annotated[Principal, requires(Permission.METRICS_READ)]
) -> Response:
    """Prometheus text format: request counts and latency by route, secrets by type."""
    registry = request.app.state.metrics
    if not isinstance(registry, ApiMetrics):  # pragma: no cover - create_app always sets it
        raise TypeError("the app was not built by mutls.api.app.create_app")
    return Response(registry.render(), media_type=CONTENT_TYPE)
