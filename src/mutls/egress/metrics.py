"""Egress proxy metrics: dict counters on the hot path, Prometheus text off it.

As in the gateway (``gateway/metrics.py``): each worker counts into dictionaries and writes them
to ``<run dir>/egress-<pid>.json`` once a second; the supervisor's metrics listener sums the
workers' files when scraped.
"""

from __future__ import annotations

import bisect
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mutls.proxy.latency import LATENCY_BUCKETS, latency_histogram

__all__ = ["EgressCollector", "EgressStats"]


class EgressStats:
    """One worker's counters. Only the event loop touches it."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, str, int], int] = defaultdict(int)
        """(route, environment, code, status) -> count; code ``ok`` for the partner's answers."""
        self.latency: dict[str, list[float]] = {}
        self.tokens: defaultdict[str, int] = defaultdict(int)
        """``hit``/``miss`` -> count of OAuth2 token lookups."""
        self.retries = 0
        self.connections_opened = 0
        self.connections_retired = 0
        self.idle_connections = 0
        self.open_connections = 0
        self.rejected_connections = 0
        self.certificate_days_left: dict[str, float] = {}
        """"secret/environment" -> days until the certificate it presents expires."""
        self.snapshot_revision = 0
        self.snapshot_reloads = 0
        self.request_log_pending = 0
        """Request-log rows waiting for the next write (they pile up while the store is away)."""
        self.request_log_dropped = 0
        """Rows lost: past ``MAX_PENDING`` while the store was away, or refused by it."""

    def observe(self, route: str, seconds: float) -> None:
        counts = self.latency.get(route)
        if counts is None:
            counts = self.latency[route] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": [[r, e, c, s, n] for (r, e, c, s), n in self.requests.items()],
            "latency": self.latency,
            "tokens": dict(self.tokens),
            "retries": self.retries,
            "connections_opened": self.connections_opened,
            "connections_retired": self.connections_retired,
            "idle_connections": self.idle_connections,
            "open_connections": self.open_connections,
            "rejected_connections": self.rejected_connections,
            "certificate_days_left": self.certificate_days_left,
            "snapshot_revision": self.snapshot_revision,
            "snapshot_reloads": self.snapshot_reloads,
            "request_log_pending": self.request_log_pending,
            "request_log_dropped": self.request_log_dropped,
        }

    def dump(self, run_dir: Path) -> None:
        target = run_dir / f"egress-{os.getpid()}.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.to_json()))
        temporary.replace(target)


def _sum(workers: list[dict[str, Any]], key: str) -> float:
    return float(sum(w.get(key, 0) for w in workers))


class EgressCollector(Collector):
    """Sums the egress workers' files into metric families at scrape time."""

    def __init__(self, run_dir: Path) -> None:
        self._run_dir = run_dir

    def _workers(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self._run_dir.glob("egress-*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def collect(self) -> Iterator[Any]:
        workers = self._workers()
        requests = CounterMetricFamily(
            "mutls_egress_requests",
            "Requests by route, environment, outcome code and HTTP status",
            labels=["route", "environment", "code", "status"],
        )
        totals: defaultdict[tuple[str, str, str, str], float] = defaultdict(float)
        for worker in workers:
            for route, env, code, status, count in worker["requests"]:
                totals[(route, env, code, str(status))] += count
        for labels, value in sorted(totals.items()):
            requests.add_metric(list(labels), value)
        yield requests

        yield latency_histogram(
            "mutls_egress_partner_latency_seconds",
            "Time from sending a request to the partner until its answer starts",
            workers,
        )

        tokens = CounterMetricFamily(
            "mutls_egress_oauth2_tokens", "OAuth2 token lookups by cache result", labels=["result"]
        )
        for result in ("hit", "miss"):
            tokens.add_metric([result], sum(w["tokens"].get(result, 0) for w in workers))
        yield tokens

        days = GaugeMetricFamily(
            "mutls_egress_client_certificate_days_left",
            "Days until the client certificate a secret presents (per environment) expires",
            labels=["secret", "environment"],
        )
        soonest: dict[str, float] = {}
        for worker in workers:
            for key, value in worker["certificate_days_left"].items():
                soonest[key] = min(value, soonest.get(key, value))
        for key, value in sorted(soonest.items()):
            secret, _, environment = key.partition("/")
            days.add_metric([secret, environment], value)
        yield days

        for name, key, doc, kind in (
            ("retries", "retries", "Requests sent again once (stale pooled connection, 401)", 0),
            ("partner_connections_opened", "connections_opened", "TLS connections opened", 0),
            (
                "partner_connections_retired",
                "connections_retired",
                "Pooled connections closed because their certificate was rotated",
                0,
            ),
            ("partner_connections_idle", "idle_connections", "Idle pooled connections", 1),
            ("open_connections", "open_connections", "Open connections from apps", 1),
            (
                "rejected_connections",
                "rejected_connections",
                "App connections closed at once at MUTLS_EGRESS_MAX_CONNECTIONS",
                0,
            ),
            (
                "request_log_pending",
                "request_log_pending",
                "Request-log rows waiting to be written",
                1,
            ),
            (
                "request_log_dropped",
                "request_log_dropped",
                "Request-log rows lost (the store away too long, or a row it refused)",
                0,
            ),
        ):
            family = CounterMetricFamily if kind == 0 else GaugeMetricFamily
            yield family(f"mutls_egress_{name}", doc, value=_sum(workers, key))
        yield GaugeMetricFamily(
            "mutls_egress_snapshot_revision",
            "The lowest store revision any egress worker serves",
            value=min((w["snapshot_revision"] for w in workers), default=0),
        )
        yield GaugeMetricFamily(
            "mutls_egress_workers", "Egress worker processes reporting", value=len(workers)
        )
