"""The mTLS gateway side by side with nginx on this machine, in one run.

Run it with ``.venv/bin/python bench/gateway/run.py`` (``make bench`` runs it too); see
``bench/gateway/README.md`` for what each row measures and how to read it.

Both servers get the same server certificate and key, trust the same CA chain for client
certificates (verification required), proxy to the same plain-HTTP upstream (its own one-worker
nginx, so its CPU is not counted) over a keep-alive pool, and run the same number of workers. The
client certificate, the server certificate and the CA are made with mutls's own services in a
throwaway data directory. For each measurement the two servers alternate, swapping who goes first
every round, and the table reports medians.

Server CPU is read from ``/proc/<pid>/stat`` (utime + stime + cutime + cstime) summed over the
server's whole process tree (nginx: master and workers; mutls: the gateway and its children),
before and after each measurement. Memory is the summed ``Pss`` from ``/proc/<pid>/smaps_rollup``
of the same tree (``VmRSS`` is recorded too), before and after 1,000 idle connections are opened
on a freshly started server.

A measurement, never a test: nothing fails on a number. A row whose responses were not all 200
(wrk's ``Non-2xx`` line, socket errors, or ``s_time`` reading fewer bytes than the responses it
should have received) is reported as invalid, never as a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from mutls.accounts.mtls import update_mtls_settings
from mutls.accounts.principal import Principal
from mutls.accounts.roles import Role
from mutls.accounts.service import create_account
from mutls.ca.issuance import issue_certificate
from mutls.ca.issuer import IssuerCache
from mutls.ca.server_identity import issue_server_identity
from mutls.config import Settings
from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.export import private_key_pem
from mutls.pki.keys import generate_key
from mutls.runtime.bootstrap import bootstrap

HERE = Path(__file__).resolve().parent
MUTLS = Path(sys.executable).with_name("mutls")
CLK_TCK = os.sysconf("SC_CLK_TCK")
IDLE_CONNECTIONS = 1000
WRK_CONNECTIONS = 50
SERVERS = ("nginx", "mutls")
# s_time sends "GET <-www value> HTTP/1.0\r\n\r\n". Real clients send a Host header (and the
# gateway forwards an HTTP/1.0 request without one as HTTP/1.1 without Host, which the upstream
# answers 400), so the value carries one, to both servers alike:
# GET / HTTP/1.0 | Host: 127.0.0.1 | X-Bench: s_time HTTP/1.0 | (blank line).
S_TIME_PATH = "/ HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Bench: s_time"
S_TIME_REQUEST = f"GET {S_TIME_PATH} HTTP/1.0\r\n\r\n".encode()


# --- processes --------------------------------------------------------------------------------


class Processes:
    """Every process this run starts, each in its own process group, stopped on any exit."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: Sequence[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], *, timeout: float = 10) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Workers left behind by a master that died first are in the same group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def cpu_by_process(root: int) -> dict[int, float]:
    """utime + stime (+ those of reaped children) of each process in the tree under ``root``,
    in seconds."""
    out = {}
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[pid] = sum(int(f) for f in fields[11:15]) / CLK_TCK  # utime stime cutime cstime
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> tuple[float, list[float]]:
    """Total CPU seconds between two readings, and each live process's share, largest first.

    The total is the difference of the sums: a process that ended in between has its CPU in its
    parent's cutime/cstime once reaped, so nothing is lost or counted twice."""
    per = sorted((after[pid] - before.get(pid, 0.0) for pid in after), reverse=True)
    return sum(after.values()) - sum(before.values()), [round(x, 2) for x in per]


def memory_kib(root: int) -> dict[str, int]:
    """Summed Pss (smaps_rollup) and VmRSS (status) of the tree under ``root``, in KiB."""
    pss = rss = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
    return {"pss": pss, "rss": rss}


# --- PKI and platform data ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Pki:
    data_dir: Path
    ca_chain: Path  # issuing CA + root: what both servers trust for client certificates
    server_chain: Path  # server leaf + issuing CA
    server_key: Path
    client_chain: Path  # client leaf + issuing CA
    client_leaf: Path
    client_key: Path
    route: str  # what happened to the gateway route


