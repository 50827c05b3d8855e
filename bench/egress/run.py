"""The egress proxy side by side with nginx as an mTLS egress proxy, and the naive pattern.

Run it with ``.venv/bin/python bench/egress/run.py`` (``make bench`` runs it too); see
``bench/egress/README.md`` for the setup, what each row measures and how to read it.

One partner (its own one-worker nginx, HTTPS on loopback, client certificate required, its CPU
never counted) answers ``200 ok``. In front of it, on plain HTTP, the same number of workers of
``mutls egress`` (route ``bench``, the client certificate from the vault) and of nginx
configured as an mTLS egress proxy (``proxy_pass https://`` with ``proxy_ssl_certificate``, an
upstream keep-alive pool). wrk drives each proxy in turn, swapping who goes first every round;
the table reports medians. The naive pattern (a Python app calling ``requests.get`` with
``cert=`` per request, so a new TLS handshake every time) runs in ``naive.py`` next to this file.

Proxy CPU is read from ``/proc/<pid>/stat`` (utime + stime + cutime + cstime), summed over the
proxy's whole process tree, before and after each measurement (the helpers are
``bench/gateway/run.py``'s).

A measurement, never a test: nothing fails on a number. A run whose answers were not all 200
(wrk's ``Non-2xx`` line, socket errors; for the Python client, any error or a body other than
``ok``) is reported as invalid, never as a figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench/ (for this package, ``egress``) and bench/gateway, whose run.py is module ``run`` both for
# mypy and, with its directory first on the path, for Python (this file runs as ``__main__``, so
# the name is free). It holds the gateway bench's helpers: process groups, free ports, CPU from
# /proc, nginx from a temp dir.
sys.path[:0] = [str(HERE.parent / "gateway"), str(HERE.parent)]

from run import (  # noqa: E402
    Processes,
    load_average,
    raise_nofile,
    terminate_on_signals,
)

from egress.measure import Bench  # noqa: E402
from egress.profiling import profile  # noqa: E402
from egress.report import (  # noqa: E402
    build_rows,
    cores_busy,
    machine_info,
    markdown,
    metrics,
    naive_metrics,
)
from egress.servers import MUTLS  # noqa: E402

# --- main ----------------------------------------------------------------------------------------


def worker_counts(text: str) -> list[int]:
    counts = [int(x) for x in text.split(",") if x.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected worker counts like 1,2; found {text!r}")
    return counts


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument(
        "--workers",
        type=worker_counts,
        default=[1, 2],
        help="worker counts to compare, comma-separated (default 1,2); the first one also gets "
        "the request-log row and the naive comparison",
    )
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument(
        "--wrk-connections", type=int, default=32, help="wrk -c: keep-alive connections (32)"
    )
    parser.add_argument("--threads", type=int, default=4, help="Python client threads (default 4)")
    parser.add_argument(
        "--skip-request-log",
        action="store_true",
        help="no rows with the logs on (mutls request log, nginx access log)",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE, help="where results.{md,json} go (default: here)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    parser.add_argument(
        "--profile",
        type=int,
        metavar="SECONDS",
        help="instead of the comparison: py-spy on the mutls worker (first --workers count, "
        "must be 1; request log off) while wrk runs SECONDS, then perf (if installed) on it and "
        "on nginx; writes profile.txt (raw files stay in the temp dir: --keep)",
    )
    parser.add_argument(
        "--profile-logs",
        action="store_true",
        help="with --profile: mutls with its request log on, nginx with its access log on",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: run `make bench` (it installs BENCH_TOOLS)")
    if not MUTLS.exists():
        raise SystemExit(f"{MUTLS} is missing: run `make install`")
    raise_nofile()
    base = Path(tempfile.mkdtemp(prefix="mutls-egress-bench-"))
    procs = Processes()
    started = time.monotonic()
    load_at_start = load_average()
    try:
        with terminate_on_signals():
            bench = Bench(args=args, base=base, procs=procs)
            bench.setup()
            if args.profile:
                profile(bench, args.profile, args.out)
                return 0
            bench.measure()
            vs_nginx = build_rows(metrics(args), bench.samples)
            vs_naive = build_rows(naive_metrics(args), bench.samples)
            info = machine_info(args, load_at_start)
            info["proxy cores busy under wrk (median)"] = cores_busy(bench.samples)
    except KeyboardInterrupt:
        print("interrupted; stopping every process this run started", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    text = markdown(vs_nginx, vs_naive, info)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    raw = {
        "info": info,
        "rows": {"vs_nginx": vs_nginx, "vs_naive": vs_naive},
        "samples": {
            name: [
                {
                    "value": s.value,
                    "cpu_us": s.cpu_us,
                    "invalid": s.invalid,
                    **{k: v for k, v in s.detail.items() if k != "wrk"},
                }
                for s in lst
            ]
            for name, lst in bench.samples.items()
        },
    }
    (args.out / "results.json").write_text(json.dumps(raw, indent=2, default=str) + "\n")
    print(
        f"wrote {args.out}/results.md, results.json in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
