"""Latency histograms for the data planes: bucket bounds, and the sum of the workers' counts.

Workers count into plain lists (``bisect`` on :data:`LATENCY_BUCKETS`); the supervisor's metrics
listener turns the sum into one Prometheus histogram family at scrape time.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import HistogramMetricFamily

__all__ = ["LATENCY_BUCKETS", "latency_histogram"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def latency_histogram(
    name: str, documentation: str, workers: list[dict[str, Any]]
) -> HistogramMetricFamily:
    """The workers' per-route latency bucket counts (``observe`` below), summed."""
    family = HistogramMetricFamily(name, documentation, labels=["route"])
    merged: dict[str, list[float]] = {}
    for worker in workers:
        for route, counts in worker["latency"].items():
            into = merged.setdefault(route, [0.0] * len(counts))
            for i, value in enumerate(counts):
                into[i] += value
    for route, counts in sorted(merged.items()):
        cumulative, buckets = 0.0, []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts[:-1], strict=True):
            cumulative += count
            buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
        family.add_metric([route], buckets, sum_value=counts[-1])
    return family