def make_pki(base: Path, upstream_url: str) -> Pki:
    """A platform data dir, an mTLS account with an EC P-256 client certificate, a server
    certificate for localhost/127.0.0.1, and (when the routes service exists) a route."""
    platform_, _ = bootstrap(Settings(data_dir=base / "data"))
    try:
        now = platform_.clock()
        admin = Principal(actor="bench:gateway", role=Role.ADMIN)
        account = create_account(
            platform_.db, admin, name="bench-gateway", display_name="gateway bench", now=now
        )
        update_mtls_settings(platform_.db, admin, account.id, now=now, enabled=True)
        issuer = IssuerCache(platform_.db, platform_.keys, platform_.settings.ca_dir).platform(
            now=now
        )
        client_key = generate_key()
        csr = build_csr(
            client_key, SubjectSpec(common_name="client.bench.example", organization="Bench")
        )
        issued = issue_certificate(
            platform_.db,
            issuer,
            admin,
            account.id,
            csr.public_bytes(serialization.Encoding.PEM),
            now=now,
        )
        server = issue_server_identity(issuer, ["localhost", "127.0.0.1"], now=now)
        assert server.key is not None
        intermediates = issuer.chain_pem(include_root=False)
        pem = serialization.Encoding.PEM
        pki = Pki(
            data_dir=base / "data",
            ca_chain=base / "ca-chain.pem",
            server_chain=base / "server-chain.pem",
            server_key=base / "server-key.pem",
            client_chain=base / "client-chain.pem",
            client_leaf=base / "client.pem",
            client_key=base / "client-key.pem",
            route=create_bench_route(platform_.db, admin, now, upstream_url),
        )
        pki.ca_chain.write_text(issuer.chain_pem(include_root=True))
        pki.server_chain.write_bytes(b"".join(c.public_bytes(pem) for c in server.chain))
        pki.server_key.write_bytes(private_key_pem(server.key, None))
        pki.client_leaf.write_text(issued.certificate_pem)
        pki.client_chain.write_text(issued.certificate_pem + intermediates)
        pki.client_key.write_bytes(private_key_pem(client_key, None))
        for path in (pki.server_key, pki.client_key):
            path.chmod(0o600)
        return pki
    finally:
        platform_.close()


def create_bench_route(db: Any, principal: Principal, now: datetime, upstream_url: str) -> str:
    """The gateway route ``/`` to the upstream, through the routes service if it exists yet."""
    try:
        from mutls.routing import service as routing  # noqa: PLC0415 - written concurrently
    except ImportError as exc:
        return f"not created: mutls.routing.service is not importable ({exc})"
    create_route: Callable[..., Any] = routing.create_route
    create_route(
        db,
        principal,
        now=now,
        name="bench",
        upstream_url=upstream_url,
        path_prefix="/",
        mtls="required",
        authorization="none",
        description="bench/gateway/run.py",
    )
    return f"bench: / -> {upstream_url}"


# --- servers --------------------------------------------------------------------------------

NGINX_COMMON = """\
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
"""

NGINX_TEMP_PATHS = """\
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
"""

