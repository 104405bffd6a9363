"""GET /metrics with 100 numbers: how long a scrape takes once a web process and three
worker processes have written a busy installation's series (100 numbers' outbox counters,
Meta's error codes, request timings for 60 routes, a dozen worker heartbeats), beside
GET /healthz in the same run as the baseline (the same server, HTTP and middleware, no
metrics work). Target: p95 under 50 ms.

    .venv/bin/python bench/metrics.py [--quick] [--requests 500] [--numbers 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
TARGET_MS = 50.0

# One worker process's share of a busy day: every number sends, some sends fail with
# one of a few codes, every route was asked, every worker loop beats.
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from puente import metrics
    numbers, routes = int(sys.argv[2]), int(sys.argv[3])
    metrics.use_directory(Path(sys.argv[1]))
    m = metrics.get()
    for n in range(numbers):
        label = metrics.channel_label(1000 + n)
        m.outbox_queued.labels(channel=label).inc(500)
        m.outbox_sent.labels(channel=label).inc(490)
        m.outbox_failed.labels(channel=label).inc(3)
    for code in (131026, 131047, 131049, 130429, 131000, 131056, 100, 190):
        metrics.meta_error(code)
    for state in ("done", "partial", "failed"):
        m.webhooks_processed.labels(state=state).inc(1000)
    for lag in (0.01, 0.2, 3.0):
        m.webhook_lag.observe(lag)
    for r in range(routes):
        route = f"/api/v1/things{r}/{{thing_id}}"
        for method in ("GET", "POST"):
            m.http_requests.labels(method=method, route=route, status="200").inc()
        m.http_latency.labels(route=route).observe(0.02)
    for state in ("queued", "skipped"):
        m.broadcast_recipients.labels(state=state).inc(100)
    for outcome in ("done", "failed", "stopped"):
        m.workflow_runs.labels(outcome=outcome).inc(10)
    for w in range(12):
        metrics.beat(f"puente-worker-{w}")
    print("ready", flush=True)
    sys.stdin.read()  # alive (its heartbeats count) until the bench closes our stdin
    """
)


def timings(client: httpx.Client, path: str, count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        answer = client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke size: 50 requests")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--numbers", type=int, default=100)
    parser.add_argument("--routes", type=int, default=60)
    parser.add_argument("--writers", type=int, default=3, help="worker processes")
    args = parser.parse_args()
    requests = 50 if args.quick else args.requests
    port = 18000 + os.getpid() % 1000
    with tempfile.TemporaryDirectory(prefix="puente-bench-metrics-") as tmp:
        data = Path(tmp) / "data"
        env = {**os.environ, "PUENTE_DATA_DIR": str(data), "PUENTE_LOG_LEVEL": "WARNING"}
        for name in ("PUENTE_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "PUENTE_METRICS_TOKEN"):
            env.pop(name, None)
        server = subprocess.Popen(
            [str(BIN / "puente"), "serve", "--no-workers", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        writers: list[subprocess.Popen[str]] = []
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=30) as client:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline or server.poll() is not None:
                        print("puente serve did not start", file=sys.stderr)
                        return 1
                    time.sleep(0.2)
                for _ in range(args.writers):
                    writer = subprocess.Popen(
                        [
                            sys.executable,
                            "-c",
                            WRITER,
                            str(data / "metrics"),
                            str(args.numbers),
                            str(args.routes),
                        ],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    writers.append(writer)
                    assert writer.stdout is not None
                    assert writer.stdout.readline().strip() == "ready"
                page = client.get("/metrics").text
                series = sum(1 for line in page.splitlines() if line and line[0] != "#")
                files = len(list((data / "metrics").glob("*.db")))
                timings(client, "/metrics", 5)  # warm-up
                health: list[float] = []
                scrape: list[float] = []
                for _ in range(requests // 10):  # interleaved: both see the same machine
                    health += timings(client, "/healthz", 10)
                    scrape += timings(client, "/metrics", 10)
        finally:
            for writer in writers:
                if writer.stdin is not None:
                    writer.stdin.close()
                writer.wait(30)
            server.terminate()
            server.wait(30)
    print(
        f"{args.numbers} numbers, {args.writers} worker processes + the web process: "
        f"{series} series from {files} files; {len(scrape)} requests each "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"{'':12} {'median ms':>10} {'p95 ms':>10}")
    print(f"{'/healthz':12} {statistics.median(health):10.1f} {p95(health):10.1f}  (baseline)")
    print(f"{'/metrics':12} {statistics.median(scrape):10.1f} {p95(scrape):10.1f}")
    met = p95(scrape) < TARGET_MS
    print(f"target: /metrics p95 under {TARGET_MS:.0f} ms: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
