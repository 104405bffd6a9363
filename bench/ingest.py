"""Webhook acknowledgement speed: signed POSTs to /webhooks/whatsapp on loopback.

Starts Puente (uvicorn, SQLite in a temporary directory) in a subprocess with the
processing workers OFF, so only verify + store + acknowledge is measured. A load
generator in another process keeps N keep-alive connections busy with signed message
webhooks (unique wamids) for a fixed time, then does the same against a bare 200-OK
route mounted on the same app, and prints both with their ratio. Afterwards the stored
rows are compared with what was acknowledged: lost and duplicated messages.

    .venv/bin/python bench/ingest.py [--connections 32] [--rounds 3] [--duration 4]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

APP_SECRET = "bench-app-secret"
WEBHOOK_PATH = "/webhooks/whatsapp"
BARE_PATH = "/bench/ok"


# -- the server process ----------------------------------------------------------------


def serve(port: int, data_dir: Path) -> None:
    import uvicorn
    from pydantic import SecretStr
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from puente.app import create_app
    from puente.config import Settings
    from puente.db.migrate import upgrade

    settings = Settings(
        data_dir=data_dir,
        meta_app_secret=SecretStr(APP_SECRET),
        meta_verify_token=SecretStr("bench"),
        run_workers=False,
        log_level="WARNING",
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.sqlalchemy_url())
    app = create_app(settings, run_workers=False)

    async def bare(_request: Request) -> Response:
        return Response(status_code=200)

    # Placed where Puente places its webhook route (first), so both pay the same routing.
    app.router.routes.insert(0, Route(BARE_PATH, bare, methods=["POST"]))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- the load generator process ----------------------------------------------------------


def message_body(n: int) -> bytes:
    wamid = f"wamid.BENCH{n:012d}"
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "contacts": [
                                {"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}
                            ],
                            "messages": [
                                {
                                    "from": "16505551234",
                                    "id": wamid,
                                    "timestamp": str(1749416383 + n),
                                    "type": "text",
                                    "text": {
                                        "body": f"Hola, quiero saber el estado del pedido {n}"
                                    },
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def build_request(path: str, body: bytes) -> bytes:
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(
    port: int, path: str, deadline: float, counter: list[int], out: dict[str, Any], ident: int
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies: list[float] = out["latencies"]
    acked: list[int] = out["acked"]
    try:
        while time.perf_counter() < deadline:
            n = counter[0]
            counter[0] += 1
            request = build_request(path, message_body(n))
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if head.startswith(b"HTTP/1.1 200"):
                acked.append(n)
            else:
                out["errors"] += 1
    finally:
        writer.close()


async def _load(
    port: int, path: str, connections: int, duration: float, first: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "acked": [], "errors": 0}
    counter = [first]
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(
        *(_connection(port, path, deadline, counter, out, i) for i in range(connections))
    )
    out["elapsed"] = time.perf_counter() - start
    out["sent"] = counter[0] - first
    return out


def load(port: int, path: str, connections: int, duration: float, first: int, out: Path) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_load(port, path, connections, duration, first))
    out.write_text(json.dumps(result))


# -- the driver ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    # Generous: importing the whole app takes a minute on a busy shared machine.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


def run_load(
    port: int, path: str, connections: int, duration: float, first: int, tmp: Path
) -> dict[str, Any]:
    out = tmp / f"load-{first}.json"
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            "--port",
            str(port),
            "--path",
            path,
            "--connections",
            str(connections),
            "--duration",
            str(duration),
            "--first",
            str(first),
            "--out",
            str(out),
        ],
        check=True,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def server_cpu(pid: int) -> float:
    """CPU seconds the server process has used (Linux; 0 elsewhere). Steadier than the
    rates on a shared machine: other processes slow the server down without adding to it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_load(
    pid: int, port: int, path: str, connections: int, duration: float, first: int, tmp: Path
) -> dict[str, Any]:
    before = server_cpu(pid)
    result = run_load(port, path, connections, duration, first, tmp)
    result["cpu"] = server_cpu(pid) - before
    return result


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "latencies": [x for r in runs for x in r["latencies"]],
        "acked": [x for r in runs for x in r["acked"]],
        "errors": sum(r["errors"] for r in runs),
        "elapsed": sum(r["elapsed"] for r in runs),
        "cpu": sum(r["cpu"] for r in runs),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, result: dict[str, Any]) -> tuple[float, float]:
    lat = result["latencies"]
    rate = len(result["acked"]) / result["elapsed"]
    cpu = result["cpu"] / max(1, len(result["acked"])) * 1e6
    print(
        f"{name:<22} {rate:>9.0f} req/s  p50 {percentile(lat, 0.50) * 1000:6.2f} ms  "
        f"p95 {percentile(lat, 0.95) * 1000:6.2f} ms  p99 {percentile(lat, 0.99) * 1000:6.2f} ms  "
        f"server CPU {cpu:6.1f} us/req  ({len(result['acked'])} acked, {result['errors']} errors)"
    )
    return rate, cpu