UPSTREAM_CONF = (
    NGINX_COMMON
    + """\
worker_processes 1;
events {{ worker_connections 4096; }}
http {{
"""
    + NGINX_TEMP_PATHS
    + """\
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    server {{
        listen 127.0.0.1:{port} reuseport;
        default_type text/plain;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
)

PROXY_CONF = (
    NGINX_COMMON
    + """\
worker_processes {workers};
events {{ worker_connections 8192; }}
http {{
"""
    + NGINX_TEMP_PATHS
    + """\
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;  # nginx default; mutls: MUTLS_GATEWAY_IDLE_TIMEOUT=75
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki.server_chain};
        ssl_certificate_key {pki.server_key};
        ssl_client_certificate {pki.ca_chain};
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
)


def start_nginx(procs: Processes, conf_text: str, workdir: Path) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(conf_text)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    test = subprocess.run(
        [nginx, "-t", "-q", "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    if test.returncode != 0:
        raise SystemExit(f"nginx -t failed for {conf}:\n{test.stderr}")
    return procs.start(
        [nginx, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)],
        log=workdir / "stderr.log",
    )


def client_context(pki: Pki, *, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_chain))
    ctx.load_cert_chain(str(pki.client_chain), str(pki.client_key))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def http_get(
    port: int, path: str, *, ctx: ssl.SSLContext | None, request: bytes | None = None
) -> tuple[int, bytes]:
    """One request on a new connection; the status and the whole raw response."""
    raw = request or (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        stream: socket.socket = (
            ctx.wrap_socket(sock, server_hostname="127.0.0.1") if ctx is not None else sock
        )
        stream.sendall(raw)
        chunks = []
        while True:
            try:
                chunk = stream.recv(65536)
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    response = b"".join(chunks)
    match = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    return (int(match.group(1)) if match else 0), response


def wait_ready(
    proc: subprocess.Popen[bytes],
    check: Callable[[], int],
    what: str,
    log: Path,
    timeout: float = 60,
) -> None:
    """Wait until ``check`` (one request) answers 200."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}; see {log}")
        try:
            status = check()
        except (OSError, ssl.SSLError) as exc:
            last = exc
        else:
            if status == 200:
                return
            last = f"HTTP status {status}"
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer within {timeout:.0f}s (last error: {last}); see {log}")


@dataclass(kw_only=True)
class Server:
    """One proxy under test: how to start it, and its running process."""

    name: str
    kind: str  # "nginx" or "mutls": what actually runs in this slot
    port: int
    start_fn: Callable[[Server], subprocess.Popen[bytes]]
    ready_path: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def mutls_gateway_help() -> str | None:
    """``mutls gateway --help``, or None while the command does not exist."""
    if not MUTLS.exists():
        return None
    out = subprocess.run(
        [str(MUTLS), "gateway", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    return out.stdout if out.returncode == 0 else None


# --- measurements ---------------------------------------------------------------------------


@dataclass(kw_only=True)
class Sample:
    """One measurement of one server: the figure, its CPU and whether it is valid."""

    value: float  # requests/s, connections/s or KiB per connection
    cpu_us: float | None = None  # server CPU per request or connection
    invalid: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def run_wrk(server: Server, pki: Pki, shim: Path, duration: int) -> Sample:
    env = {
        **os.environ,
        "LD_PRELOAD": str(shim),
        "WRK_CLIENT_CERT": str(pki.client_chain),
        "WRK_CLIENT_KEY": str(pki.client_key),
    }
    argv = [
        "wrk",
        "-t1",
        f"-c{WRK_CONNECTIONS}",
        f"-d{duration}s",
        "--latency",
        f"https://127.0.0.1:{server.port}/",
    ]
    return wrk_sample(argv, server.pid, who="server", env=env)


LATENCY_LINE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_sample(
    argv: list[str],
    pid: int,
    *,
    who: str,
    env: dict[str, str] | None = None,
    require_latency: bool = False,
) -> Sample:
    """Run ``wrk`` (``argv``, with ``--latency``) against the process tree of ``pid``: requests/s,
    that tree's CPU per request, latency percentiles, and why the figure is invalid (wrk failed,
    an answer was not 2xx/3xx, a socket error). ``who`` names the measured side in the detail
    keys (``server_cpu_s``, ``proxy_cores_busy``, ...)."""
    cpu0 = cpu_by_process(pid)
    t0 = time.monotonic()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    cpu, per_process = cpu_delta(cpu0, cpu_by_process(pid))
    text = out.stdout + out.stderr
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    problems = []
    if out.returncode != 0 or rps is None or total is None:
        problems.append(f"wrk exited {out.returncode}: {text.strip()[-300:]!r}")
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        problems.append(f"{m.group(1)} non-2xx/3xx responses")
    if m := re.search(r"Socket errors: (.*)", text):
        problems.append(f"socket errors: {m.group(1).strip()}")
    latency = {f"p{q}_ms": float(v) * TO_MS[unit] for q, v, unit in LATENCY_LINE.findall(text)}
    if require_latency and ("p50_ms" not in latency or "p99_ms" not in latency):
        problems.append("no latency distribution in wrk's output")
    requests = int(total.group(1)) if total else 0
    return Sample(
        value=float(rps.group(1)) if rps else 0.0,
        cpu_us=cpu / requests * 1e6 if requests else None,
        invalid="; ".join(problems) or None,
        detail={
            "requests": requests,
            **{k: round(v, 4) for k, v in latency.items()},
            f"{who}_cpu_s": round(cpu, 3),
            f"{who}_cores_busy": round(cpu / wall, 2),
            "cpu_s_per_process": per_process,
            "wrk": text,
        },
    )


def expected_s_time_bytes(server: Server, pki: Pki) -> int:
    """Bytes of one answer to s_time's request, over one fresh mTLS connection (must be 200)."""
    status, response = http_get(server.port, "/", ctx=client_context(pki), request=S_TIME_REQUEST)
    if status != 200:
        raise SystemExit(
            f"{server.name}: GET / HTTP/1.0 over mTLS answered {status}, not 200:\n"
            f"{response[:500]!r}"
        )
    return len(response)


def run_s_time(
    server: Server, pki: Pki, *, version: str, duration: int, clients: int, expected: int
) -> Sample:
    """``clients`` parallel ``openssl s_time -new`` processes; connections/s summed over them,
    over the wall time of the slowest one."""
    argv = [
        "openssl",
        "s_time",
        "-connect",
        f"127.0.0.1:{server.port}",
        "-new",
        f"-{version}",
        "-cert",
        str(pki.client_leaf),
        "-key",
        str(pki.client_key),
        "-CAfile",
        str(pki.ca_chain),
        "-time",
        str(duration),
        "-www",
        S_TIME_PATH,
    ]
    cpu0 = cpu_by_process(server.pid)
    t0 = time.monotonic()
    runs: list[subprocess.Popen[str]] = []
    try:
        for _ in range(clients):
            runs.append(
                subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            )
        outputs = [run.communicate(timeout=duration + 60)[0] for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    wall = time.monotonic() - t0
    cpu, per_process = cpu_delta(cpu0, cpu_by_process(server.pid))
    connections = read = 0
    problems = []
    for run, text in zip(runs, outputs, strict=True):
        m = re.search(
            r"(\d+) connections in [\d.]+s; [\d.]+ connections/user sec, bytes read (\d+)", text
        )
        if run.returncode != 0 or m is None:
            problems.append(f"s_time exited {run.returncode}: {text.strip()[-300:]!r}")
            continue
        connections += int(m.group(1))
        read += int(m.group(2))
    if connections and read < 0.95 * expected * connections:
        problems.append(
            f"read {read} bytes for {connections} connections, expected about "
            f"{expected * connections} ({expected} per answer): some connections were refused"
        )
    if not connections:
        problems.append("no connections")
    return Sample(
        value=connections / wall,
        cpu_us=cpu / connections * 1e6 if connections else None,
        invalid="; ".join(problems) or None,
        detail={
            "connections": connections,
            "bytes_read": read,
            "wall_s": round(wall, 3),
            "server_cpu_s": round(cpu, 3),
            "server_cores_busy": round(cpu / wall, 2),
            "cpu_s_per_process": per_process,
            "clients": clients,
        },
    )


async def _open_idle(
    port: int, ctx: ssl.SSLContext, n: int
) -> tuple[list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], int]:
    """``n`` mTLS connections, each with one completed keep-alive request; (streams, non-200s)."""
    sem = asyncio.Semaphore(32)
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()

    async def one() -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        async with sem:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"
            )
            ok = await _request(reader, writer, request)
            return (reader, writer), ok

    results = await asyncio.gather(*(one() for _ in range(n)))
    return [r[0] for r in results], sum(1 for r in results if not r[1])


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> bool:
    """Send ``req``, read one response with a Content-Length body; True if it was a 200."""
    writer.write(req)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if length:
        await asyncio.wait_for(reader.readexactly(int(length.group(1))), 10)
    return head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))


