"""Fault test: the worker process is SIGKILLed again and again while workflow runs send,
wait and branch, and every run still ends with each of its steps' messages sent exactly
once.

The same real processes as tests/faults/test_worker_kill.py (its `deploy` harness): the
Meta sandbox, Puente's web process(es) and worker process(es). Each run of the workflow
sends a template, waits two seconds, branches on the contact's "grupo" field and sends
the branch's template. A step's message and the run's move past the step commit
together, so a kill before the commit leaves neither and the step is taken again, and
after it leaves both. What a kill leaves between the outbox's hand-over and Meta's answer
is shown as unknown, and the test plays the person who checks the phone and resends it,
as the broadcast kill test does.

PUENTE_FAULT_RUNS sets the size: 120 by default, what fits CI on a shared 2-core
machine (the number then sends 50 messages a second, so that the runs last through
several kills); the issue's 1,000 with PUENTE_FAULT_RUNS=1000, at the harness's pace.
Figures in BENCHMARKS.md.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select, update

from puente.automation.workflows.definition import parse_definition
from puente.automation.workflows.models import RunStatus, WorkflowRun
from puente.automation.workflows.service import (
    do_create_workflow,
    do_publish,
    do_set_enabled,
    do_start_run,
)
from puente.channels.models import Channel
from puente.contacts.models import Contact
from puente.conversations.models import Conversation, Message
from puente.db.base import utcnow
from puente.outbound.models import OutboxItem, OutboxState
from puente.sandbox.seed import DEMO_NUMBER
from tests.conftest import TEST_DB
from tests.faults.test_worker_kill import (  # noqa: F401 (a fixture)
    KILL_LOOP_SECONDS,
    Deployment,
    _new_events,
    _outbox,
    _sent_counts,
    _unhanded,
    deploy,
    wait_for,
)

RUNS = int(os.environ.get("PUENTE_FAULT_RUNS", "120"))
# Slow enough that a small size lasts through several kills; the full size keeps the
# harness's pace.
RUN_MPS = 50 if RUNS <= 200 else None
# Kills stop after this many at the default size: on a busy machine the runs last longer,
# each kill and restart made them last longer still (a worker's start costs a second of
# CPU), and one run of the test took 140 s of CPU. Eight is well above the three the test
# requires; PUENTE_FAULT_MAX_KILLS changes it, and the full size has no limit.
MAX_KILLS = int(os.environ.get("PUENTE_FAULT_MAX_KILLS", "8" if RUNS <= 200 else "1000000"))
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600 if RUNS <= 200 else 1800)]

WORKFLOW = {
    "trigger": {"type": "api"},
    "steps": [
        {
            "id": "hello",
            "type": "send_template",
            "template": {"name": "hello_world", "language": "en_US"},
            "next": "pause",
        },
        {"id": "pause", "type": "wait", "seconds": 2, "next": "which"},
        {
            "id": "which",
            "type": "branch",
            "conditions": {"rules": [{"field": "custom.grupo", "op": "eq", "value": "a"}]},
            "next": "group_a",
            "otherwise": "group_b",
        },
        {
            "id": "group_a",
            "type": "send_template",
            "template": {"name": "hello_world", "language": "en_US"},
        },
        {
            "id": "group_b",
            "type": "send_template",
            "template": {"name": "hello_world", "language": "en_US"},
        },
    ],
}


def _start_runs(d: Deployment) -> None:
    """The workflow, published and on, and a run for each of the seeded contacts (half
    of them in group "a"), each in its own conversation on the number."""
    with d.db.unit_of_work(scope=d.workspace_id) as session:
        contacts = session.scalars(
            select(Contact).where(Contact.workspace_id == d.workspace_id).order_by(Contact.id)
        ).all()
        contacts = contacts[:RUNS]
        for index, contact in enumerate(contacts):
            contact.custom_fields = {"grupo": "a" if index % 2 == 0 else "b"}
        session.execute(
            insert(Conversation),
            [
                {
                    "workspace_id": d.workspace_id,
                    "channel_id": d.channel_id,
                    "contact_id": c.id,
                    "status": "open",
                    "labels": [],
                }
                for c in contacts
            ],
        )
        rows = session.execute(
            select(Conversation.contact_id, Conversation.id).where(
                Conversation.workspace_id == d.workspace_id
            )
        ).all()
        conversations = {contact_id: conversation_id for contact_id, conversation_id in rows}
        workflow = do_create_workflow(
            session, d.workspace_id, name="Kill", definition=parse_definition(WORKFLOW)
        )
        do_publish(session, workflow)
        do_set_enabled(session, workflow, True)
        for contact in contacts:
            do_start_run(
                session,
                workflow,
                trigger="api",
                trigger_key=f"kill:{contact.id}",
                contact_id=contact.id,
                conversation_id=conversations[contact.id],
            )


def _active_runs(d: Deployment) -> int:
    with d.db.read(unscoped="test") as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    WorkflowRun.status.in_(
                        (RunStatus.READY.value, RunStatus.WAITING.value, RunStatus.ASKING.value)
                    )
                )
            )
            or 0
        )


def _run_killing(d: Deployment, victims: list[str], seed: int) -> dict[str, Any]:
    if RUN_MPS is not None:
        paced = httpx.patch(
            f"{d.sandbox}/_sandbox/api/numbers/{DEMO_NUMBER}", json={"mps": RUN_MPS}
        )
        assert paced.status_code == 200, paced.text
        with d.db.unit_of_work(unscoped="test") as session:
            session.execute(
                update(Channel).where(Channel.id == d.channel_id).values(throughput_mps=RUN_MPS)
            )
    _start_runs(d)
    rng = random.Random(seed)
    kills = 0
    deadline = time.monotonic() + KILL_LOOP_SECONDS

    def busy() -> bool:
        return bool(_active_runs(d) or _outbox(d.db, OutboxState.QUEUED) or _unhanded(d.db))

    while busy() and kills < MAX_KILLS:
        assert time.monotonic() < deadline, "the runs did not finish"
        victim = victims[kills % len(victims)]
        d.procs.wait_running(victim)
        time.sleep(rng.uniform(1.0, 2.0))
        d.procs.kill(victim)
        kills += 1
        d.procs.start(victim, ["worker"])
    # Past MAX_KILLS the workers finish in peace (what the kills left is what is checked).
    wait_for(lambda: not busy(), timeout=max(0.0, deadline - time.monotonic()), what="the runs")
    drained = httpx.post(f"{d.sandbox}/_sandbox/api/webhooks/drain", params={"timeout": 60})
    assert drained.json()["drained"], drained.text
    wait_for(lambda: _new_events(d.db) == 0, timeout=180, what="status webhooks processed")
    # What a kill left handed over but unanswered: checked on the phone, resent by hand.
    counts = _sent_counts(d.sandbox)
    with d.db.unit_of_work(unscoped="test") as session:
        orphans = session.execute(
            select(OutboxItem.id, OutboxItem.payload, Message.wamid)
            .join(Message, Message.id == OutboxItem.message_id)
            .where(OutboxItem.state == OutboxState.SENDING.value)
        ).all()
        session.execute(
            update(OutboxItem)
            .where(OutboxItem.id.in_([o.id for o in orphans]))
            .values(handed_at=utcnow().replace(year=2000))
        )
    api = d.webs[-1] + "/api/v1"
    for item_id, payload, wamid in orphans:
        wa_id = str(payload["to"]).lstrip("+")
        assert wamid is None, f"item {item_id} reached Meta"
        # The step's message is missing on the phone only if the phone shows fewer.
        assert counts[wa_id] < 2
        resent = httpx.post(f"{api}/outbox/{item_id}/resend", headers=d.auth, timeout=30)
        assert resent.status_code == 200, resent.text
    wait_for(
        lambda: _outbox(d.db, OutboxState.QUEUED) + _outbox(d.db, OutboxState.SENDING) == 0,
        timeout=120,
        what="resent items to go",
    )
    return {"kills": kills, "resent": len(orphans)}


def _assert_each_step_once(d: Deployment) -> None:
    counts = _sent_counts(d.sandbox)
    expected = {f"573{i:09d}" for i in range(RUNS)}
    assert set(counts) == expected, f"{len(expected - set(counts))} customers got nothing"
    wrong = {wa: n for wa, n in counts.items() if n != 2}
    assert not wrong, f"not exactly one message per sending step: {list(wrong.items())[:10]}"
    with d.db.read(unscoped="test") as session:
        statuses = Counter(session.scalars(select(WorkflowRun.status)))
    assert statuses == {RunStatus.DONE.value: RUNS}, statuses


def test_worker_killed_during_workflow_runs_on_sqlite(
    deploy: Callable[[int, int], Deployment],  # noqa: F811
) -> None:
    if TEST_DB == "postgres":
        pytest.skip("the SQLite variant runs on the SQLite leg")
    d = deploy(1, 1)
    try:
        outcome = _run_killing(d, ["worker0"], seed=3)
    except AssertionError:
        print(d.procs.tail("worker0"), d.procs.tail("web0"), sep="\n")
        raise
    assert outcome["kills"] >= 3, outcome
    _assert_each_step_once(d)
    print("kills", outcome["kills"], "resent by hand", outcome["resent"])


def test_two_webs_two_workers_on_postgres_killed_during_workflow_runs(
    deploy: Callable[[int, int], Deployment],  # noqa: F811
) -> None:
    if TEST_DB != "postgres":
        pytest.skip("the multi-process variant runs on the PostgreSQL leg")
    d = deploy(2, 2)
    try:
        outcome = _run_killing(d, ["worker0", "worker1"], seed=4)
    except AssertionError:
        print(d.procs.tail("worker0"), d.procs.tail("worker1"), d.procs.tail("web0"), sep="\n")
        raise
    assert outcome["kills"] >= 3, outcome
    _assert_each_step_once(d)
    print("kills", outcome["kills"], "resent by hand", outcome["resent"])