def stored_wamids(db_path: Path) -> list[str]:
    conn = sqlite3.connect(db_path)
    try:
        bodies = [row[0] for row in conn.execute("SELECT body FROM webhook_events")]
    finally:
        conn.close()
    wamids: list[str] = []
    for body in bodies:
        for entry in json.loads(body)["entry"]:
            for change in entry["changes"]:
                wamids += [m["id"] for m in change["value"].get("messages", [])]
    return wamids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--path", default=WEBHOOK_PATH, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.data_dir)
        return
    if args.load:
        load(args.port, args.path, args.connections, args.duration, args.first, args.out)
        return

    with tempfile.TemporaryDirectory(prefix="puente-bench-ingest-") as tmpdir:
        tmp = Path(tmpdir)
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                "--port",
                str(port),
                "--data-dir",
                str(tmp / "data"),
            ],
            env=env,
        )
        try:
            wait_ready(port, server)
            print(
                f"ingest bench: SQLite, workers off (acknowledgement only), "
                f"{args.connections} keep-alive connections, {args.rounds} alternating rounds "
                f"of {args.duration:.0f} s per route"
            )
            run_load(port, WEBHOOK_PATH, args.connections, 1.0, 10**9, tmp)  # warm-up
            run_load(port, BARE_PATH, args.connections, 1.0, 2 * 10**9, tmp)
            # Alternate the two routes so a change in machine load hits both alike.
            ingest_runs, bare_runs = [], []
            for r in range(args.rounds):
                ingest_runs.append(
                    timed_load(
                        server.pid,
                        port,
                        WEBHOOK_PATH,
                        args.connections,
                        args.duration,
                        r * 10**7,
                        tmp,
                    )
                )
                bare_runs.append(
                    timed_load(
                        server.pid,
                        port,
                        BARE_PATH,
                        args.connections,
                        args.duration,
                        3 * 10**9,
                        tmp,
                    )
                )
            ingest, bare = merge(ingest_runs), merge(bare_runs)
        finally:
            server.terminate()
            server.wait(30)
        ingest_rate, ingest_cpu = summary("signed webhook POST", ingest)
        bare_rate, bare_cpu = summary("bare 200-OK route", bare)
        print(f"ratio webhook/bare      {ingest_rate / bare_rate:.2f}")
        if ingest_cpu:
            print(f"server CPU bare/webhook {bare_cpu / ingest_cpu:.2f}")

        sent = {f"wamid.BENCH{n:012d}" for n in ingest["acked"]}
        stored = stored_wamids(tmp / "data" / "puente.sqlite3")
        lost = len(sent - set(stored))
        duplicated = len(stored) - len(set(stored))
        print(
            f"acknowledged {len(sent)} (+ warm-up), stored {len(stored)} rows: "
            f"lost {lost}, duplicated {duplicated}"
        )
        if lost or duplicated:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