def idle_memory(server: Server, pki: Pki) -> Sample:
    return asyncio.run(_idle_memory(server, pki, settle=2.0))


async def _idle_memory(server: Server, pki: Pki, settle: float) -> Sample:
    ctx = client_context(pki)
    before = memory_kib(server.pid)
    conns, refused = await _open_idle(server.port, ctx, IDLE_CONNECTIONS)
    await asyncio.sleep(settle)
    after = memory_kib(server.pid)
    # Prove the connections were held open by the server: one more request on each.
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()

    async def still_open(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            return await _request(reader, writer, request)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            return False

    alive = sum(await asyncio.gather(*(still_open(r, w) for r, w in conns)))
    for _, writer in conns:
        writer.close()
    with contextlib.suppress(Exception):
        await asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True)
    problems = []
    if refused:
        problems.append(f"{refused} of {IDLE_CONNECTIONS} first requests were not 200")
    if alive < IDLE_CONNECTIONS:
        problems.append(f"only {alive} of {IDLE_CONNECTIONS} connections were still open")
    return Sample(
        value=(after["pss"] - before["pss"]) / IDLE_CONNECTIONS,
        invalid="; ".join(problems) or None,
        detail={
            "pss_before_kib": before["pss"],
            "pss_after_kib": after["pss"],
            "rss_before_kib": before["rss"],
            "rss_after_kib": after["rss"],
            "rss_kib_per_connection": (after["rss"] - before["rss"]) / IDLE_CONNECTIONS,
            "still_open": alive,
            "processes": len(process_tree(server.pid)),
        },
    )


# --- report ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    target: float | None  # on the ratio mutls / nginx


METRICS = (
    Metric(
        key="ka_rps", label="keep-alive requests/s", unit="req/s", higher_is_better=True, target=1.0
    ),
    Metric(
        key="ka_cpu",
        label="keep-alive server CPU per request",
        unit="µs",
        higher_is_better=False,
        target=1.0,
    ),
    Metric(
        key="tls13_cps",
        label="new mTLS connections/s, TLS 1.3",
        unit="conn/s",
        higher_is_better=True,
        target=1.5,
    ),
    Metric(
        key="tls13_cpu",
        label="server CPU per new connection, TLS 1.3",
        unit="µs",
        higher_is_better=False,
        target=None,
    ),
    Metric(
        key="tls12_cps",
        label="new mTLS connections/s, TLS 1.2",
        unit="conn/s",
        higher_is_better=True,
        target=1.5,
    ),
    Metric(
        key="tls12_cpu",
        label="server CPU per new connection, TLS 1.2",
        unit="µs",
        higher_is_better=False,
        target=None,
    ),
    Metric(
        key="idle_kib",
        label="memory per idle mTLS connection (Pss)",
        unit="KiB",
        higher_is_better=False,
        target=1.3,
    ),
)


def median_of(samples: list[Sample], cpu: bool) -> tuple[float | None, str | None]:
    bad = [s.invalid for s in samples if s.invalid]
    if bad:
        return None, bad[0]
    values = [s.cpu_us if cpu else s.value for s in samples]
    clean = [v for v in values if v is not None]
    return (statistics.median(clean) if clean else None), None


