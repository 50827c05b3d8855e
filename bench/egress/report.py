"""The tables: rows per metric with medians, ratios and per-round ranges; results.md text."""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from run import Sample, fmt, machine_basics

from egress.servers import TOKEN_HEADER

# --- report --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Metric:
    label: str
    unit: str
    left: str  # sample name in the left column (mutls)
    right: str  # sample name in the right column (nginx or naive)
    get: Callable[[Sample], float | None]
    higher_is_better: bool
    target: float | None  # on the ratio left / right


def rps(s: Sample) -> float | None:
    return s.value


def cpu_us(s: Sample) -> float | None:
    return s.cpu_us


def detail(key: str) -> Callable[[Sample], float | None]:
    def get(s: Sample) -> float | None:
        value = s.detail.get(key)
        return float(value) if value is not None else None

    return get


def total_cpu_us(s: Sample) -> float | None:
    """Client CPU per request plus (through a proxy) the proxy's: the consumer side's cost."""
    if s.cpu_us is None:
        return None
    return s.cpu_us + float(s.detail.get("proxy_cpu_us") or 0.0)


def metrics(args: argparse.Namespace) -> list[Metric]:
    out = []
    for w in args.workers:
        m, n = f"mutls-{w}", f"nginx-{w}"
        each = f"{w} worker{'s' if w > 1 else ''}"
        out += [
            Metric(
                label=f"requests/s, {each}",
                unit="req/s",
                left=m,
                right=n,
                get=rps,
                higher_is_better=True,
                target=1.0,
            ),
            Metric(
                label=f"proxy CPU per request, {each}",
                unit="µs",
                left=m,
                right=n,
                get=cpu_us,
                higher_is_better=False,
                target=None,
            ),
            Metric(
                label=f"latency p50, {each}",
                unit="ms",
                left=m,
                right=n,
                get=detail("p50_ms"),
                higher_is_better=False,
                target=None,
            ),
            Metric(
                label=f"latency p99, {each}",
                unit="ms",
                left=m,
                right=n,
                get=detail("p99_ms"),
                higher_is_better=False,
                target=None,
            ),
        ]
    w = args.workers[0]
    each = f"{w} worker{'s' if w > 1 else ''}"
    if not args.skip_request_log:
        log = f"mutls-{w}-log"
        out += [
            Metric(
                label=f"requests/s, {each}, logs on (mutls request log, its default; nginx "
                "access log)",
                unit="req/s",
                left=log,
                right=f"nginx-{w}-log",
                get=rps,
                higher_is_better=True,
                target=1.0,
            ),
            Metric(
                label=f"proxy CPU per request, {each}, logs on",
                unit="µs",
                left=log,
                right=f"nginx-{w}-log",
                get=cpu_us,
                higher_is_better=False,
                target=None,
            ),
        ]
    return out


def naive_metrics(args: argparse.Namespace) -> list[Metric]:
    w = args.workers[0]
    t = args.threads
    return [
        Metric(
            label=f"requests/s: wrk through mutls ({w} worker) vs naive ({t} threads)",
            unit="req/s",
            left=f"mutls-{w}",
            right="naive",
            get=rps,
            higher_is_better=True,
            target=20.0,
        ),
        Metric(
            label=f"requests/s: the same Python app ({t} threads), keep-alive Session through "
            "mutls vs naive",
            unit="req/s",
            left="python-via-mutls",
            right="naive",
            get=rps,
            higher_is_better=True,
            target=None,
        ),
        Metric(
            label="consumer-side CPU per request (Python app + mutls vs naive Python app)",
            unit="µs",
            left="python-via-mutls",
            right="naive",
            get=total_cpu_us,
            higher_is_better=False,
            target=None,
        ),
    ]


def summarize(samples: list[Sample], get: Callable[[Sample], float | None]) -> dict[str, Any]:
    bad = [s.invalid for s in samples if s.invalid]
    values = [v for v in (get(s) for s in samples) if v is not None]
    if bad or not values:
        return {"median": None, "invalid": bad[0] if bad else "no samples", "values": values}
    return {"median": statistics.median(values), "invalid": None, "values": values}


