"""Prometheus metrics of one admin API app, in a registry of its own.

Each app gets its own ``CollectorRegistry`` (never the process-global one), so several apps in one
process (tests, or a future multi-listener node) count separately and never collide on names.
Labels are bounded: the route is the route *template* (``/admin/secrets/{ref}``), or
``unmatched`` for paths no route serves, so a scanner cannot blow up the series count.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from mutls.store.database import Database
from mutls.store.models import Secret

__all__ = ["CONTENT_TYPE", "UNMATCHED_ROUTE", "ApiMetrics", "SecretCountCollector"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED_ROUTE = "unmatched"
SECRET_TYPES = ("certificate", "oauth2", "string")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class SecretCountCollector:
    """``mutls_secrets{secret_type}``: secrets in the vault, counted when scraped.

    One ``GROUP BY`` per scrape; the platform's internal secrets are not counted.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        with self._db.read() as session:
            rows = session.execute(
                select(Secret.secret_type, func.count())
                .where(Secret.internal.is_(False))
                .group_by(Secret.secret_type)
            ).all()
        counts = dict.fromkeys(SECRET_TYPES, 0)
        counts.update({str(kind): int(count) for kind, count in rows})
        family = self._family()
        for kind, count in sorted(counts.items()):
            family.add_metric([kind], count)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "mutls_secrets", "Secrets in the vault, by type.", labels=["secret_type"]
        )


class ApiMetrics:
    """The request counter, the latency histogram and the vault collector of one app."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "mutls_api_requests",
            "Admin API requests, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mutls_api_request_duration_seconds",
            "Admin API request latency, by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(SecretCountCollector(db))

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