def round_ratios(nginx: list[Sample], mutls: list[Sample], cpu: bool) -> list[float]:
    """mutls / nginx of each round (the two were measured next to each other)."""
    out = []
    for a, b in zip(nginx, mutls, strict=False):
        x, y = (a.cpu_us, b.cpu_us) if cpu else (a.value, b.value)
        if not a.invalid and not b.invalid and x and y is not None:
            out.append(round(y / x, 3))
    return out


def cores_busy(samples: dict[str, dict[str, list[Sample]]]) -> str:
    """How many of the machine's cores each server used while measured: below the core count,
    the clients or other work on the machine held it back."""
    parts = []
    for name, by_kind in samples.items():
        figures = []
        for kind in ("ka", "tls1_3", "tls1_2"):
            busy = [
                s.detail["server_cores_busy"]
                for s in by_kind.get(kind, [])
                if "server_cores_busy" in s.detail
            ]
            figures.append(f"{statistics.median(busy):.2f}" if busy else "—")
        parts.append(f"{name} {' / '.join(figures)}")
    return "; ".join(parts)


def rss_per_idle(samples: dict[str, dict[str, list[Sample]]]) -> str:
    parts = []
    for name, by_kind in samples.items():
        rss = [
            s.detail["rss_kib_per_connection"]
            for s in by_kind.get("idle", [])
            if "rss_kib_per_connection" in s.detail
        ]
        parts.append(f"{name} {statistics.median(rss):.1f}" if rss else f"{name} —")
    return "; ".join(parts)


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def build_rows(samples: dict[str, dict[str, list[Sample]]]) -> list[dict[str, Any]]:
    sources = {
        "ka_rps": ("ka", False),
        "ka_cpu": ("ka", True),
        "tls13_cps": ("tls1_3", False),
        "tls13_cpu": ("tls1_3", True),
        "tls12_cps": ("tls1_2", False),
        "tls12_cpu": ("tls1_2", True),
        "idle_kib": ("idle", False),
    }
    rows = []
    for metric in METRICS:
        kind, cpu = sources[metric.key]
        row: dict[str, Any] = {
            "key": metric.key,
            "label": metric.label,
            "unit": metric.unit,
            "higher_is_better": metric.higher_is_better,
            "target": metric.target,
        }
        for name in SERVERS:
            value, invalid = median_of(samples.get(name, {}).get(kind, []), cpu)
            row[name] = value
            row[f"{name}_invalid"] = invalid
        ratio = None
        if row["nginx"] and row["mutls"] is not None:
            ratio = row["mutls"] / row["nginx"]
        row["ratio"] = ratio
        row["round_ratios"] = round_ratios(
            samples.get("nginx", {}).get(kind, []), samples.get("mutls", {}).get(kind, []), cpu
        )
        met: bool | None = None
        if ratio is not None and metric.target is not None:
            met = ratio >= metric.target if metric.higher_is_better else ratio <= metric.target
        row["met"] = met
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [
        "# mTLS gateway: mutls side by side with nginx",
        "",
        f"Run {info['date']} on {info['machine']}; `{info['command']}`.",
        "",
        "| metric | nginx | mutls | ratio mutls/nginx | per round | target | met? |",
        "|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for row in rows:
        cells = []
        for name in SERVERS:
            if row[f"{name}_invalid"]:
                cells.append("invalid")
            else:
                cells.append(f"{fmt(row[name])} {row['unit']}" if row[name] is not None else "—")
        target = row["target"]
        target_text = (
            ("≥ " if row["higher_is_better"] else "≤ ") + f"{target:.1f}x" if target else "—"
        )
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "—"
        met = {True: "yes", False: "**no**", None: "—"}[row["met"]]
        spread = row["round_ratios"]
        per_round = f"{min(spread):.2f} to {max(spread):.2f}x" if len(spread) > 1 else "—"
        lines.append(
            f"| {row['label']} | {cells[0]} | {cells[1]} | {ratio} | {per_round} | {target_text} "
            f"| {met} |"
        )
    invalid = [
        f"- {row['label']}, {name}: {row[f'{name}_invalid']}"
        for row in rows
        for name in SERVERS
        if row[f"{name}_invalid"]
    ]
    if invalid:
        lines += ["", "Invalid measurements (not all answers were 200):", "", *invalid]
    lines += ["", "Machine and settings:", ""]
    lines += [f"- {k}: {v}" for k, v in info.items() if k not in {"date", "command"}]
    return "\n".join(lines) + "\n"


def svg_chart(rows: list[dict[str, Any]], title: str) -> str:
    """A horizontal bar per metric: the ratio mutls/nginx, with its target as a dashed line."""
    width, left, right, top, bar_h, gap = 900, 300, 50, 60, 30, 14
    plotted = list(rows)
    top_ratio = max(
        [2.0]
        + [r["ratio"] * 1.1 for r in plotted if r["ratio"] is not None]
        + [r["target"] * 1.1 for r in plotted if r["target"] is not None]
    )
    scale = (width - left - right) / top_ratio
    height = top + len(plotted) * (bar_h + gap) + 50
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="16" '
        f'font-weight="bold">{html.escape(title)}</text>',
        f'<text x="{width / 2}" y="44" text-anchor="middle" fill="#555">ratio mutls / nginx '
        "(bar); target (dashed); green: target met, red: missed, grey: no target</text>",
    ]
    axis_bottom = top + len(plotted) * (bar_h + gap)
    tick = 0.0
    while tick <= top_ratio + 1e-9:
        x = left + tick * scale
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{axis_bottom}" '
            f'stroke="{"#333" if tick == 1.0 else "#ddd"}" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{axis_bottom + 16}" text-anchor="middle">{tick:.1f}x</text>'
        )
        tick += 0.5
    for i, row in enumerate(plotted):
        y = top + i * (bar_h + gap)
        better = "higher" if row["higher_is_better"] else "lower"
        out.append(
            f'<text x="{left - 8}" y="{y + bar_h / 2 - 2}" text-anchor="end">'
            f"{html.escape(row['label'])}</text>"
        )
        out.append(
            f'<text x="{left - 8}" y="{y + bar_h / 2 + 12}" text-anchor="end" font-size="11" '
            f'fill="#555">{better} is better</text>'
        )
        ratio = row["ratio"]
        if ratio is None:
            out.append(
                f'<text x="{left + 6}" y="{y + bar_h / 2 + 4}" fill="#a00">no valid ratio</text>'
            )
        else:
            color = {True: "#2e8b57", False: "#c0392b", None: "#8c8c8c"}[row["met"]]
            out.append(
                f'<rect x="{left}" y="{y}" width="{ratio * scale:.1f}" height="{bar_h}" '
                f'fill="{color}"/>'
            )
            out.append(
                f'<text x="{left + ratio * scale + 6:.1f}" y="{y + bar_h / 2 + 4}">'
                f"{ratio:.2f}x</text>"
            )
        if row["target"] is not None:
            x = left + row["target"] * scale
            out.append(
                f'<line x1="{x:.1f}" y1="{y - 4}" x2="{x:.1f}" y2="{y + bar_h + 4}" '
                'stroke="black" stroke-width="2" stroke-dasharray="4,3"/>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def machine_basics(command: str, load_at_start: str) -> dict[str, Any]:
    """What every bench reports first: when, the command, the machine and its load, nginx, and
    the OpenSSL builds involved (system, Python's ssl, the cryptography wheel mutls uses)."""
    from cryptography.hazmat.backends.openssl import backend  # noqa: PLC0415

    nginx_v = subprocess.run(["nginx", "-V"], capture_output=True, text=True, check=False).stderr
    built = re.search(r"built with (OpenSSL [^\s]+)", nginx_v)
    running = re.search(r"running with (OpenSSL [^\s]+)", nginx_v)
    ssl_cli = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False)
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join([command, *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} CPUs ({model}), {platform.platform()}",
        "nproc": os.cpu_count(),
        "load average (1, 5, 15 min) at start": load_at_start,
        "load average (1, 5, 15 min) at end": load_average(),
        "nginx": (nginx_v.splitlines() or ["?"])[0]
        + (f", built with {built.group(1)}" if built else "")
        + (f", running with {running.group(1)}" if running else ""),
        "system OpenSSL (libssl: nginx, wrk, openssl)": ssl_cli.stdout.strip(),
        "Python ssl module": ssl.OPENSSL_VERSION,
        "OpenSSL in the cryptography wheel (mutls's, via pyOpenSSL "
        f"{importlib.metadata.version('pyopenssl')})": backend.openssl_version_text(),
        "Python": platform.python_version(),
    }


