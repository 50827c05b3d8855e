"""Gateway metrics: plain counters on the hot path, Prometheus text off it.

Each worker process counts into dictionaries (a dict increment is the cheapest thing Python does)
and writes them to ``<run dir>/worker-<pid>.json`` once a second. The supervisor's metrics
listener sums every worker's file into Prometheus metric families when scraped. This keeps
``prometheus_client`` (and its multiprocess mmap files) off the request path.
"""

from __future__ import annotations

import bisect
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
)
from prometheus_client.registry import Collector

from mutls.proxy.latency import LATENCY_BUCKETS, latency_histogram

__all__ = ["GatewayCollector", "WorkerStats"]


class WorkerStats:
    """One worker's counters. Not thread-safe: only the event loop touches it."""

    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        """(route, outcome code, status) -> count; outcome ``ok`` when allowed."""
        self.handshakes = 0
        self.handshake_failures: defaultdict[str, int] = defaultdict(int)
        self.latency: dict[str, list[float]] = {}
        """route -> bucket counts (+Inf last), then sum."""
        self.client_days_left: dict[str, float] = {}
        """account name -> days until the soonest expiry among certificates it presented."""
        self.open_connections = 0
        self.rejected_connections = 0
        self.snapshot_revision = 0
        self.snapshot_reloads = 0

    def observe_upstream(self, route: str, seconds: float) -> None:
        counts = self.latency.get(route)
        if counts is None:
            counts = self.latency[route] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def note_certificate(self, account: str, days_left: float) -> None:
        current = self.client_days_left.get(account)
        if current is None or days_left < current:
            self.client_days_left[account] = days_left

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": [[r, c, s, n] for (r, c, s), n in self.requests.items()],
            "handshakes": self.handshakes,
            "handshake_failures": dict(self.handshake_failures),
            "latency": self.latency,
            "client_days_left": self.client_days_left,
            "open_connections": self.open_connections,
            "rejected_connections": self.rejected_connections,
            "snapshot_revision": self.snapshot_revision,
            "snapshot_reloads": self.snapshot_reloads,
        }

    def dump(self, run_dir: Path) -> None:
        target = run_dir / f"worker-{os.getpid()}.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.to_json()))
        temporary.replace(target)


class GatewayCollector(Collector):
    """Sums the workers' files into metric families at scrape time."""

    def __init__(self, run_dir: Path) -> None:
        self._run_dir = run_dir

    def _workers(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self._run_dir.glob("worker-*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # a worker that just exited, or a file mid-replace
        return out

    def collect(self) -> Iterator[Any]:
        workers = self._workers()
        requests = CounterMetricFamily(
            "mutls_gateway_requests",
            "Requests by route, outcome code and HTTP status",
            labels=["route", "code", "status"],
        )
        totals: defaultdict[tuple[str, str, str], float] = defaultdict(float)
        for worker in workers:
            for route, code, status, count in worker["requests"]:
                totals[(route, code, str(status))] += count
        for labels, value in sorted(totals.items()):
            requests.add_metric(list(labels), value)
        yield requests

        yield CounterMetricFamily(
            "mutls_gateway_handshakes",
            "Completed TLS handshakes",
            value=sum(w["handshakes"] for w in workers),
        )
        failures = CounterMetricFamily(
            "mutls_gateway_handshake_failures",
            "Failed TLS handshakes by reason",
            labels=["reason"],
        )
        reasons: defaultdict[str, float] = defaultdict(float)
        for worker in workers:
            for reason, count in worker["handshake_failures"].items():
                reasons[reason] += count
        for reason, value in sorted(reasons.items()):
            failures.add_metric([reason], value)
        yield failures

        yield latency_histogram(
            "mutls_gateway_upstream_latency_seconds",
            "Time from forwarding a request to the upstream's answer starting",
            workers,
        )

        days = GaugeMetricFamily(
            "mutls_gateway_client_certificate_days_left",
            "Days until the soonest expiry among client certificates an account presented",
            labels=["account"],
        )
        soonest: dict[str, float] = {}
        for worker in workers:
            for account, value in worker["client_days_left"].items():
                soonest[account] = min(value, soonest.get(account, value))
        for account, value in sorted(soonest.items()):
            days.add_metric([account], value)
        yield days

        yield GaugeMetricFamily(
            "mutls_gateway_open_connections",
            "Open client connections over all workers",
            value=sum(w["open_connections"] for w in workers),
        )
        yield CounterMetricFamily(
            "mutls_gateway_rejected_connections",
            "Connections closed at once because a worker was at MUTLS_GATEWAY_MAX_CONNECTIONS",
            value=sum(w["rejected_connections"] for w in workers),
        )
        yield GaugeMetricFamily(
            "mutls_gateway_snapshot_revision",
            "The lowest store revision any worker serves (the audit chain's head)",
            value=min((w["snapshot_revision"] for w in workers), default=0),
        )
        yield GaugeMetricFamily(
            "mutls_gateway_workers", "Gateway worker processes reporting", value=len(workers)
        )