def build_rows(metric_list: list[Metric], samples: dict[str, list[Sample]]) -> list[dict[str, Any]]:
    rows = []
    for metric in metric_list:
        left = summarize(samples.get(metric.left, []), metric.get)
        right = summarize(samples.get(metric.right, []), metric.get)
        ratio = None
        if left["median"] is not None and right["median"]:
            ratio = left["median"] / right["median"]
        per_round = [
            round(a / b, 3)
            for a, b in zip(left["values"], right["values"], strict=False)
            if b and not left["invalid"] and not right["invalid"]
        ]
        met = None
        if ratio is not None and metric.target is not None:
            met = ratio >= metric.target if metric.higher_is_better else ratio <= metric.target
        rows.append(
            {
                "label": metric.label,
                "unit": metric.unit,
                "left": metric.left,
                "right": metric.right,
                "left_median": left["median"],
                "right_median": right["median"],
                "left_invalid": left["invalid"],
                "right_invalid": right["invalid"],
                "ratio": ratio,
                "round_ratios": per_round,
                "higher_is_better": metric.higher_is_better,
                "target": metric.target,
                "met": met,
            }
        )
    return rows


def table(rows: list[dict[str, Any]], left: str, right: str) -> list[str]:
    lines = [
        f"| metric | {left} | {right} | ratio {left}/{right} | per round | target | met? |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for row in rows:
        cells = []
        for side in ("left", "right"):
            value = row[f"{side}_median"]
            if row[f"{side}_invalid"]:
                cells.append("invalid")
            else:
                cells.append(f"{fmt(value)} {row['unit']}" if value is not None else "—")
        target = row["target"]
        target_text = (
            ("≥ " if row["higher_is_better"] else "≤ ") + f"{target:.1f}x" if target else "—"
        )
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "—"
        spread = row["round_ratios"]
        per_round = f"{min(spread):.2f} to {max(spread):.2f}x" if len(spread) > 1 else "—"
        met = {True: "yes", False: "**no**", None: "—"}[row["met"]]
        lines.append(
            f"| {row['label']} | {cells[0]} | {cells[1]} | {ratio} | {per_round} | "
            f"{target_text} | {met} |"
        )
    return lines


def markdown(
    vs_nginx: list[dict[str, Any]], vs_naive: list[dict[str, Any]], info: dict[str, Any]
) -> str:
    lines = [
        "# Egress: mutls side by side with nginx as an mTLS egress proxy, and the naive pattern",
        "",
        f"Run {info['date']} on {info['machine']}; `{info['command']}`.",
        "",
        *table(vs_nginx, "mutls", "nginx"),
        "",
        *table(vs_naive, "mutls", "naive"),
    ]
    invalid = [
        f"- {row['label']}, {row[side]}: {row[f'{side}_invalid']}"
        for row in (*vs_nginx, *vs_naive)
        for side in ("left", "right")
        if row[f"{side}_invalid"]
    ]
    if invalid:
        lines += ["", "Invalid measurements (not every answer was a 200 `ok`):", ""]
        lines += sorted(set(invalid))
    lines += ["", "Machine and settings:", ""]
    lines += [f"- {k}: {v}" for k, v in info.items() if k not in {"date", "command", "machine"}]
    return "\n".join(lines) + "\n"


def cores_busy(samples: dict[str, list[Sample]]) -> str:
    parts = []
    for name, lst in samples.items():
        busy = [s.detail["proxy_cores_busy"] for s in lst if "proxy_cores_busy" in s.detail]
        if busy:
            parts.append(f"{name} {statistics.median(busy):.2f}")
    return "; ".join(parts)


def machine_info(args: argparse.Namespace, load_at_start: str) -> dict[str, Any]:
    return {
        **machine_basics(".venv/bin/python bench/egress/run.py", load_at_start),
        "requests (the naive app's HTTP library)": importlib.metadata.version("requests"),
        "duration per measurement": f"{args.duration} s",
        "rounds (median reported)": args.rounds,
        "wrk": f"-t{args.wrk_threads} -c{args.wrk_connections} --latency, "
        f"plain HTTP keep-alive, header {TOKEN_HEADER}",
        "Python client threads (naive, and through mutls)": args.threads,
    }
