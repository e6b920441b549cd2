"""Benchmark: REST record reads over the full Interlink stack against a bare Starlette + sqlite3 baseline.

Run ``python bench/rest_get.py`` (or ``make bench``). It measures, in one run and with one load generator:

1. **Throughput** of ``GET /services/data/v66.0/sobjects/Account/{id}`` with a valid Bearer token:

   * *interlink*: a real ``interlink up`` (one process, embedded SQLite store) started in a temporary data
     directory with :func:`interlink.testing.live_server`;
   * *baseline*: ``bench/baseline_app.py``, a bare Starlette app reading the same row from an SQLite file
     with ``sqlite3`` and checking only that an ``Authorization`` header exists, run by uvicorn with one
     worker and the *same* TLS certificate and key.

   Both are served over TLS with keep-alive connections, hit by the same client: ``wrk`` when it is on the
   ``PATH`` (one thread, since the load generator shares the machine's cores with the server), otherwise an
   asyncio + httpx load generator. Each target gets a warm-up, then a measured window. The result is
   requests/second, p50/p99 latency and the ratio interlink/baseline (goal: >= 0.5).

2. **Startup** of ``interlink up --port 0`` on the embedded store: from ``Popen`` to the first 200 from
   ``GET /health``, for a fresh data directory (first start: creates TLS material, deploys the schema,
   bootstraps the org) and for the same directory again (second start). Goal: < 1.5 s.

Flags: ``--duration`` (measured seconds per target), ``--warmup``, ``--connections``, ``--rounds``,
``--tool auto|wrk|httpx``, ``--no-startup``, ``--json`` (machine-readable results on stdout). The default run
takes about 30 seconds.

Importable too: :func:`run_benchmark` returns a :class:`BenchReport` and the building blocks
(:func:`run_wrk`, :func:`run_httpx`, :func:`measure_startup`, :func:`baseline_server`) can be reused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import httpx

from interlink.testing import ADMIN_PASSWORD, API_VERSION, live_server

BENCH_DIR = Path(__file__).resolve().parent
RECORD_PATH = f"/services/data/v{API_VERSION}/sobjects/Account/{{id}}"
THROUGHPUT_GOAL = 0.5  # interlink requests/s divided by baseline requests/s
STARTUP_GOAL_S = 1.5
SATURATED = 0.8  # a server using less CPU than this (of one core) is starved by the load generator

# A realistic Account: a dozen populated fields plus the system fields Interlink fills in.
SAMPLE_ACCOUNT: dict[str, Any] = {
    "Name": "Benchmark Industries",
    "Industry": "Technology",
    "Type": "Customer - Direct",
    "Phone": "+1 415 555 0100",
    "Website": "https://bench.example.com",
    "BillingStreet": "1 Market Street",
    "BillingCity": "San Francisco",
    "BillingState": "CA",
    "BillingPostalCode": "94105",
    "BillingCountry": "USA",
    "NumberOfEmployees": 250,
    "AnnualRevenue": 12500000,
    "Description": "A record used by bench/rest_get.py.",
}


# -- results -------------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """One measured window against one target."""

    target: str
    tool: str
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    server_cpu_us_per_request: float | None = None  # server process user+system CPU / requests (Linux)
    server_busy: float | None = None  # server CPU seconds / wall seconds: ~1.0 when the server is the bottleneck


@dataclass
class StartupResult:
    """Seconds from ``Popen`` of ``interlink up`` to its first 200 from ``GET /health``."""

    first_start_s: float
    second_start_s: float

    @property
    def goal_met(self) -> bool:
        return max(self.first_start_s, self.second_start_s) < STARTUP_GOAL_S


@dataclass
class BenchReport:
    """Everything one run measured."""

    tool: str
    connections: int
    duration_s: float
    warmup_s: float
    interlink: LoadResult
    baseline: LoadResult
    interlink_payload_bytes: int
    baseline_payload_bytes: int
    rounds: list[dict[str, LoadResult]] = field(default_factory=list)
    startup: StartupResult | None = None

    @property
    def ratio(self) -> float:
        base = self.baseline.requests_per_second
        return self.interlink.requests_per_second / base if base else 0.0

    @property
    def saturated(self) -> bool | None:
        """Whether both servers were CPU-bound (None when CPU time is not available)."""
        busy = (self.interlink.server_busy, self.baseline.server_busy)
        if None in busy:
            return None
        return all(b is not None and b >= SATURATED for b in busy)

    @property
    def goal_ratio(self) -> float:
        """The ratio the goal is judged on: requests/s, or CPU per request when the client was the bottleneck."""
        if self.saturated is False and self.cpu_ratio is not None:
            return self.cpu_ratio
        return self.ratio

    @property
    def goal_met(self) -> bool:
        return self.goal_ratio >= THROUGHPUT_GOAL

    @property
    def cpu_ratio(self) -> float | None:
        """Baseline CPU per request / Interlink CPU per request: the ratio with the machine's noise removed."""
        mine, base = self.interlink.server_cpu_us_per_request, self.baseline.server_cpu_us_per_request
        return base / mine if mine and base else None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ratio"] = round(self.ratio, 4)
        data["cpu_ratio"] = None if self.cpu_ratio is None else round(self.cpu_ratio, 4)
        data["saturated"] = self.saturated
        data["goal_ratio"] = round(self.goal_ratio, 4)
        data["throughput_goal"] = THROUGHPUT_GOAL
        data["throughput_goal_met"] = self.goal_met
        if self.startup is not None:
            data["startup"]["goal_s"] = STARTUP_GOAL_S
            data["startup"]["goal_met"] = self.startup.goal_met
        return data


