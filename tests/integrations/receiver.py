"""The repository's example receiver (examples/webhook_receiver.py), loaded from its file
and served on a loopback port in a thread: what webhook tests point their endpoints at.
Its port is chosen first, since an endpoint's secret exists only once the endpoint (with
the receiver's URL) is saved."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.conftest import free_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "webhook_receiver_example", EXAMPLES / "webhook_receiver.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    @contextmanager
    def serving(self, secret: str) -> Iterator[Receiver]:
        """The example receiver on this port, verifying with `secret`: it answers 401 to a
        delivery signed with anything else, and keeps each verified event."""

        def keep(event: dict[str, Any], _headers: Mapping[str, str]) -> None:
            self.events.append(event)

        server = example_module().make_server(secret, self.port, on_event=keep)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
