"""Outgoing webhooks' cost and latency (issue #18, "Speed"): what one endpoint subscribed to
message.created costs bench/process's ingest rate, and how long a delivery takes from its
transaction to the receiver's 2xx at 1,000 inbound messages per second.

`cost`: bench/process's measurement (its own functions: inbound messages stored as webhook
events, then the ingest worker's step `do_process_new_events` until the queue is empty) on
a fresh SQLite schema, without any endpoint (the baseline, same run) and with one enabled
endpoint subscribed to message.created pointing at a receiver in another process (a
`ThreadingHTTPServer` answering 200 at once) while the webhooks worker (`WebhookSender` in
the jobs Worker thread, as `puente serve` runs it) sends the deliveries as they commit.
Rounds alternate; medians. Every delivery must reach the receiver once.

`latency`: then, on the webhooks round's database, more inbound messages are stored at
`--rate` messages per second (POSTs of `--per-post`) while the ingest worker (its own step
in the jobs Worker thread) and the webhooks worker run as in `puente serve`. Latency is
measured per delivery from the payload's `timestamp` (written inside the transaction, just
before its commit: a little longer than from the commit itself) to the receiver's answer;
p50/p95/max, loss and duplicates. The burst of the cost phase (a backlog processed as fast
as possible) is reported apart: its latencies are how long the backlog took to drain.

    .venv/bin/python bench/webhooks_out.py [--quick] [--messages 20000] [--rounds 3]
        [--rate 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from process import PNID, body_of, generate, make_channel, make_runtime, run_processing
from puente.ingest.store import do_store_webhooks
from puente.ingest.worker import IngestProcessor
from puente.integrations.webhooks import service as hooks
from puente.integrations.webhooks.worker import WebhookSender
from puente.jobs import INGEST, WEBHOOKS, Worker
from puente.runtime import Runtime

TARGET_P95_MS = 500.0
TARGET_COST = 10.0  # % of bench/process's rate
PACED = "wamid.PACED"


# -- the receiver (another process, so it does not share Puente's GIL) ---------------------


def _receive(port: int, ready: Any, results: Any, stop: Any) -> None:
    seen: dict[str, tuple[bool, float]] = {}
    duplicates = [0]
    counts = {"burst": 0, "paced": 0}
    # The handler threads write while the loop below reads.
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()
            answered = time.time()
            event_id = self.headers.get("webhook-id") or ""
            payload = json.loads(body)
            written = dt.datetime.fromisoformat(payload["timestamp"]).timestamp()
            paced = str(payload["data"].get("wamid") or "").startswith(PACED)
            with lock:
                if event_id in seen:
                    duplicates[0] += 1
                    return
                seen[event_id] = (paced, (answered - written) * 1000)
                counts["paced" if paced else "burst"] += 1

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.timeout = 0.2
    ready.set()
    while not stop.is_set():
        server.handle_request()
        with lock:
            results["burst"], results["paced"] = counts["burst"], counts["paced"]
    with lock:
        results["burst_ms"] = [ms for paced, ms in seen.values() if not paced]
        results["paced_ms"] = [ms for paced, ms in seen.values() if paced]
        results["duplicates"] = duplicates[0]
    server.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(results: Any, key: str, count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while results.get(key, 0) < count and time.monotonic() < deadline:
        time.sleep(0.05)


# -- the phases ------------------------------------------------------------------------------


def paced_posts(seconds: float, rate: int, per_post: int, contacts: int) -> list[bytes]:
    posts = generate(int(seconds * rate), contacts, per_post, seed=13)
    for post in posts:
        for message in post:
            message["id"] = message["id"].replace("wamid.BENCH", PACED)
            message["timestamp"] = str(int(time.time()))
    return [body_of(p) for p in posts]


def feed(runtime: Runtime, bodies: list[bytes], rate: int, per_post: int) -> None:
    """Store one POST at a time at `rate` messages per second, as the webhook endpoint
    would, waking the ingest worker after each."""
    interval = per_post / rate
    start = time.monotonic()
    for n, body in enumerate(bodies):
        delay = start + n * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        with runtime.db.unit_of_work(unscoped="benchmark") as session:
            do_store_webhooks(session, [body])
        INGEST.wake()


def run_round(
    tmp: Path, bodies: list[bytes], args: argparse.Namespace, *, webhooks: bool
) -> dict[str, Any]:
    runtime = make_runtime(tmp)
    workspace_id, _channel_id = make_channel(runtime)
    with runtime.db.unit_of_work(unscoped="benchmark") as session:
        do_store_webhooks(session, bodies)
    if not webhooks:
        rate = args.messages / run_processing(runtime, args.batch)
        runtime.db.dispose()
        return {"rate": rate}

    hooks.configure(runtime.db, secrets=runtime.secrets, allow_private=True)
    port = _free_port()
    manager = multiprocessing.Manager()
    results = manager.dict()
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    receiver = multiprocessing.Process(target=_receive, args=(port, ready, results, stop))
    receiver.start()
    ready.wait(10)
    with runtime.db.unit_of_work(scope=workspace_id) as session:
        hooks.create_endpoint(
            session, url=f"http://127.0.0.1:{port}/hook", events=["message.created"]
        )
    sender = WebhookSender(runtime.db)
    sending = Worker("bench-webhooks", WEBHOOKS, sender.step, idle_seconds=0.2)
    sending.start()
    elapsed = run_processing(runtime, args.batch)
    _wait(results, "burst", args.messages, max(60.0, elapsed * 10))

    out: dict[str, Any] = {"rate": args.messages / elapsed}
    if args.seconds > 0:
        processor = IngestProcessor(runtime, batch_size=args.batch)
        ingest = Worker("bench-ingest", INGEST, processor.step, idle_seconds=0.05)
        ingest.start()
        paced = paced_posts(args.seconds, args.rate, args.per_post, args.contacts)
        feed(runtime, paced, args.rate, args.per_post)
        _wait(results, "paced", int(args.seconds * args.rate), 60.0)
        ingest.stop()
        ingest.join()
        out["paced_sent"] = int(args.seconds * args.rate)
    sending.stop()
    sending.join()
    stop.set()
    receiver.join(10)
    out["burst_ms"] = sorted(results.get("burst_ms", []))
    out["paced_ms"] = sorted(results.get("paced_ms", []))
    out["duplicates"] = results.get("duplicates", 0)
    manager.shutdown()
    runtime.db.dispose()
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(q / 100 * len(values)) - 1))
    return values[index]


def _line(name: str, values: list[float]) -> str:
    top = values[-1] if values else float("nan")
    return (
        f"  {name:<27} p50 {pct(values, 50):6.0f} ms  p95 {pct(values, 95):6.0f} ms  "
        f"max {top:6.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: 2,000 messages")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=2_000)
    parser.add_argument("--per-post", type=int, default=10)
    parser.add_argument("--batch", type=int, default=50, help="events per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="paced phase: messages/s")
    parser.add_argument("--seconds", type=float, default=20.0, help="paced phase's length")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.contacts, args.rounds, args.seconds = 2_000, 200, 1, 2.0

    posts = generate(args.messages, args.contacts, args.per_post)
    bodies = [body_of(p) for p in posts]
    base_rates: list[float] = []
    hook_rates: list[float] = []
    burst: list[float] = []
    paced: list[float] = []
    lost = duplicates = 0
    with tempfile.TemporaryDirectory(prefix="puente-bench-webhooks-") as tmp:
        for n in range(args.rounds):
            for webhooks in (False, True) if n % 2 == 0 else (True, False):
                where = Path(tmp) / f"r{n}-{'hooks' if webhooks else 'base'}"
                got = run_round(where, bodies, args, webhooks=webhooks)
                (hook_rates if webhooks else base_rates).append(got["rate"])
                if webhooks:
                    burst += got["burst_ms"]
                    paced += got["paced_ms"]
                    lost += args.messages - len(got["burst_ms"])
                    lost += got.get("paced_sent", 0) - len(got["paced_ms"])
                    duplicates += got["duplicates"]

    base, hooked = statistics.median(base_rates), statistics.median(hook_rates)
    cost = (1 - hooked / base) * 100
    burst.sort()
    paced.sort()
    print(
        f"webhooks_out: {args.messages} inbound messages in {len(posts)} POSTs from "
        f"{args.contacts} contacts, batch {args.batch}, {args.rounds} round(s), SQLite ({PNID})"
    )
    print(f"  baseline (no endpoint):     {base:9.0f} msg/s processed (median)")
    print(f"  one endpoint, worker on:    {hooked:9.0f} msg/s processed (median)")
    print(f"  cost:                       {cost:9.1f} %  (target at most {TARGET_COST:.0f} %)")
    print(_line("backlog drained, to 2xx:", burst))
    print(
        _line(f"{args.rate} msg/s, to 2xx:", paced) + f"  (target p95 under {TARGET_P95_MS:.0f} ms)"
    )
    print(f"  lost: {lost}  duplicated: {duplicates}")
    met = cost <= TARGET_COST and pct(paced, 95) < TARGET_P95_MS
    return 0 if lost == 0 and duplicates == 0 and met else 1


if __name__ == "__main__":
    sys.exit(main())