# -- load generators -------------------------------------------------------------------------------------------


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _WRK_UNITS[match.group(2)]


def parse_wrk(output: str, target: str) -> LoadResult:
    """Parse ``wrk --latency`` output into a :class:`LoadResult`."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not total or not rps:
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", output, re.MULTILINE))
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return LoadResult(
        target=target, tool="wrk", requests=int(total.group(1)),
        seconds=_wrk_ms(total.group(2) + total.group(3)) / 1000.0,
        requests_per_second=float(rps.group(1)),
        p50_ms=_wrk_ms(percentiles["50"]) if "50" in percentiles else None,
        p99_ms=_wrk_ms(percentiles["99"]) if "99" in percentiles else None,
        errors=errors,
    )


def run_wrk(url: str, token: str, *, connections: int, duration: float, target: str,
            threads: int = 1) -> LoadResult:
    """One ``wrk`` run (keep-alive, ``threads`` threads) against ``url`` with a Bearer token."""
    seconds = max(1, round(duration))
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s",
               "-H", f"Authorization: Bearer {token}", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"wrk exited {result.returncode}: {result.stderr or result.stdout}")
    return parse_wrk(result.stdout, target)


def _percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def _httpx_load(url: str, token: str, verify: ssl.SSLContext, connections: int,
                      duration: float) -> tuple[int, int, float, list[float]]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(verify=verify, http2=False, limits=limits, timeout=10.0) as client:
        start = time.perf_counter()
        deadline = start + duration

        async def worker() -> None:
            nonlocal errors
            while True:
                sent = time.perf_counter()
                if sent >= deadline:
                    return
                try:
                    response = await client.get(url, headers=headers)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - sent) * 1000.0)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    return len(latencies), errors, elapsed, latencies


def run_httpx(url: str, token: str, *, connections: int, duration: float, target: str,
              verify: ssl.SSLContext) -> LoadResult:
    """The fallback load generator: ``connections`` asyncio workers sharing one httpx client (HTTP/1.1)."""
    ok, errors, elapsed, latencies = asyncio.run(_httpx_load(url, token, verify, connections, duration))
    latencies.sort()
    return LoadResult(target=target, tool="httpx", requests=ok, seconds=elapsed,
                      requests_per_second=ok / elapsed if elapsed else 0.0,
                      p50_ms=_percentile(latencies, 0.50), p99_ms=_percentile(latencies, 0.99), errors=errors)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by process ``pid`` (Linux ``/proc``), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def measure(url: str, token: str, *, tool: str, connections: int, duration: float, warmup: float,
            target: str, verify: ssl.SSLContext, server_pid: int | None = None) -> LoadResult:
    """Warm ``url`` up for ``warmup`` seconds (result discarded), then measure for ``duration`` seconds.

    With ``server_pid``, also report the server's CPU time per request over the measured window: on a
    shared machine that is steadier than requests/second.
    """

    def once(seconds: float) -> LoadResult:
        if tool == "wrk":
            return run_wrk(url, token, connections=connections, duration=seconds, target=target)
        return run_httpx(url, token, connections=connections, duration=seconds, target=target, verify=verify)

    if warmup > 0:
        once(warmup)
    cpu_before = process_cpu_seconds(server_pid) if server_pid else None
    result = once(duration)
    cpu_after = process_cpu_seconds(server_pid) if server_pid else None
    if cpu_before is not None and cpu_after is not None and result.requests:
        result.server_cpu_us_per_request = (cpu_after - cpu_before) / result.requests * 1e6
        result.server_busy = (cpu_after - cpu_before) / result.seconds if result.seconds else None
    return result


# -- the baseline server ------------------------------------------------------------------------------------------


def _baseline_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("interlink_bench_baseline_app", BENCH_DIR / "baseline_app.py")
    if spec is None or spec.loader is None:
        raise ImportError("cannot load bench/baseline_app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # registered first, as ``import`` does (dataclasses and pickling need it)
    spec.loader.exec_module(module)
    return module


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(url: str, verify: ssl.SSLContext, process: subprocess.Popen[bytes], log_path: Path,
                        timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(verify=verify, timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"baseline exited {process.returncode}:\n{log_path.read_text(errors='replace')}")
            with contextlib.suppress(httpx.HTTPError):
                client.get(url)
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"baseline did not start in {timeout}s:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def baseline_server(workdir: Path, record: dict[str, Any], certfile: Path, keyfile: Path,
                    verify: ssl.SSLContext) -> Iterator[tuple[str, int]]:
    """Create the baseline's SQLite file from ``record``, serve it over TLS, yield (base URL, pid)."""
    db_path = workdir / "baseline.sqlite3"
    _baseline_module().create_database(db_path, record)
    port = _free_port()
    log_path = workdir / "baseline.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "baseline_app.py"), "--db", str(db_path), "--port", str(port),
             "--certfile", str(certfile), "--keyfile", str(keyfile)], stdout=log, stderr=subprocess.STDOUT)
    base_url = f"https://127.0.0.1:{port}"
    try:
        _wait_until_serving(base_url + "/", verify, process, log_path)
        yield base_url, process.pid
    finally:
        _stop(process)


