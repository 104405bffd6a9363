"""Benchmark of the Meta sandbox: sends/s accepted on POST /messages and webhook updates/s emitted.

The sandbox runs in its own process (uvicorn, as `puente sandbox` does); this process is the load
generator (raw keep-alive HTTP/1.1 connections) and a tiny webhook receiver answering 200.
Usage: .venv/bin/python bench/sandbox.py [--sends 20000] [--connections 64] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

NUMBER = "106540352242922"
TOKEN = "bench-token"
VERIFY = "bench-verify"
SERVER = """
import sys, uvicorn
from puente.sandbox import SandboxConfig, create_sandbox_app
cfg = SandboxConfig(access_token="{token}", verify_token="{verify}", callback_url="{callback}",
                    batch_size={batch}, concurrency={concurrency}, status_delays=(0.0, 0.0, 0.0), freeze_gc=True)
run = lambda: uvicorn.run(create_sandbox_app(cfg), host="127.0.0.1", port={port},
                          log_level="warning", access_log=False)
if "{profile}":
    import cProfile
    cProfile.run("run()", "{profile}")
else:
    run()
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, so figures survive a machine shared with others."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def control(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/_sandbox/api{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as res:  # noqa: S310 (loopback only)
        return json.loads(res.read())


class Receiver:
    """Answers the handshake and every POST with 200, counting updates (changes)."""

    def __init__(self) -> None:
        self.updates = 0
        self.posts = 0
        self.first = 0.0
        self.last = 0.0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                if head.startswith(b"GET"):
                    query = head.split(b" ")[1].split(b"?", 1)[1].decode()
                    params = dict(p.split("=", 1) for p in query.split("&"))
                    if params.get("hub.verify_token") != VERIFY:
                        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                        continue
                    answer = params["hub.challenge"].encode()
                else:
                    now = time.perf_counter()
                    self.first = self.first or now
                    self.last = now
                    self.posts += 1
                    self.updates += body.count(b'"field":')
                    answer = b"ok"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
        except asyncio.CancelledError:
            writer.close()  # the benchmark is over; end quietly


async def send_load(port: int, total: int, connections: int) -> tuple[float, int, int]:
    ok = refused = 0
    counter = iter(range(total))

    async def worker() -> None:
        nonlocal ok, refused
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in counter:
            body = json.dumps(
                {
                    "messaging_product": "whatsapp",
                    "to": f"57300{i % 50000:07d}",
                    "type": "template",
                    "template": {"name": "hello_world", "language": {"code": "en_US"}},
                }
            ).encode()
            writer.write(
                b"POST /v23.0/%s/messages HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Bearer %s\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (NUMBER.encode(), TOKEN.encode(), len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            if head.startswith(b"HTTP/1.1 200"):
                ok += 1
            else:
                refused += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - start, ok, refused


async def main(args: argparse.Namespace) -> None:
    receiver = Receiver()
    hook = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    hook_port = hook.sockets[0].getsockname()[1]
    port = free_port()
    code = SERVER.format(
        token=TOKEN,
        verify=VERIFY,
        callback=f"http://127.0.0.1:{hook_port}/hook",
        batch=args.batch,
        concurrency=args.concurrency,
        port=port,
        profile=args.profile or "",
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(200):
            try:
                control(port, "GET", "/state")
                break
            except OSError:
                await asyncio.sleep(0.05)
        control(port, "PATCH", f"/numbers/{NUMBER}", {"mps": 100_000})
        control(port, "PATCH", "/config", {"pair_limit": 1_000_000, "verify_token": "hold"})
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        # Phase 1: sends only (webhooks held back by a failing handshake).
        cpu, own = cpu_seconds(proc.pid), cpu_seconds(os.getpid())
        elapsed, ok, refused = await send_load(port, args.sends, args.connections)
        cpu, own = cpu_seconds(proc.pid) - cpu, cpu_seconds(os.getpid()) - own
        print(
            f"sends accepted: {ok} in {elapsed:.2f}s = {ok / elapsed:,.0f} sends/s (refused {refused}); "
            f"sandbox CPU {cpu:.2f}s = {ok / cpu:,.0f} sends per CPU-second; "
            f"load generator CPU {own:.2f}s"
        )
        # Phase 2: release the queued status updates and time their delivery.
        queued = control(port, "GET", "/webhooks/stats")["pending"]
        start, cpu = time.perf_counter(), cpu_seconds(proc.pid)
        control(port, "PATCH", "/config", {"verify_token": VERIFY})
        while receiver.updates < queued:
            await asyncio.sleep(0.01)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds(proc.pid) - cpu
        print(
            f"webhook updates emitted: {receiver.updates} in {elapsed:.2f}s = "
            f"{receiver.updates / elapsed:,.0f} updates/s in {receiver.posts} POSTs (batch {args.batch}); "
            f"sandbox CPU {cpu:.2f}s"
        )
        # Phase 3: both at once, as during a Puente benchmark.
        before = receiver.updates
        start = time.perf_counter()
        elapsed, ok, _ = await send_load(port, args.sends // 2, args.connections)
        while receiver.updates < before + 3 * ok:
            await asyncio.sleep(0.01)
        total = time.perf_counter() - start
        print(
            f"mixed: {ok / elapsed:,.0f} sends/s while emitting; all {3 * ok} statuses "
            f"delivered in {total:.2f}s = {3 * ok / total:,.0f} updates/s"
        )
    finally:
        proc.terminate()
        proc.wait(10)
        hook.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sends", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--profile", help="write a cProfile of the sandbox process to this file")
    asyncio.run(main(parser.parse_args()))
