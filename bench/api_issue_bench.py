"""Certificate issuance through the admin HTTP API, side by side with the same server's floor.

Run it with ``.venv/bin/python bench/api_issue_bench.py`` (``make bench`` runs it too).

It starts the real platform as an operator would (``mutls up`` in a temporary data directory, the
admin API on a free loopback port, the first admin token from ``<data dir>/admin-token``), makes
mTLS-enabled accounts through the API (``POST /admin/accounts``, ``PUT .../mtls``), and then, in
alternating rounds with the same client and the same concurrency:

- **issue**: ``POST /admin/accounts/{id}/certificates`` with a pre-made EC P-256 CSR, five per
  account (the default quota), answered 201 with the certificate, chain and root;
- **baseline**: ``GET /healthz`` on the same server, which also runs in the threadpool and makes
  one database round trip: the framework's floor (HTTP parsing, routing, a worker thread, JSON).

The client is one process: ``httpx.AsyncClient`` with a keep-alive pool of ``--concurrency``
connections and as many requests in flight. It shares this machine's cores with the server, so
both figures include the client's cost; the ratio is what the issuance adds to the floor.
Requests/s are medians over ``--rounds``. A measurement, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.keys import generate_key

PER_ACCOUNT = 5  # the default live-certificate quota
MUTLS = Path(sys.executable).with_name("mutls")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(base: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], str, str]:
    """``mutls up`` on a free port; its process, base URL and first admin token."""
    data_dir, port = base / "data", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTLS_")}
    env.update(
        MUTLS_DATA_DIR=str(data_dir),
        MUTLS_API_LISTEN=f"127.0.0.1:{port}",
        MUTLS_RENEW_LISTEN="off",
        MUTLS_LOG_LEVEL="warning",
    )
    if database_url:
        env["MUTLS_DATABASE_URL"] = database_url
    url = f"http://127.0.0.1:{port}"
    with (base / "mutls-up.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(MUTLS), "up"], cwd=base, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"mutls up exited with {proc.returncode}; see {base}/mutls-up.log")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("mutls up did not answer /healthz within 60 s")
        time.sleep(0.2)
    return proc, url, (data_dir / "admin-token").read_text().strip()


async def run_round(
    client: httpx.AsyncClient, make: Callable[[int], Awaitable[None]], total: int, concurrency: int
) -> float:
    """Requests per second for ``total`` requests with ``concurrency`` in flight."""
    counter = iter(range(total))

    async def lane() -> None:
        for i in counter:
            await make(i)

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return total / (time.perf_counter() - start)


async def bench(url: str, token: str, args: argparse.Namespace) -> tuple[float, float]:
    spec = SubjectSpec(common_name="client.bench.example", country="CA", organization="Bench")
    csrs = [
        build_csr(generate_key(), spec, [x509.DNSName("client.bench.example")])
        .public_bytes(serialization.Encoding.PEM)
        .decode()
        for _ in range(50)
    ]
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=60
    ) as client:
        per_round = args.requests
        accounts_needed = (per_round * args.rounds + PER_ACCOUNT) // PER_ACCOUNT + 1
        names = [f"bench-{i}" for i in range(accounts_needed)]

        async def make_account(i: int) -> None:
            (await client.post("/admin/accounts", json={"name": names[i]})).raise_for_status()
            answer = await client.put(f"/admin/accounts/{names[i]}/mtls", json={"enabled": True})
            answer.raise_for_status()

        await run_round(client, make_account, len(names), args.concurrency)
        slots = iter([n for n in names for _ in range(PER_ACCOUNT)])

        async def issue(i: int) -> None:
            answer = await client.post(
                f"/admin/accounts/{next(slots)}/certificates", json={"csr_pem": csrs[i % len(csrs)]}
            )
            if answer.status_code != 201:
                raise SystemExit(f"issue answered {answer.status_code}: {answer.text[:300]}")

        async def health(_: int) -> None:
            answer = await client.get("/healthz")
            if answer.status_code != 200:
                raise SystemExit(f"/healthz answered {answer.status_code}")

        for _ in range(PER_ACCOUNT):  # warm up: connections, the issuer's key, statements
            await issue(0)
        await run_round(client, health, 50, args.concurrency)
        ours: list[float] = []
        floor: list[float] = []
        for r in range(args.rounds):
            pair = [(ours, issue), (floor, health)]
            for sink, make in pair if r % 2 == 0 else reversed(pair):
                sink.append(await run_round(client, make, per_round, args.concurrency))
        return statistics.median(ours), statistics.median(floor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=500, help="requests per round and side")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument(
        "--database-url", default=None, help="MUTLS_DATABASE_URL (default: SQLite in the data dir)"
    )
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs; client: httpx.AsyncClient, "
        f"{args.concurrency} in flight; {args.rounds} rounds of {args.requests} requests"
    )
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, token = start_server(Path(tmp), args.database_url)
        try:
            ours, floor = asyncio.run(bench(url, token, args))
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{'operation':<40} {'req/s':>8}")
    print(f"{f'POST .../certificates (issue, {backend})':<40} {ours:>8.0f}")
    print(f"{'GET /healthz (floor)':<40} {floor:>8.0f}")
    print(f"issue / floor: {ours / floor:.2f} of the floor's rate")


if __name__ == "__main__":
    main()
