"""Workflows at work, end to end: customers write from the sandbox's phones, a live Puente
with its workers runs the published workflows, and the phones receive what the steps
send. A keyword starts a menu question whose answer picks the branch; a wrong answer
is asked again once, then goes to the "no valid answer" branch; the owner answering
from the phone makes the workflow step back; a workflow's own sends never start it
again, and an HTTP step's failure takes its failure branch."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from puente.accounts.gate import Actor
from puente.accounts.models import Workspace
from puente.automation.workflows.definition import parse_definition
from puente.automation.workflows.models import RunStatus, Workflow, WorkflowRun, WorkflowRunStep
from puente.automation.workflows.service import (
    do_create_workflow,
    do_publish,
    do_set_enabled,
)
from puente.contacts.models import Contact
from puente.conversations.collab import do_close
from puente.conversations.models import Conversation, Message
from tests.channels.conftest import NUMBER, Coex, make_coex  # noqa: F401 (a fixture)
from tests.waiting import wait_until

LUCIA, PEDRO, RAUL = "573001110001", "573001110002", "573001110003"

MENU: dict[str, Any] = {
    "trigger": {"type": "message_received", "match": "keyword", "keywords": ["precio", "catálogo"]},
    "steps": [
        {
            "id": "menu",
            "type": "question",
            "text": "Hola {contact.name|}, ¿qué buscas?",
            "options": [
                {"id": "ropa", "title": "Ropa", "next": "ropa"},
                {"id": "zapatos", "title": "Zapatos", "next": "zapatos"},
            ],
            "retry_text": "Elige Ropa o Zapatos, por favor.",
            "on_invalid": "humano",
        },
        {"id": "ropa", "type": "send_message", "text": "La ropa está en tienda.example/ropa"},
        {"id": "zapatos", "type": "send_message", "text": "Zapatos: tienda.example/zapatos"},
        {"id": "humano", "type": "add_tag", "tag": "necesita-ayuda", "next": "aviso"},
        {"id": "aviso", "type": "send_message", "text": "Te escribe una persona en breve."},
    ],
}


@pytest.fixture
def live(make_coex: Callable[..., Coex]) -> Coex:  # noqa: F811
    live = make_coex()
    live.onboard(import_history=False)
    return live


def install(live: Coex, definition: dict[str, Any], name: str = "Menú") -> int:
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        workflow = do_create_workflow(
            session, live.workspace_id, name=name, definition=parse_definition(definition)
        )
        do_publish(session, workflow)
        do_set_enabled(session, workflow, True)
        return workflow.id


def customer_writes(live: Coex, sender: str, text: str, **extra: Any) -> str:
    body = {"from": sender, "name": "Lucía", "text": text, **extra}
    res = live.control.post(f"/numbers/{NUMBER}/inbound", json=body)
    assert res.status_code == 201, res.text
    return str(res.json()["id"])


def phone_received(live: Coex, wa_id: str) -> list[str]:
    """What the customer's phone shows from the business, in order: texts, and a
    question's text with its buttons."""
    chat = live.control.get(f"/numbers/{NUMBER}/chats/{wa_id}").json()
    shown = []
    for m in chat:
        if m["direction"] != "out":
            continue
        content = m["content"]
        if "text" in content:
            shown.append(content["text"]["body"])
        elif "interactive" in content:
            buttons = content["interactive"]["action"].get("buttons", [])
            titles = [b["reply"]["title"] for b in buttons]
            shown.append(content["interactive"]["body"]["text"] + " " + str(titles))
    return shown


def runs(live: Coex) -> list[WorkflowRun]:
    with live.db.read(unscoped="test") as session:
        found = list(session.scalars(select(WorkflowRun).order_by(WorkflowRun.id)))
        for run in found:
            session.expunge(run)
        return found


