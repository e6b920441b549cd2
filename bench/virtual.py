"""Benchmark: a filtered, paged external-object query through Interlink vs the same OData request sent directly.

Run ``python bench/virtual.py`` (``make bench`` runs ``--quick``). In one run:

1. The example ERP (``examples/erp/odata_service.py``, OData 4.0, SQLite) starts as its own process with N orders.
2. A real ``interlink up`` (TLS, embedded SQLite) starts in a temporary data directory whose project declares the
   ERP as data source ``ERP`` (client-driven paging); ``interlink connect sync ERP --as Orders=Order`` creates
   ``Order__x`` and deploys it.
3. **Interlink**: ``GET /services/data/v66.0/query`` with
   ``SELECT OrderNumber__c, CustomerNumber__c, Amount__c, Status__c FROM Order__x WHERE Status__c = 'Shipped'
   AND Amount__c > 100 ORDER BY OrderNumber__c LIMIT 200 OFFSET k`` for k = 0, 200, 400, … (cycling), over one
   keep-alive httpx client with the server's CA bundle. Each request is one OData call from Interlink to the ERP.
4. **Direct** (the baseline, same run): the OData request Interlink sends for that query, ``GET /odata/Orders``
   with ``$select``, ``$filter``, ``$orderby``, ``$top=200``, ``$skip=k`` (and ``$count=true`` on the first page,
   as Interlink asks for it), over one keep-alive httpx client straight to the ERP.

Both are timed per request (after a warm-up round that also lets Interlink remember the rows' Ids); the table shows
the median and p95 latency and requests/s of each, and the ratio Interlink / direct on the median. The issue's
goal is an overhead under 1.3x; the script says whether it is met (it does not fail).

Flags: ``--orders N`` (default 20,000; ``--quick``: 5,000), ``--requests N`` (default 300; ``--quick``: 100),
``--latency-ms N`` (the ERP sleeps N ms before each answer, standing in for a remote system's network and work;
default 0, the hardest case for the ratio), ``--json``.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from interlink.testing import live_server, run_cli

ROOT = Path(__file__).resolve().parents[1]
PAGE = 200
SOQL = ("SELECT OrderNumber__c, CustomerNumber__c, Amount__c, Status__c FROM Order__x WHERE Status__c = 'Shipped' "
        "AND Amount__c > 100 ORDER BY OrderNumber__c LIMIT {limit} OFFSET {offset}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_erp(orders: int, latency_ms: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "examples" / "erp" / "odata_service.py"), "--port",
                                str(port), "--seed", str(orders), "--max-page-size", "2000",
                                "--latency-ms", str(latency_ms)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/odata/", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the example ERP did not start")
        time.sleep(0.1)


def _timed(send: Any, count: int) -> list[float]:
    latencies = []
    for index in range(count):
        started = time.perf_counter()
        send(index)
        latencies.append(time.perf_counter() - started)
    return latencies


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"median_ms": statistics.median(ordered) * 1000, "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000,
            "per_second": len(ordered) / sum(ordered)}


def run_benchmark(orders: int, requests: int, latency_ms: int = 0) -> dict[str, Any]:
    erp, erp_url = _start_erp(orders, latency_ms)
    try:
        with tempfile.TemporaryDirectory(prefix="interlink-bench-virtual-") as folder:
            data_dir = Path(folder)
            (data_dir / "metadata" / "dataSources").mkdir(parents=True)
            (data_dir / "metadata" / "dataSources" / "ERP.yaml").write_text(yaml.safe_dump(
                {"type": "odata4", "url": f"{erp_url}/odata", "paging": "client", "pageSize": 2000}))
            with live_server(data_dir) as server:
                run_cli("connect", "sync", "ERP", "--as", "Orders=Order", "--as", "OrderLines=OrderLine",
                        "--data-dir", str(data_dir), env={"INTERLINK_PROJECT_DIR": str(data_dir)})
                shipped = httpx.get(f"{erp_url}/odata/Orders/$count", params={
                    "$filter": "Status eq 'Shipped' and Amount gt 100"}).text
                pages = max(1, min(int(shipped) // PAGE, 10))
                headers = {"Authorization": f"Bearer {server.token()}"}
                verify = ssl.create_default_context(cafile=server.ca_bundle)
                with httpx.Client(base_url=server.url, headers=headers, verify=verify, timeout=60) as org, \
                        httpx.Client(base_url=erp_url, timeout=60) as direct:

                    def through_interlink(index: int) -> None:
                        soql = SOQL.format(limit=PAGE, offset=(index % pages) * PAGE)
                        answer = org.get("/services/data/v66.0/query", params={"q": soql})
                        answer.raise_for_status()
                        assert len(answer.json()["records"]) == PAGE

                    def straight(index: int) -> None:
                        params = {"$select": "OrderNumber,CustomerNumber,Amount,Status",
                                  "$filter": "Status eq 'Shipped' and Amount gt 100", "$orderby": "OrderNumber asc",
                                  "$top": str(PAGE), "$skip": str((index % pages) * PAGE)}
                        if index % pages == 0:
                            params["$count"] = "true"
                        answer = direct.get("/odata/Orders", params=params)
                        answer.raise_for_status()
                        assert len(answer.json()["value"]) == PAGE

                    _timed(through_interlink, pages * 2)  # warm-up: plans cached, Ids remembered
                    _timed(straight, pages * 2)
                    interlink_times = _timed(through_interlink, requests)
                    direct_times = _timed(straight, requests)
    finally:
        erp.terminate()
        erp.wait(timeout=10)
    report = {"orders": orders, "requests": requests, "page": PAGE, "latency_ms": latency_ms,
              "interlink": _summary(interlink_times),
              "direct": _summary(direct_times)}
    report["ratio"] = report["interlink"]["median_ms"] / report["direct"]["median_ms"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="5,000 orders, 100 requests")
    parser.add_argument("--latency-ms", type=int, default=0,
                        help="the ERP waits this long before each answer (a remote system's network and work)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    if options.quick:
        options.orders, options.requests = 5_000, 100
    report = run_benchmark(options.orders, options.requests, options.latency_ms)
    if options.json:
        print(json.dumps(report, indent=2))
        return
    print(f"External object query: {options.requests} requests of {PAGE} rows, {options.orders} ERP orders, "
          f"ERP latency +{options.latency_ms} ms")
    print(f"{'':<28}{'median ms':>12}{'p95 ms':>10}{'req/s':>10}")
    for name in ("interlink", "direct"):
        row = report[name]
        label = "Interlink (SOQL -> OData)" if name == "interlink" else "direct OData (baseline)"
        print(f"{label:<28}{row['median_ms']:>12.2f}{row['p95_ms']:>10.2f}{row['per_second']:>10.0f}")
    verdict = "met" if report["ratio"] < 1.3 else "NOT met"
    print(f"overhead ratio (median): {report['ratio']:.2f}x  (goal < 1.3x: {verdict})")


if __name__ == "__main__":
    main()
