"""``--profile``: where the mutls worker's time goes (py-spy by Python line, perf by library)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from run import Sample, fmt, load_average, print_progress, process_tree

from egress.measure import WARMUP_SECONDS, Bench
from egress.servers import Proxy

# --- profile ---------------------------------------------------------------------------------

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def profile(bench: Bench, seconds: int, out: Path) -> None:
    """Where the mutls worker's time goes under wrk: py-spy by Python line and function, then
    (if ``perf`` is installed) the CPU split by library for mutls and for nginx."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is missing: `.venv/bin/pip install py-spy`")
    out.mkdir(parents=True, exist_ok=True)
    logs = "-log" if bench.args.profile_logs else ""
    mutls = bench.proxies[f"mutls-{bench.args.workers[0]}{logs}"]
    worker = only_worker(bench, mutls)
    folded = bench.base / "profile.folded"  # raw files stay in the temp dir (see --keep)
    argv = [spy, "record", "--pid", str(worker), "--duration", str(seconds), "--threads"]
    argv += ["--format", "raw", "--output", str(folded)]
    print_progress(f"py-spy on mutls worker {worker} for {seconds} s under wrk")
    sample = while_wrk(bench, mutls, seconds, argv, bench.base / "py-spy.log")
    lines = [
        "py-spy record (100 samples/s, the worker paused at each) on the mutls egress worker "
        f"(1 worker, request log {'on' if logs else 'off'}) under wrk -t{bench.args.wrk_threads} "
        f"-c{bench.args.wrk_connections} for {seconds} s; load average {load_average()}",
        f"wrk meanwhile: {sample.value:,.0f} req/s, proxy CPU {fmt(sample.cpu_us)} µs/req",
        "",
        *hot_spots(folded.read_text()),
    ]
    if shutil.which("perf"):
        lines += ["", "CPU by library (perf record -e cpu-clock -F 999, on-CPU samples only):"]
        for proxy in (mutls, bench.proxies[f"nginx-{bench.args.workers[0]}{logs}"]):
            pid = only_worker(bench, proxy)
            data = bench.base / f"perf-{proxy.name}.data"
            argv = ["perf", "record", "-e", "cpu-clock", "-F", "999", "-p", str(pid)]
            print_progress(f"perf on {proxy.name} worker {pid} for {seconds} s under wrk")
            sample = while_wrk(
                bench, proxy, seconds, [*argv, "-o", str(data)], bench.base / "perf.log"
            )
            report = subprocess.run(
                ["perf", "report", "-i", str(data), "--sort", "dso", "--stdio"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            lines += ["", f"{proxy.name}: {sample.value:,.0f} req/s, {fmt(sample.cpu_us)} µs/req"]
            for row in report.splitlines():
                m = re.match(r"^\s+([\d.]+)%\s+(\S+)", row)
                if m and float(m[1]) >= 0.5:
                    share = float(m[1])
                    us = f" = {share * sample.cpu_us / 100:5.1f} µs/req" if sample.cpu_us else ""
                    lines.append(f"  {share:5.1f} %{us}  {m[2]}")
    text = "\n".join(lines)
    (out / "profile.txt").write_text(text + "\n")
    print(text)


def only_worker(bench: Bench, proxy: Proxy) -> int:
    """Start ``proxy`` if needed, warm it up; the pid of its one worker process."""
    if proxy.proc is None:
        bench.start(proxy)
        bench.wrk(proxy, WARMUP_SECONDS)
    workers = [pid for pid in process_tree(proxy.pid) if pid != proxy.pid]
    if len(workers) != 1:
        raise SystemExit(f"expected one {proxy.name} worker process; found {workers}")
    return workers[0]


def while_wrk(bench: Bench, proxy: Proxy, seconds: int, argv: list[str], log: Path) -> Sample:
    """Run the profiler ``argv`` while wrk drives ``proxy`` for ``seconds``; stop it after."""
    with log.open("ab") as out:
        recorder = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        time.sleep(0.5)
        sample = bench.wrk(proxy, seconds)
        if recorder.poll() is None and "perf" in Path(argv[0]).name:
            recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=seconds + 60)
    return sample


def hot_spots(folded: str, top: int = 25) -> list[str]:
    """Shares of the main thread's samples: own (innermost frame) by line and by function, and
    inclusive (anywhere on the stack) by function. Other threads (the executor's, idle in a
    queue wait that py-spy does not see as idle) are left out."""
    own_line: dict[str, int] = {}
    own_function: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = other = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, _, stack = stack.partition(";")
        if not thread.endswith("MainThread"):
            other += count
            continue
        total += count
        frames = stack.split(";")
        own_line[frames[-1]] = own_line.get(frames[-1], 0) + count
        functions = []
        for frame in frames:
            m = FRAME.match(frame)
            functions.append(f"{m['function']} ({m['file']})" if m else frame)
        own_function[functions[-1]] = own_function.get(functions[-1], 0) + count
        for function in set(functions):
            inclusive[function] = inclusive.get(function, 0) + count
    if not total:
        return ["no main-thread samples (did py-spy attach? see py-spy.log)"]
    lines = [
        f"{total} main-thread samples while not idle ({other} from other threads left out). "
        "py-spy samples wall time: a line that calls write() also carries the time the "
        "worker waited for a core after waking the receiver.",
    ]
    for title, counts in (
        ("own time by line (innermost frame)", own_line),
        ("own time by function", own_function),
        ("inclusive time by function, below the event loop (on the stack)", inclusive),
    ):
        lines += ["", f"{title}:", ""]
        shown = 0
        for name, count in sorted(counts.items(), key=lambda x: -x[1]):
            if counts is inclusive and count >= 0.95 * total:
                continue  # the process's startup chain down to the event loop: on every stack
            lines.append(f"{100 * count / total:5.1f} %  {name}")
            shown += 1
            if shown == top:
                break
    return lines