def tags_of(live: Coex, wa_id: str) -> list[str]:
    from puente.contacts.service import tags_of as contact_tags

    with live.db.read(unscoped="test") as session:
        contact = session.scalars(select(Contact).where(Contact.wa_id == wa_id)).one()
        return contact_tags(session, [contact.id])[contact.id]


def test_a_keyword_asks_and_the_answer_picks_the_branch(live: Coex) -> None:
    install(live, MENU)
    customer_writes(live, LUCIA, "Hola! cuál es el PRECIO?")
    question = "Hola Lucía, ¿qué buscas? ['Ropa', 'Zapatos']"
    wait_until(lambda: phone_received(live, LUCIA) == [question], what="the question")
    # The customer taps the button: Meta sends the button's id and title.
    customer_writes(
        live,
        LUCIA,
        "",
        type="interactive",
        payload={"type": "button_reply", "button_reply": {"id": "zapatos", "title": "Zapatos"}},
    )
    wait_until(
        lambda: phone_received(live, LUCIA) == [question, "Zapatos: tienda.example/zapatos"],
        what="the branch's answer",
    )
    (run,) = runs(live)
    assert run.status == RunStatus.DONE.value
    assert run.variables["answers"] == {"menu": "Zapatos"}

    # A message without the keyword starts nothing; typing the option's text works too.
    customer_writes(live, PEDRO, "buenas tardes")
    customer_writes(live, PEDRO, "y el catalogo?")  # accents and case do not matter
    wait_until(lambda: len(phone_received(live, PEDRO)) == 1, what="Pedro's question")
    customer_writes(live, PEDRO, "ropa")
    wait_until(
        lambda: phone_received(live, PEDRO)[-1] == "La ropa está en tienda.example/ropa",
        what="Pedro's branch",
    )
    assert len(runs(live)) == 2


def test_a_wrong_answer_is_asked_again_once_then_goes_to_its_branch(live: Coex) -> None:
    install(live, MENU)
    customer_writes(live, RAUL, "precio")
    wait_until(lambda: len(phone_received(live, RAUL)) == 1, what="the question")
    customer_writes(live, RAUL, "no sé")
    wait_until(
        lambda: phone_received(live, RAUL)[-1].startswith("Elige Ropa o Zapatos"),
        what="the question asked again",
    )
    customer_writes(live, RAUL, "camisas")
    wait_until(
        lambda: phone_received(live, RAUL)[-1] == "Te escribe una persona en breve.",
        what="the no-valid-answer branch",
    )
    assert tags_of(live, RAUL) == ["necesita-ayuda"]
    with live.db.read(unscoped="test") as session:
        steps = session.scalars(select(WorkflowRunStep.step_id).order_by(WorkflowRunStep.id)).all()
    assert steps == ["menu", "menu", "menu", "humano", "aviso"]


def test_the_owner_answering_from_the_phone_makes_the_workflow_step_back(live: Coex) -> None:
    install(live, MENU)
    customer_writes(live, LUCIA, "precio")
    wait_until(lambda: len(phone_received(live, LUCIA)) == 1, what="the question")
    res = live.control.post(
        f"/numbers/{NUMBER}/owner/messages", json={"to": LUCIA, "text": "Hola Lucía, te ayudo yo"}
    )
    assert res.status_code in (200, 201), res.text
    wait_until(
        lambda: any(m["source"] == "business_app" for m in messages(live, LUCIA)),
        what="the owner's echo stored",
    )
    customer_writes(live, LUCIA, "ropa")
    wait_until(lambda: runs(live)[0].status == RunStatus.STOPPED.value, what="the run stepped back")
    assert "person" in (runs(live)[0].error or "")
    # Nothing more went to the customer from the workflow: only the question.
    assert [m for m in messages(live, LUCIA) if m["source"] == "bot"] == [messages(live, LUCIA)[1]]


def messages(live: Coex, wa_id: str) -> list[dict[str, Any]]:
    with live.db.read(unscoped="test") as session:
        rows = session.execute(
            select(Message.source, Message.text)
            .join(Contact, Contact.id == Message.contact_id)
            .where(Contact.wa_id == wa_id)
            .order_by(Message.id)
        ).all()
    return [dict(row._mapping) for row in rows]