def machine_info(
    args: argparse.Namespace, kinds: dict[str, str], load_at_start: str
) -> dict[str, Any]:
    return {
        **machine_basics("python bench/gateway/run.py", load_at_start),
        "slots": ", ".join(f"{slot} = {kind}" for slot, kind in kinds.items()),
        "workers per proxy": args.workers,
        "duration per measurement": f"{args.duration} s",
        "rounds (median reported)": args.rounds,
        "wrk": f"-t1 -c{WRK_CONNECTIONS}, client certificate via LD_PRELOAD shim",
        "s_time": f"{args.s_time_clients} parallel `openssl s_time -new` processes, summed",
        "idle connections": f"{IDLE_CONNECTIONS} (TLS 1.3, one request each), fresh server",
    }


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per proxy")
    parser.add_argument("--only", choices=SERVERS, help="measure one server only")
    parser.add_argument(
        "--nginx-as-mutls",
        action="store_true",
        help="run nginx in the mutls slot too (checks the harness while the gateway is missing)",
    )
    parser.add_argument(
        "--s-time-clients", type=int, default=2, help="parallel s_time processes (default 2)"
    )
    parser.add_argument(
        "--out", type=Path, default=HERE, help="where results.{md,svg,json} go (default: here)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    return parser.parse_args(argv)


def raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def compile_shim(base: Path) -> Path:
    out = base / "wrk_client_cert.so"
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-o",
            str(out),
            str(HERE / "wrk_client_cert.c"),
            "-ldl",
            "-lssl",
            "-lcrypto",
        ],
        check=True,
    )
    return out


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into SystemExit so the cleanup in ``finally`` runs."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("nginx", "wrk", "openssl", "gcc"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: run `make bench` (it installs BENCH_TOOLS)")
    raise_nofile()
    names = [args.only] if args.only else list(SERVERS)
    kinds = {name: name for name in names}
    help_text = None
    if "mutls" in names:
        if args.nginx_as_mutls:
            kinds["mutls"] = "nginx"
        else:
            help_text = mutls_gateway_help()
            if help_text is None:
                raise SystemExit(
                    "`mutls gateway --help` does not work yet: the gateway is not installed. "
                    "Use --only nginx, or --nginx-as-mutls to check the harness."
                )
    base = Path(tempfile.mkdtemp(prefix="mutls-gateway-bench-"))
    procs = Processes()
    started = time.monotonic()
    load_at_start = load_average()
    try:
        with terminate_on_signals():
            bench = Bench(args=args, base=base, procs=procs, kinds=kinds)
            bench.setup()
            bench.measure()
            samples = bench.samples
            rows = build_rows(samples)
            info = machine_info(args, kinds, load_at_start)
            assert bench.pki is not None
            info["route"] = bench.pki.route
            info["server cores busy, median of keep-alive / TLS 1.3 / TLS 1.2 runs"] = cores_busy(
                samples
            )
            info["idle memory by VmRSS instead of Pss, KiB per connection (median)"] = rss_per_idle(
                samples
            )
    except KeyboardInterrupt:
        print("interrupted; stopping every process this run started", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    text = markdown(rows, info)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    (args.out / "results.svg").write_text(
        svg_chart(rows, f"mTLS gateway: mutls / nginx ({info['date']}, {os.cpu_count()} CPUs)")
    )
    raw = {
        "info": info,
        "rows": rows,
        "samples": {
            name: {
                kind: [
                    {
                        "value": s.value,
                        "cpu_us": s.cpu_us,
                        "invalid": s.invalid,
                        **{k: v for k, v in s.detail.items() if k != "wrk"},
                    }
                    for s in lst
                ]
                for kind, lst in by_kind.items()
            }
            for name, by_kind in samples.items()
        },
    }
    (args.out / "results.json").write_text(json.dumps(raw, indent=2, default=str) + "\n")
    print(
        f"wrote {args.out}/results.md, results.svg, results.json "
        f"in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    return 0


@dataclass(kw_only=True)
class Bench:
    """One run: the settings, the temp dir, the processes, the servers and what they measured."""

    args: argparse.Namespace
    base: Path
    procs: Processes
    kinds: dict[str, str]  # slot -> what runs in it
    pki: Pki | None = None
    shim: Path | None = None
    upstream_port: int = 0
    servers: dict[str, Server] = field(default_factory=dict)
    samples: dict[str, dict[str, list[Sample]]] = field(default_factory=dict)

    def setup(self) -> None:
        self.upstream_port = free_port()
        upstream_url = f"http://127.0.0.1:{self.upstream_port}"
        print_progress(f"temp dir {self.base}; making the PKI and platform data with mutls")
        self.pki = make_pki(self.base, upstream_url)
        print_progress(f"route: {self.pki.route}")
        self.shim = compile_shim(self.base)
        workdir = self.base / "upstream"
        upstream = start_nginx(
            self.procs, UPSTREAM_CONF.format(dir=workdir, port=self.upstream_port), workdir
        )
        wait_ready(
            upstream,
            lambda: http_get(self.upstream_port, "/", ctx=None)[0],
            "upstream nginx",
            workdir / "error.log",
        )
        for name, kind in self.kinds.items():
            self.servers[name] = Server(
                name=name,
                kind=kind,
                port=free_port(),
                start_fn=self._start_nginx if kind == "nginx" else self._start_mutls,
                ready_path="/" if kind == "nginx" else "/mutls/whoami",
                log=self.base / name / ("error.log" if kind == "nginx" else "gateway.log"),
            )
            self.samples[name] = {}

    def _start_nginx(self, server: Server) -> subprocess.Popen[bytes]:
        conf = PROXY_CONF.format(
            dir=self.base / server.name,
            workers=self.args.workers,
            upstream_port=self.upstream_port,
            port=server.port,
            pki=self.pki,
        )
        return start_nginx(self.procs, conf, self.base / server.name)

    def _start_mutls(self, server: Server) -> subprocess.Popen[bytes]:
        assert self.pki is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("MUTLS_")}
        env.update(
            MUTLS_DATA_DIR=str(self.pki.data_dir),
            MUTLS_GATEWAY_CERT_FILE=str(self.pki.server_chain),
            MUTLS_GATEWAY_KEY_FILE=str(self.pki.server_key),
            MUTLS_GATEWAY_ACCESS_LOG="off",
            MUTLS_GATEWAY_METRICS_LISTEN="off",
            MUTLS_LOG_LEVEL="info",  # lifecycle lines only: the access log is off
        )
        argv = [
            str(MUTLS),
            "gateway",
            "--listen",
            f"127.0.0.1:{server.port}",
            "--workers",
            str(self.args.workers),
        ]
        server.log.parent.mkdir(parents=True, exist_ok=True)
        return self.procs.start(argv, log=server.log, env=env, cwd=self.base)

    def start(self, server: Server) -> None:
        assert self.pki is not None
        server.proc = server.start_fn(server)
        ctx = client_context(self.pki)
        wait_ready(
            server.proc,
            lambda: http_get(server.port, server.ready_path, ctx=ctx)[0],
            f"{server.name} ({server.kind})",
            server.log,
        )
        # Fill the upstream pool and warm caches before anything is measured.
        for _ in range(20):
            status, response = http_get(server.port, "/", ctx=ctx)
            if status != 200:
                raise SystemExit(f"{server.name}: GET / answered {status}:\n{response[:500]!r}")

    def stop(self, server: Server) -> None:
        if server.proc is not None:
            self.procs.stop(server.proc)
            server.proc = None

    def add(self, name: str, kind: str, sample: Sample) -> None:
        self.samples[name].setdefault(kind, []).append(sample)
        cpu = f", {sample.cpu_us:.1f} µs CPU each" if sample.cpu_us is not None else ""
        split = sample.detail.get("cpu_s_per_process")
        busy = sample.detail.get("server_cores_busy")
        split_text = f" (server busy {busy} cores; CPU s by process {split})" if split else ""
        bad = f"  INVALID: {sample.invalid}" if sample.invalid else ""
        print_progress(f"  {kind:7} {name:6} {sample.value:10.1f}{cpu}{split_text}{bad}")

    def order(self, round_: int) -> list[Server]:
        """Both servers, the first one swapped every round so that drift hits both."""
        ordered = list(self.servers.values())
        return ordered if round_ % 2 == 0 else ordered[::-1]

    def measure(self) -> None:
        args, pki, shim = self.args, self.pki, self.shim
        assert pki is not None
        assert shim is not None
        for server in self.servers.values():
            self.start(server)
        expected = {name: expected_s_time_bytes(s, pki) for name, s in self.servers.items()}
        print_progress(f"s_time answer sizes (bytes): {expected}")
        print_progress("warm-up: 2 s of wrk on each")
        for server in self.servers.values():
            run_wrk(server, pki, shim, 2)
        for r in range(args.rounds):
            print_progress(f"round {r + 1}/{args.rounds}")
            for server in self.order(r):
                self.add(server.name, "ka", self.guarded(server, run_wrk, pki, shim, args.duration))
            for version in ("tls1_3", "tls1_2"):
                for server in self.order(r):
                    sample = self.guarded(
                        server,
                        partial(
                            run_s_time,
                            version=version,
                            duration=args.duration,
                            clients=args.s_time_clients,
                            expected=expected[server.name],
                        ),
                        pki,
                    )
                    self.add(server.name, version, sample)
        print_progress(f"idle memory: {IDLE_CONNECTIONS} connections on a freshly started server")
        for r in range(args.rounds):
            for server in self.order(r):
                self.stop(server)
                self.add(server.name, "idle", self.guarded(server, idle_memory, pki))
        for server in self.servers.values():
            for line in _log_problems(server.log):
                print_progress(f"  {server.name} log: {line}")
            self.stop(server)

    def guarded(self, server: Server, measure: Callable[..., Sample], *args: Any) -> Sample:
        """Run one measurement; a server that died is reported (and restarted), not fatal."""
        restarted = None
        if server.proc is None or server.proc.poll() is not None:
            if server.proc is not None:
                restarted = f"{server.name} had exited with {server.proc.returncode}; restarted"
                print_progress(
                    f"{server.name} had exited with {server.proc.returncode}; restarting "
                    f"(log: {server.log})"
                )
                self.stop(server)
            try:
                self.start(server)
            except SystemExit as exc:
                return Sample(value=0.0, invalid=f"server did not start: {exc}")
        sample = measure(server, *args)
        if restarted:
            sample.detail["note"] = restarted
        if server.proc is None or server.proc.poll() is not None:
            code = server.proc.returncode if server.proc is not None else None
            sample.invalid = "; ".join(
                x for x in (sample.invalid, f"server exited ({code}) during the run") if x
            )
        return sample


def _log_problems(path: Path, lines: int = 10) -> list[str]:
    """The first error-looking lines of a server's log (nginx alerts, Python tracebacks)."""
    pattern = re.compile(r"\[(alert|crit|emerg|error)\]|ERROR|CRITICAL|Traceback|Error:")
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if pattern.search(line)][:lines]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