# -- startup -----------------------------------------------------------------------------------------------------


def time_startup(data_dir: Path, *, timeout: float = 30.0) -> float:
    """Seconds from ``Popen`` of ``interlink up --port 0`` in ``data_dir`` to its first 200 on ``/health``.

    Polls ``<data_dir>/run/server.json`` every 5 ms for the port, then ``/health`` until it answers 200
    (trusting only the local CA, so loading the system roots is not timed). Stops the server afterwards.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    info_path = data_dir / "run" / "server.json"
    with contextlib.suppress(OSError):
        info_path.unlink()
    env = {**os.environ, "INTERLINK_ADMIN_PASSWORD": ADMIN_PASSWORD, "INTERLINK_PROJECT_DIR": str(data_dir)}
    log_path = data_dir / "startup.log"
    with log_path.open("ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "interlink.cli.main", "up", "--port", "0", "--data-dir", str(data_dir)],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        port: int | None = None
        while port is None:
            if process.poll() is not None:
                raise RuntimeError(f"interlink up exited {process.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"interlink up did not start in {timeout}s:\n{log_path.read_text()}")
            with contextlib.suppress(OSError, ValueError, KeyError):
                port = int(json.loads(info_path.read_text())["port"])
                break
            time.sleep(0.005)
        verify = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.pem"))
        with httpx.Client(verify=verify, timeout=5.0) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"https://127.0.0.1:{port}/health").status_code == 200:
                        return time.perf_counter() - started
                if time.monotonic() > deadline:
                    raise RuntimeError(f"/health did not answer 200 in {timeout}s:\n{log_path.read_text()}")
                time.sleep(0.002)
    finally:
        _stop(process)


def measure_startup(workdir: Path) -> StartupResult:
    """First start (fresh data dir) and second start (same dir) of ``interlink up``."""
    data_dir = workdir / "startup-org"
    first = time_startup(data_dir)
    second = time_startup(data_dir)
    return StartupResult(first_start_s=first, second_start_s=second)


# -- the run -----------------------------------------------------------------------------------------------------


def choose_tool(requested: str = "auto") -> str:
    """``wrk`` if requested or available (``auto``), else ``httpx``."""
    import shutil

    if requested == "wrk" and shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    if requested == "auto":
        return "wrk" if shutil.which("wrk") else "httpx"
    return requested


def _median_result(results: list[LoadResult]) -> LoadResult:
    ordered = sorted(results, key=lambda r: r.requests_per_second)
    return ordered[len(ordered) // 2]


def run_benchmark(*, duration: float = 5.0, warmup: float = 2.0, connections: int = 16, rounds: int = 1,
                  tool: str = "auto", startup: bool = True, log: TextIO | None = None) -> BenchReport:
    """Run the throughput comparison (and the startup timing) and return the results."""
    chosen = choose_tool(tool)

    def say(message: str) -> None:
        if log is not None:
            print(message, file=log, flush=True)

    with tempfile.TemporaryDirectory(prefix="interlink-bench-") as tmp:
        workdir = Path(tmp)
        say(f"starting interlink up in {workdir / 'org'} ...")
        with live_server(workdir / "org") as server:
            token = server.token()
            tls_dir = server.data_dir / "tls"
            verify = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
            base = f"https://127.0.0.1:{server.port}"
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(verify=verify, timeout=10.0, headers=headers) as client:
                created = client.post(f"{base}/services/data/v{API_VERSION}/sobjects/Account/", json=SAMPLE_ACCOUNT)
                created.raise_for_status()
                path = RECORD_PATH.format(id=created.json()["id"])
                fetched = client.get(base + path)
                fetched.raise_for_status()
                record = fetched.json()
                interlink_bytes = len(fetched.content)
            with baseline_server(workdir, record, tls_dir / "server.pem", tls_dir / "server-key.pem",
                                 verify) as (baseline_base, baseline_pid):
                with httpx.Client(verify=verify, timeout=10.0, headers=headers) as client:
                    check = client.get(baseline_base + path)
                    check.raise_for_status()
                    if check.json() != record:
                        raise RuntimeError("the baseline does not serve the same record as Interlink")
                    baseline_bytes = len(check.content)
                per_round: list[dict[str, LoadResult]] = []
                for number in range(1, rounds + 1):
                    results: dict[str, LoadResult] = {}
                    targets = (("baseline", baseline_base + path, baseline_pid),
                               ("interlink", base + path, server.process.pid))
                    for target, url, pid in targets:
                        say(f"round {number}/{rounds}: {target} ({chosen}, {connections} connections, "
                            f"{warmup:g}s warm-up + {duration:g}s) ...")
                        results[target] = measure(url, token, tool=chosen, connections=connections,
                                                  duration=duration, warmup=warmup, target=target, verify=verify,
                                                  server_pid=pid)
                    per_round.append(results)
        startup_result = None
        if startup:
            say("timing interlink up startup (first and second start) ...")
            startup_result = measure_startup(workdir)
    return BenchReport(
        tool=chosen, connections=connections, duration_s=duration, warmup_s=warmup,
        interlink=_median_result([r["interlink"] for r in per_round]),
        baseline=_median_result([r["baseline"] for r in per_round]),
        interlink_payload_bytes=interlink_bytes, baseline_payload_bytes=baseline_bytes,
        rounds=per_round if rounds > 1 else [], startup=startup_result,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_report(report: BenchReport) -> str:
    """The human-readable table."""
    lines = [
        f"GET {RECORD_PATH}  ({report.tool}, 1 thread, {report.connections} keep-alive TLS connections, "
        f"{report.warmup_s:g}s warm-up + {report.duration_s:g}s measured)",
        "",
        f"{'target':<10} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7} "
        f"{'payload B':>10} {'server CPU us/req':>18} {'server busy':>12}",
    ]
    for result, size in ((report.interlink, report.interlink_payload_bytes),
                         (report.baseline, report.baseline_payload_bytes)):
        cpu = result.server_cpu_us_per_request
        lines.append(f"{result.target:<10} {result.requests_per_second:>11.1f} {_ms(result.p50_ms):>8} "
                     f"{_ms(result.p99_ms):>8} {result.requests:>9} {result.errors:>7} {size:>10} "
                     f"{'-' if cpu is None else f'{cpu:.0f}':>18} "
                     f"{'-' if result.server_busy is None else f'{result.server_busy:.0%}':>12}")
    lines.append("")
    lines.append(f"requests/s ratio interlink/baseline:       {report.ratio:.3f}")
    if report.cpu_ratio is not None:
        lines.append(f"CPU-per-request ratio baseline/interlink:  {report.cpu_ratio:.3f}  (steadier on a busy machine)")
    if report.saturated is False:
        lines.append(f"note: a server used < {SATURATED:.0%} of a core, so the load generator was the bottleneck "
                     "and requests/s understates the gap; the goal is judged on CPU per request")
    lines.append(f"goal ratio >= {THROUGHPUT_GOAL}: {'met' if report.goal_met else 'NOT met'} "
                 f"({report.goal_ratio:.3f})")
    if report.startup is not None:
        lines.append(f"startup to first /health 200: first start {report.startup.first_start_s:.3f}s, "
                     f"second start {report.startup.second_start_s:.3f}s   goal < {STARTUP_GOAL_S}s: "
                     f"{'met' if report.startup.goal_met else 'NOT met'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="REST GET throughput: Interlink vs a bare Starlette + sqlite3 "
                                                 "baseline, plus startup time.")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per target (default 5)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per target (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (16)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate the targets this many times and report the median (default 1)")
    parser.add_argument("--tool", choices=["auto", "wrk", "httpx"], default="auto",
                        help="load generator (auto: wrk if installed, else httpx)")
    parser.add_argument("--no-startup", dest="startup", action="store_false", help="skip the startup timing")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    report = run_benchmark(duration=args.duration, warmup=args.warmup, connections=args.connections,
                           rounds=max(1, args.rounds), tool=args.tool, startup=args.startup,
                           log=None if args.json else sys.stderr)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
