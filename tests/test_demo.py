"""`puente demo` in its own process, on free ports with live traffic off: the login it
prints works, both numbers exist, the history came in with its original dates, and a
customer writing through the sandbox reaches Puente."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from puente.automation.kb_demo import DEMO_ENTRIES
from puente.sandbox.seed import DEMO_NUMBER
from tests.conftest import PG_URL, TEST_DB, free_port
from tests.webclient import WebClient

PUENTE = str(Path(sys.executable).with_name("puente"))


class DemoProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [PUENTE, "demo"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(pattern, line)
                if found:
                    return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("demo output lacks " + pattern + ":\n" + "\n".join(self.lines))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _fresh_pg_database() -> str:
    url = sa.engine.make_url(PG_URL).set(database=sa.engine.make_url(PG_URL).database + "_demo")
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
    admin.dispose()
    return url.render_as_string(hide_password=False)


def demo_env(tmp_path: Path) -> dict[str, str]:
    port, sandbox_port = free_port(), free_port()
    env = {
        **os.environ,
        "PUENTE_DATA_DIR": str(tmp_path / "var"),
        "PUENTE_PORT": str(port),
        "PUENTE_BASE_URL": f"http://127.0.0.1:{port}",
        "PUENTE_DEMO_SANDBOX_PORT": str(sandbox_port),
        "PUENTE_DEMO_TRAFFIC": "0",
        "PUENTE_DEMO_CHATS": "12",
        "PUENTE_DEMO_MESSAGES": "6",
        "PUENTE_LOG_LEVEL": "WARNING",
    }
    env.pop("PUENTE_DATABASE_URL", None)
    if TEST_DB == "postgres":
        env["PUENTE_DATABASE_URL"] = _fresh_pg_database()
    return env


@pytest.fixture
def demo(tmp_path: Path, pg_schema: str | None) -> Iterator[dict[str, Any]]:
    env = demo_env(tmp_path)
    process = DemoProcess(env)
    try:
        password = process.wait_line(r"Sign in:\s+(\S+)\s+/\s+(\S+)")
        token = process.wait_line(r"API token \(shown once\): (\S+)")
        yield {
            "url": f"http://127.0.0.1:{env['PUENTE_PORT']}",
            "sandbox": f"http://127.0.0.1:{env['PUENTE_DEMO_SANDBOX_PORT']}",
            "email": password.group(1),
            "password": password.group(2),
            "token": token.group(1),
            "process": process,
            "env": env,
        }
    finally:
        process.stop()


def _wait(predicate: Any, timeout: float = 60, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_demo_runs_puente_and_the_sandbox_seeded(demo: dict[str, Any]) -> None:
    with httpx.Client(base_url=demo["url"], timeout=30) as http:
        web = WebClient(http)
        page = web.login(demo["email"], demo["password"])
        assert page.status_code == 200
        assert "Tienda La Esquina" in page.text  # signed in, in the demo workspace
        wrong = WebClient(httpx.Client(base_url=demo["url"]))
        assert "Tienda La Esquina" not in wrong.login(demo["email"], "not-the-password").text

    api = httpx.Client(
        base_url=demo["url"] + "/api/v1",
        headers={"Authorization": f"Bearer {demo['token']}"},
        timeout=30,
    )
    with api:
        channels = {c["mode"]: c for c in api.get("/channels").json()}
        assert set(channels) == {"coexistence", "cloud_api"}
        coex = channels["coexistence"]
        assert coex["phone_number_id"] == DEMO_NUMBER and coex["throughput_mps"] == 20

        status = _wait(
            lambda: (
                (s := api.get(f"/channels/{coex['id']}/status").json())["progress"] == 100 and s
            ),
            what="the history import",
        )
        assert status["history_messages"] == 72 and status["contacts_synced"] > 0

        conversations = api.get(
            "/conversations", params={"channel_id": coex["id"], "limit": 100}
        ).json()["items"]
        assert len(conversations) == 12
        messages = api.get(f"/conversations/{conversations[-1]['id']}/messages").json()["items"]
        stamps = [dt.datetime.fromisoformat(m["timestamp"]) for m in messages]
        assert {m["source"] for m in messages} == {"history"}
        # Months of history, not all stamped at import time.
        assert min(stamps) < dt.datetime.now(dt.UTC) - dt.timedelta(days=1)

        with httpx.Client(base_url=demo["sandbox"] + "/_sandbox/api") as control:
            for phone, name in (("573001112233", "Lucía Gómez"), ("573001112244", "Raúl Díaz")):
                sent = control.post(
                    f"/numbers/{DEMO_NUMBER}/inbound",
                    json={"from": phone, "name": name, "text": "¿Abren hoy?"},
                )
                assert sent.status_code == 201, sent.text

        def conversation_of(phone: str) -> dict[str, Any] | None:
            found = api.get("/contacts", params={"phone": "+" + phone}).json()["items"]
            if not found:
                return None
            items = api.get(
                "/conversations", params={"channel_id": coex["id"], "limit": 100}
            ).json()["items"]
            return next((c for c in items if c["contact_id"] == found[0]["id"]), None)

        def texts(conversation_id: int) -> list[str]:
            items = api.get(f"/conversations/{conversation_id}/messages").json()["items"]
            return [m.get("text") or "" for m in items if m["direction"] == "outbound"]

        # The knowledge-base bot answers; the demo's two workflows (switched on) answer
        # out of hours (the demo's day is an inventory day) and hand the conversations
        # to the support team's two agents in turn.
        assignees = set()
        for phone in ("573001112233", "573001112244"):
            conversation = _wait(lambda p=phone: conversation_of(p), what="the conversation")
            sent = _wait(
                lambda c=conversation: (t := texts(c["id"])) and len(t) >= 2 and t,
                what="the bot's and the workflows' answers",
            )
            assert DEMO_ENTRIES[0][1] in sent
            assert any("fuera de horario" in text for text in sent)
            assigned = _wait(
                lambda p=phone: (c := conversation_of(p)) and c["assignee_id"],
                what="the round-robin assignment",
            )
            assignees.add(assigned)
        assert len(assignees) == 2  # one each

        templates = {t["name"] for t in api.get("/templates").json()["items"]}
        assert {"hello_world", "pedido_confirmado", "promo_mensual"} <= templates


def test_demo_restart_keeps_the_world_and_the_login(demo: dict[str, Any]) -> None:
    demo["process"].stop()
    again = DemoProcess(demo["env"])
    try:
        login = again.wait_line(r"Sign in:\s+(\S+)\s+/\s+(\S+)")
        assert login.group(2) == demo["password"]
        assert not any("API token" in line for line in again.lines)  # not seeded twice
        with httpx.Client(
            base_url=demo["url"] + "/api/v1",
            headers={"Authorization": f"Bearer {demo['token']}"},
        ) as api:
            assert len(api.get("/channels").json()) == 2
        with httpx.Client(base_url=demo["url"], timeout=30) as http:
            page = WebClient(http).login(demo["email"], demo["password"])
            assert "Tienda La Esquina" in page.text
    finally:
        again.stop()
