"""Prometheus metrics of one admin API app, in a registry of its own.

Each app gets its own ``CollectorRegistry`` (never the process-global one), so several apps in one
process (tests, or a future multi-listener node) count separately and never collide on names.
Labels are bounded: the route is the route *template* (``/admin/secrets/{ref}``), or
``unmatched`` for paths no route serves, so a scanner cannot blow up the series count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

from mutls.accounts.principal import Principal
from mutls.expiry.inventory import expiry_inventory
from mutls.expiry.levels import ExpiryLevel
from mutls.store.database import Database
from mutls.store.models import Secret

__all__ = [
    "CONTENT_TYPE",
    "UNMATCHED_ROUTE",
    "ApiMetrics",
    "ExpiryCollector",
    "SecretCountCollector",
]

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


class ExpiryCollector:
    """The expiry inventory as gauges, computed when scraped (issue 7 item 4).

    ``mutls_certificate_expiry_timestamp_seconds`` and ``mutls_certificate_days_remaining`` per
    item, labelled ``kind, name, environment, account`` (empty for none), and
    ``mutls_certificates_by_expiry_status{status}``. Labels stay bounded: names come from the
    store (CAs, secrets, live issued certificates, observed certificates), never from requests.
    Two items with the same labels (a certificate and its overlapping replacement under one
    subject) show as one series, the one that expires first.
    """

    _LABELS = ("kind", "name", "environment", "account")

    def __init__(
        self, db: Database, clock: Callable[[], datetime], gateway_cert_file: Path | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self._gateway_cert_file = gateway_cert_file

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        inventory = expiry_inventory(
            self._db,
            Principal.system("system:metrics"),
            now=self._clock(),
            gateway_cert_file=self._gateway_cert_file,
        )
        timestamps, days, statuses = self._families()
        counts = dict.fromkeys((level.value for level in ExpiryLevel), 0)
        seen: set[tuple[str, ...]] = set()
        for item in inventory.items:  # soonest first, so the first of equal labels wins
            counts[item.status.value] += 1
            labels = (item.kind.value, item.name, item.environment or "", item.account or "")
            if labels in seen:
                continue
            seen.add(labels)
            timestamps.add_metric(list(labels), item.not_after.timestamp())
            days.add_metric(list(labels), item.days_remaining)
        for status, count in counts.items():
            statuses.add_metric([status], count)
        return [timestamps, days, statuses]

    @classmethod
    def _families(cls) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "mutls_certificate_expiry_timestamp_seconds",
                "When each certificate in the expiry inventory expires (Unix time).",
                labels=list(cls._LABELS),
            ),
            GaugeMetricFamily(
                "mutls_certificate_days_remaining",
                "Whole days until each certificate in the expiry inventory expires.",
                labels=list(cls._LABELS),
            ),
            GaugeMetricFamily(
                "mutls_certificates_by_expiry_status",
                "Certificates in the expiry inventory, by status.",
                labels=["status"],
            ),
        )


class ApiMetrics:
    """The request counter, the latency histogram, the vault collector and (given a clock) the
    expiry collector of one app."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] | None = None,
        gateway_cert_file: Path | None = None,
    ) -> None:
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
        if clock is not None:
            self.registry.register(ExpiryCollector(db, clock, gateway_cert_file))

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
