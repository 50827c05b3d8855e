"""A Python app calling a partner with ``requests``, for ``run.py``; prints one JSON object.

Two ways, both in ``--threads`` threads for ``--duration`` seconds:

- ``--mode naive``: the pattern the egress proxy replaces. Every call is
  ``requests.get(url, cert=(cert, key), verify=ca)``: a new ``Session`` each time, hence a new
  TCP connection and a full mTLS handshake with the partner per request.
- ``--mode session``: the same app through the egress proxy. One ``requests.Session`` per thread
  (keep-alive) sends plain HTTP to the proxy with the ``X-Mutls-Token`` header (taken from the
  ``BENCH_TOKEN`` environment variable, not argv).

Every answer must be a 200 with the body ``ok\\n``; each thread makes one call before the clock
starts (so a broken setup fails before anything is timed), then all start together. Printed:
requests, errors (the first few, by kind), wall seconds and this process's CPU seconds
(``time.process_time``: all threads, user + system) over the timed part.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

import requests

EXPECTED_BODY = "ok\n"


def caller(args: argparse.Namespace) -> Callable[[], requests.Response]:
    """One call in the chosen mode; in ``session`` mode each thread gets its own session."""
    if args.mode == "naive":
        cert, verify = (args.cert, args.key), args.ca

        def naive() -> requests.Response:
            return requests.get(args.url, cert=cert, verify=verify, timeout=10)

        return naive
    local = threading.local()
    headers = {"X-Mutls-Token": os.environ["BENCH_TOKEN"]}

    def through_proxy() -> requests.Response:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        return session.get(args.url, headers=headers, timeout=10)

    return through_proxy


def check(response: requests.Response) -> str | None:
    """None if the answer is the partner's 200 ``ok``, else what was wrong."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]!r}"
    if response.text != EXPECTED_BODY:
        return f"body {response.text[:200]!r}, expected {EXPECTED_BODY!r}"
    return None


class Run:
    """The threads, the counts and the errors of one timed run."""

    def __init__(self, call: Callable[[], requests.Response], threads: int) -> None:
        self.call, self.threads = call, threads
        self.start = threading.Barrier(threads + 1)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.first_errors: list[str] = []
        self.setup_errors: list[str] = []
        self.deadline = float("inf")  # set for real once every thread is at the barrier

    def one(self) -> tuple[str, str] | None:
        """One call: None if it was the partner's 200 ``ok``, else (kind, what was wrong)."""
        try:
            problem = check(self.call())
        except requests.RequestException as exc:
            return type(exc).__name__, f"{type(exc).__name__}: {exc}"
        return None if problem is None else ("bad answer", problem)

    def worker(self) -> None:
        failed = self.one()
        if failed is not None:
            with self.lock:
                self.setup_errors.append(failed[1])
        self.start.wait()
        if failed is not None:
            return
        ok = 0
        while time.monotonic() < self.deadline:
            failed = self.one()
            if failed is None:
                ok += 1
                continue
            with self.lock:
                self.counts[failed[0]] += 1
                if len(self.first_errors) < 5:
                    self.first_errors.append(failed[1])
        with self.lock:
            self.counts["ok"] += ok

    def run(self, duration: float) -> dict[str, object]:
        threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.threads)]
        for thread in threads:
            thread.start()
        while self.start.n_waiting < self.threads:
            time.sleep(0.01)
        cpu0, t0 = time.process_time(), time.monotonic()
        self.deadline = t0 + duration
        self.start.wait()
        for thread in threads:
            thread.join()
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        return {
            "threads": self.threads,
            "requests": self.counts.pop("ok", 0),
            "errors": dict(self.counts),
            "first_errors": self.first_errors,
            "setup_errors": self.setup_errors,
            "wall_s": round(wall, 4),
            "cpu_s": round(cpu, 4),
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=("naive", "session"), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--cert", help="client certificate chain (naive mode)")
    parser.add_argument("--key", help="client private key (naive mode)")
    parser.add_argument("--ca", help="the partner's CA (naive mode)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args(argv)
    result = {"mode": args.mode, **Run(caller(args), args.threads).run(args.duration)}
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
