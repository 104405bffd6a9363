"""A small receiver of Puente's outgoing webhooks: it verifies each delivery's signature
(the Standard Webhooks way, with the `standardwebhooks` package), prints the event, and
answers 401 to anything not signed with the endpoint's secret.

    pip install standardwebhooks
    PUENTE_WEBHOOK_SECRET=whsec_... python webhook_receiver.py --port 8787

Then add an endpoint in Puente (Settings > Webhooks) pointing at http://<this host>:8787/
and paste its secret here. A receiver on the same machine or network as Puente needs the
operator's PUENTE_WEBHOOKS_ALLOW_PRIVATE=true; see docs/webhooks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 1024 * 1024


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The delivery's event if it was signed with `secret` in the last five minutes;
    raises WebhookVerificationError otherwise. `body` is the request's raw bytes: parse
    the JSON only after verifying, from the same bytes."""
    event: dict[str, Any] = Webhook(secret).verify(body, dict(headers))
    return event


def make_server(
    secret: str,
    port: int = 8787,
    host: str = "127.0.0.1",
    on_event: Callable[[dict[str, Any], Mapping[str, str]], None] | None = None,
) -> ThreadingHTTPServer:
    """An HTTP server that verifies every POST and hands each verified event to
    `on_event` (by default, prints it). Start it with `serve_forever()`."""
    handle = on_event or print_event
    seen: set[str] = set()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self.answer(413, "too large")
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                event = verify(secret, body, headers)
            except WebhookVerificationError as exc:
                self.answer(401, f"bad signature: {exc}")
                return
            # Retries carry the same webhook-id: act on each event once.
            event_id = headers["webhook-id"]
            if event_id not in seen:
                seen.add(event_id)
                handle(event, headers)
            self.answer(200, "ok")

        def answer(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("content-type", "text/plain; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return ThreadingHTTPServer((host, port), Receiver)


def print_event(event: dict[str, Any], headers: Mapping[str, str]) -> None:
    print(f"{headers['webhook-id']} {event.get('type')}", flush=True)
    print(json.dumps(event, indent=2, ensure_ascii=False), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Receive and verify Puente's webhooks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    args = parser.parse_args()
    secret = os.environ.get("PUENTE_WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        sys.exit("set PUENTE_WEBHOOK_SECRET to the endpoint's secret (whsec_...)")
    server = make_server(secret, args.port, args.host)
    print(f"listening on http://{args.host}:{args.port}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