def test_a_workflows_own_close_does_not_start_it_again(live: Coex) -> None:
    closing = {
        "trigger": {"type": "conversation_closed"},
        "steps": [
            {"id": "reopen", "type": "reopen", "next": "bye"},
            {"id": "bye", "type": "close"},
        ],
    }
    install(live, closing, name="Cierre")
    customer_writes(live, LUCIA, "hola")
    wait_until(lambda: len(messages(live, LUCIA)) == 1, what="the message")
    # An agent closes it (as the inbox's Close button does).
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        conversation = session.scalars(select(Conversation)).one()
        do_close(session, Actor(workspace_id=live.workspace_id), conversation)
    wait_until(lambda: runs(live) and runs(live)[0].status == "done", what="the run done")
    assert len(runs(live)) == 1  # its own close started nothing


@pytest.fixture
def endpoint() -> Iterator[dict[str, Any]]:
    """A small HTTP endpoint for HTTP steps: answers JSON, or 500 when asked."""
    seen: dict[str, Any] = {"bodies": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            seen["bodies"].append(body)
            status = 500 if self.path.endswith("/broken") else 200
            payload = json.dumps({"order": {"state": "enviado", "eta": "mañana"}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield seen
    server.shutdown()


def _allow_private(live: Coex, allowed: bool) -> None:
    with live.db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, live.workspace_id)
        assert workspace is not None
        workspace.settings = {**(workspace.settings or {}), "workflows_allow_private_http": allowed}


def _order_workflow(url: str) -> dict[str, Any]:
    return {
        "trigger": {"type": "message_received", "match": "keyword", "keywords": ["pedido"]},
        "steps": [
            {
                "id": "lookup",
                "type": "http",
                "url": url,
                "body": {"phone": "{contact.phone}"},
                "next": "tell",
                "on_failure": "sorry",
            },
            {
                "id": "tell",
                "type": "send_message",
                "text": "Tu pedido está {http.lookup.order.state}, llega {http.lookup.order.eta}.",
            },
            {"id": "sorry", "type": "send_message", "text": "No pude consultar tu pedido."},
        ],
    }


def test_an_http_step_saves_the_response_and_fails_to_its_branch(
    live: Coex, endpoint: dict[str, Any]
) -> None:
    _allow_private(live, True)
    install(live, _order_workflow(endpoint["url"] + "/orders"), name="Pedido")
    customer_writes(live, LUCIA, "mi pedido?")
    wait_until(
        lambda: phone_received(live, LUCIA) == ["Tu pedido está enviado, llega mañana."],
        what="the order's state",
    )
    assert endpoint["bodies"] == [{"phone": "+" + LUCIA}]

    with live.db.unit_of_work(unscoped="test") as session:
        for workflow in session.scalars(select(Workflow)):
            workflow.enabled = False
    install(live, _order_workflow(endpoint["url"] + "/broken"), name="Pedido roto")
    customer_writes(live, PEDRO, "pedido")
    wait_until(
        lambda: phone_received(live, PEDRO) == ["No pude consultar tu pedido."],
        what="the failure branch",
    )


def test_a_loopback_address_is_refused_unless_the_workspace_allows_it(
    live: Coex, endpoint: dict[str, Any]
) -> None:
    install(live, _order_workflow(endpoint["url"] + "/orders"), name="Pedido")
    customer_writes(live, LUCIA, "pedido")
    wait_until(
        lambda: phone_received(live, LUCIA) == ["No pude consultar tu pedido."],
        what="the failure branch",
    )
    assert endpoint["bodies"] == []  # never called
    with live.db.read(unscoped="test") as session:
        failed = session.scalars(
            select(WorkflowRunStep.detail).where(WorkflowRunStep.outcome == "failed")
        ).all()
    assert any("private or local" in detail for detail in failed)


FOLLOW_UP: dict[str, Any] = {
    "trigger": {"type": "manual"},
    "steps": [{"id": "hello", "type": "send_message", "text": "¿Seguimos con tu pedido?"}],
}


def _start_by_hand(live: Coex, workflow_id: int, wa_id: str) -> int:
    from puente.automation.workflows.service import access_workflow, do_start_manual_run

    with live.db.unit_of_work(scope=live.workspace_id) as session:
        conversation = session.scalars(
            select(Conversation).join(Contact).where(Contact.wa_id == wa_id)
        ).one()
        contact = session.get(Contact, conversation.contact_id)
        assert contact is not None
        run = do_start_manual_run(
            session,
            access_workflow(session, live.workspace_id, workflow_id),
            contact=contact,
            conversation=conversation,
            actor=Actor(workspace_id=live.workspace_id),
        )
        return run.id


def _close_window(live: Coex, wa_id: str) -> None:
    with live.db.unit_of_work(unscoped="test") as session:
        conversation = session.scalars(
            select(Conversation).join(Contact).where(Contact.wa_id == wa_id)
        ).one()
        conversation.window_expires_at = conversation.window_expires_at - dt.timedelta(days=2)


def _run(live: Coex, run_id: int) -> WorkflowRun:
    found = [r for r in runs(live) if r.id == run_id]
    return found[0]


def test_outside_the_24_hour_window_a_text_step_fails_visibly_and_can_be_retried(
    live: Coex,
) -> None:
    from puente.automation.workflows.service import access_run, do_retry_run

    workflow_id = install(live, FOLLOW_UP, name="Seguimiento")
    customer_writes(live, LUCIA, "hola")
    wait_until(lambda: len(messages(live, LUCIA)) == 1, what="the message")
    _close_window(live, LUCIA)
    run_id = _start_by_hand(live, workflow_id, LUCIA)
    wait_until(lambda: _run(live, run_id).status == RunStatus.FAILED.value, what="the failure")
    assert "window" in (_run(live, run_id).error or "")
    assert phone_received(live, LUCIA) == []  # nothing went

    # The customer writes again (the window opens) and the run is retried: it sends.
    customer_writes(live, LUCIA, "sigo aquí")
    wait_until(lambda: len(messages(live, LUCIA)) == 2, what="the second message")
    with live.db.unit_of_work(scope=live.workspace_id) as session:
        do_retry_run(session, access_run(session, live.workspace_id, run_id))
    wait_until(
        lambda: phone_received(live, LUCIA) == ["¿Seguimos con tu pedido?"], what="the retry"
    )
    assert _run(live, run_id).status == RunStatus.DONE.value


def test_outside_the_window_a_text_step_with_a_template_fallback_sends_the_template(
    live: Coex,
) -> None:
    with_fallback = {
        "trigger": {"type": "manual"},
        "steps": [
            {
                "id": "hello",
                "type": "send_message",
                "text": "¿Seguimos con tu pedido?",
                "template": {"name": "hello_world", "language": "en_US"},
            }
        ],
    }
    synced = live.api.post("/templates/sync")  # the number's approved templates
    assert synced.status_code == 200, synced.text
    workflow_id = install(live, with_fallback, name="Seguimiento")
    customer_writes(live, LUCIA, "hola")
    wait_until(lambda: len(messages(live, LUCIA)) == 1, what="the message")
    _close_window(live, LUCIA)
    run_id = _start_by_hand(live, workflow_id, LUCIA)
    wait_until(lambda: _run(live, run_id).status == RunStatus.DONE.value, what="the run")

    def sent() -> list[str]:
        chat = live.control.get(f"/numbers/{NUMBER}/chats/{LUCIA}").json()
        return [m["content"]["template"]["name"] for m in chat if m["direction"] == "out"]

    wait_until(lambda: sent() == ["hello_world"], what="the template on the phone")
