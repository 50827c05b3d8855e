"""The measurements (wrk, the Python client) and the run: start, check, warm up, alternate."""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run import (
    Processes,
    Sample,
    cpu_by_process,
    cpu_delta,
    free_port,
    http_get,
    load_average,
    print_progress,
    start_nginx,
    wait_ready,
    wrk_sample,
)

from egress.servers import (
    EXPECTED_BODY,
    MUTLS,
    NGINX_EGRESS_CONF,
    PARTNER_CONF,
    ROUTE,
    TOKEN_HEADER,
    Pki,
    Proxy,
    get_through,
    make_pki,
    make_platform,
)

HERE = Path(__file__).resolve().parent
WARMUP_SECONDS = 2


# --- measurements --------------------------------------------------------------------------------


def run_wrk(proxy: Proxy, token: str, *, duration: int, threads: int, connections: int) -> Sample:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-H",
        f"{TOKEN_HEADER}: {token}",
        proxy.url,
    ]
    return wrk_sample(argv, proxy.pid, who="proxy", require_latency=True)


def run_python_client(
    argv: list[str], *, env: dict[str, str] | None, duration: int, proxy: Proxy | None
) -> Sample:
    """``naive.py`` as its own process; requests/s, its CPU per request (``cpu_us``) and, when
    it goes through a proxy, the proxy's CPU per request (``detail['proxy_cpu_us']``)."""
    cpu0 = cpu_by_process(proxy.pid) if proxy is not None else {}
    out = subprocess.run(
        [sys.executable, str(HERE / "naive.py"), *argv, "--duration", str(duration)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=duration + 120,
    )
    cpu, per_process = cpu_delta(cpu0, cpu_by_process(proxy.pid)) if proxy else (0.0, [])
    try:
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Sample(
            value=0.0,
            invalid=f"naive.py exited {out.returncode}: {(out.stdout + out.stderr)[-500:]!r}",
        )
    requests = int(result["requests"])
    problems = []
    if result["setup_errors"]:
        problems.append(f"first calls failed: {result['setup_errors'][:2]}")
    if result["errors"]:
        problems.append(f"errors {result['errors']}, first {result['first_errors'][:2]}")
    if not requests:
        problems.append("no requests")
    detail: dict[str, Any] = {**result, "client_cpu_s": result["cpu_s"]}
    if proxy is not None:
        detail.update(
            proxy_cpu_s=round(cpu, 3),
            proxy_cpu_us=cpu / requests * 1e6 if requests else None,
            cpu_s_per_process=per_process,
        )
    return Sample(
        value=requests / result["wall_s"] if result["wall_s"] else 0.0,
        cpu_us=result["cpu_s"] / requests * 1e6 if requests else None,
        invalid="; ".join(problems) or None,
        detail=detail,
    )


# --- the run -------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Bench:
    args: argparse.Namespace
    base: Path
    procs: Processes
    pki: Pki | None = None
    token: str = ""
    partner_port: int = 0
    data_dir: Path = Path()
    proxies: dict[str, Proxy] = field(default_factory=dict)
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def setup(self) -> None:
        self.partner_port = free_port()
        print_progress(f"temp dir {self.base}; certificates, platform data, partner")
        self.pki, vault_fields = make_pki(self.base)
        self.data_dir = self.base / "data"
        self.token = make_platform(self.data_dir, vault_fields, self.partner_port)
        workdir = self.base / "partner"
        partner = start_nginx(
            self.procs,
            PARTNER_CONF.format(dir=workdir, port=self.partner_port, pki=self.pki),
            workdir,
        )
        ctx = ssl.create_default_context(cafile=str(self.pki.partner_ca))
        ctx.load_cert_chain(str(self.pki.client_chain), str(self.pki.client_key))
        wait_ready(
            partner,
            lambda: http_get(self.partner_port, "/", ctx=ctx)[0],
            "partner nginx",
            workdir / "error.log",
        )
        for workers in self.args.workers:
            self._add(Proxy(name=f"nginx-{workers}", kind="nginx", workers=workers))
            self._add(Proxy(name=f"mutls-{workers}", kind="mutls", workers=workers))
        if not self.args.skip_request_log:
            workers = self.args.workers[0]
            for kind in ("nginx", "mutls"):
                self._add(
                    Proxy(
                        name=f"{kind}-{workers}-log", kind=kind, workers=workers, request_log=True
                    )
                )

    def _add(self, proxy: Proxy) -> None:
        proxy.port = free_port()
        proxy.log = (
            self.base / proxy.name / ("error.log" if proxy.kind == "nginx" else "egress.log")
        )
        self.proxies[proxy.name] = proxy
        self.samples[proxy.name] = []

    def start(self, proxy: Proxy) -> None:
        assert self.pki is not None
        if proxy.kind == "nginx":
            workdir = self.base / proxy.name
            conf = NGINX_EGRESS_CONF.format(
                dir=workdir,
                workers=proxy.workers,
                partner_port=self.partner_port,
                port=proxy.port,
                route=ROUTE,
                pki=self.pki,
                access_log=f"access_log {workdir / 'access.log'}"
                if proxy.request_log
                else "access_log off",
            )
            proxy.proc = start_nginx(self.procs, conf, workdir)
        else:
            env = {k: v for k, v in os.environ.items() if not k.startswith("MUTLS_")}
            env.update(
                MUTLS_DATA_DIR=str(self.data_dir),
                MUTLS_EGRESS_LISTEN=f"127.0.0.1:{proxy.port}",
                MUTLS_EGRESS_WORKERS=str(proxy.workers),
                MUTLS_EGRESS_METRICS_LISTEN="off",
                MUTLS_EGRESS_ACCESS_LOG="off",
                MUTLS_EGRESS_REQUEST_LOG="on" if proxy.request_log else "off",
                MUTLS_LOG_LEVEL="info",  # lifecycle lines only: the access log is off
            )
            proxy.log.parent.mkdir(parents=True, exist_ok=True)
            proxy.proc = self.procs.start(
                [str(MUTLS), "egress"], log=proxy.log, env=env, cwd=self.base
            )
        wait_ready(proxy.proc, lambda: get_through(proxy, self.token)[0], proxy.name, proxy.log)
        # The answer must be the partner's, then fill the partner pool and warm caches.
        for _ in range(20):
            status, body = get_through(proxy, self.token)
            if status != 200 or body != EXPECTED_BODY:
                raise SystemExit(
                    f"{proxy.name}: GET /{ROUTE}/ answered {status} {body[:300]!r}, "
                    f"expected 200 {EXPECTED_BODY!r}; see {proxy.log}"
                )

    def wrk(self, proxy: Proxy, duration: int) -> Sample:
        return run_wrk(
            proxy,
            self.token,
            duration=duration,
            threads=self.args.wrk_threads,
            connections=self.args.wrk_connections,
        )

    def timed_wrk(self, proxy: Proxy) -> Sample:
        return self.wrk(proxy, self.args.duration)

    def naive(self) -> Sample:
        assert self.pki is not None
        return run_python_client(
            [
                "--mode",
                "naive",
                "--url",
                f"https://localhost:{self.partner_port}/",
                "--cert",
                str(self.pki.client_chain),
                "--key",
                str(self.pki.client_key),
                "--ca",
                str(self.pki.partner_ca),
                "--threads",
                str(self.args.threads),
            ],
            env=None,
            duration=self.args.duration,
            proxy=None,
        )

    def session(self, proxy: Proxy) -> Sample:
        return run_python_client(
            ["--mode", "session", "--url", proxy.url, "--threads", str(self.args.threads)],
            env={**os.environ, "BENCH_TOKEN": self.token},
            duration=self.args.duration,
            proxy=proxy,
        )

    def add(self, name: str, sample: Sample) -> None:
        self.samples.setdefault(name, []).append(sample)
        d = sample.detail
        parts = [f"{sample.value:9.1f} req/s"]
        if sample.cpu_us is not None:
            who = "client" if name.startswith(("naive", "python")) else "proxy"
            parts.append(f"{who} CPU {sample.cpu_us:.1f} µs/req")
        if "p50_ms" in d:
            parts.append(f"p50 {d['p50_ms']:.2f} ms, p99 {d['p99_ms']:.2f} ms")
        if "proxy_cpu_us" in d and d["proxy_cpu_us"] is not None:
            parts.append(f"proxy CPU {d['proxy_cpu_us']:.1f} µs/req")
        if "proxy_cores_busy" in d:
            parts.append(f"proxy busy {d['proxy_cores_busy']} cores {d['cpu_s_per_process']}")
        bad = f"  INVALID: {sample.invalid}" if sample.invalid else ""
        print_progress(f"  {name:16} {', '.join(parts)}{bad}")

    def guarded(self, proxy: Proxy, measure: Callable[[Proxy], Sample]) -> Sample:
        """One measurement; a proxy that died is reported (and restarted), not fatal."""
        note = None
        if proxy.proc is None or proxy.proc.poll() is not None:
            if proxy.proc is not None:
                note = f"{proxy.name} had exited with {proxy.proc.returncode}; restarted"
                print_progress(f"{note} (log: {proxy.log})")
                self.procs.stop(proxy.proc)
            try:
                self.start(proxy)
            except SystemExit as exc:
                return Sample(value=0.0, invalid=f"proxy did not start: {exc}")
        sample = measure(proxy)
        if note:
            sample.detail["note"] = note
        if proxy.proc is None or proxy.proc.poll() is not None:
            code = proxy.proc.returncode if proxy.proc is not None else None
            sample.invalid = "; ".join(
                x for x in (sample.invalid, f"proxy exited ({code}) during the run") if x
            )
        return sample

    def measure(self) -> None:
        args = self.args
        for proxy in self.proxies.values():
            self.start(proxy)
        print_progress(f"every proxy answers 200 {EXPECTED_BODY!r}; warm-up: {WARMUP_SECONDS} s")
        for proxy in self.proxies.values():
            warm = self.wrk(proxy, WARMUP_SECONDS)
            if warm.invalid:
                raise SystemExit(f"{proxy.name}: warm-up run invalid: {warm.invalid}")
        first = f"mutls-{args.workers[0]}"
        for r in range(args.rounds):
            print_progress(f"round {r + 1}/{args.rounds} (load average {load_average()})")
            for workers in args.workers:
                group = [p for p in self.proxies.values() if p.workers == workers]
                shift = r % len(group)
                for proxy in group[shift:] + group[:shift]:  # who goes first rotates
                    self.add(proxy.name, self.guarded(proxy, self.timed_wrk))
            python_runs: list[tuple[str, Callable[[], Sample]]] = [
                ("naive", self.naive),
                (
                    "python-via-mutls",
                    lambda: self.guarded(self.proxies[first], self.session),
                ),
            ]
            if r % 2:
                python_runs.reverse()
            for name, run in python_runs:
                self.add(name, run())
        for proxy in self.proxies.values():
            for line in log_problems(proxy.log):
                print_progress(f"  {proxy.name} log: {line}")
            if proxy.proc is not None:
                self.procs.stop(proxy.proc)
                proxy.proc = None


def log_problems(path: Path, lines: int = 10) -> list[str]:
    """The first error-looking lines of a proxy's log (nginx alerts, Python tracebacks)."""
    pattern = re.compile(r"\[(alert|crit|emerg|error)\]|ERROR|CRITICAL|Traceback|Error:")
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if pattern.search(line)][:lines]
