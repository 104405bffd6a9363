"""The demo's gentle live traffic: a customer writes through the sandbox now and then, and
the message reaches Puente; stopping it stops the writing."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from puente.conversations.models import Message
from puente.demo import DemoOptions, Traffic
from tests.channels.conftest import Coex
from tests.waiting import wait_until


def inbound_count(coex: Coex) -> int:
    with coex.db.read(unscoped="test") as session:
        return (
            session.scalar(
                select(func.count()).select_from(Message).where(Message.direction == "inbound")
            )
            or 0
        )


def test_traffic_writes_as_customers_until_stopped(coex: Coex) -> None:
    coex.onboard(import_history=False)
    options = DemoOptions(traffic_min_seconds=0.05, traffic_max_seconds=0.1)
    traffic = Traffic(coex.sandbox_server.url, options, random.Random(3))
    traffic.start()
    try:
        wait_until(lambda: inbound_count(coex) >= 2, what="two customer messages")
    finally:
        traffic.stop_event.set()
        traffic.join(5)
    assert not traffic.is_alive()
    with coex.db.read(unscoped="test") as session:
        texts = list(session.scalars(select(Message.text).where(Message.direction == "inbound")))
    assert all(t for t in texts)
