"""The Workflows pages over HTTP, signed in through the login form: a supervisor creates a
workflow, saves a keyword trigger and a question with two answers each going its own way,
is refused at publish with each problem named beside its step, publishes, switches it on,
exports it and imports it back; runs are listed with their steps and a failed one
retried; an agent may not open any of it. And the builder's form read into a definition,
as a pure function, and as the page itself posts it back."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from puente.accounts.models import Workspace
from puente.app import create_app
from puente.automation.workflows import checks, service
from puente.automation.workflows.definition import Definition, Step, Trigger, parse_definition
from puente.automation.workflows.models import RunStatus, Workflow, WorkflowRun, WorkflowRunStep
from puente.config import Settings
from puente.db.session import Database
from puente.errors import InvalidInput
from puente.outbound.models import MessageTemplate
from puente.web.workflows import words
from puente.web.workflows.form import (
    STEP_FIELDS,
    TRIGGER_FIELDS,
    apply_action,
    definition_data,
    definition_from_form,
    editor_data,
)
from tests.factories import (
    PASSWORD,
    make_channel,
    make_contact,
    make_conversation,
    make_team,
    make_user,
    make_workspace,
)
from tests.webclient import WebClient

# -- the form, as a pure function ----------------------------------------------------------------

KEYWORD_QUESTION: dict[str, Any] = {
    "name": "Precios",
    "trigger.type": "message_received",
    "trigger.match": "keyword",
    "trigger.keywords": "precio\r\n  cuánto cuesta \r\n\r\n",
    "trigger.keyword_mode": "contains",
    "trigger.conditions.match": "all",
    "trigger.conditions.r0.field": "",  # the page's empty row
    "trigger.conditions.r0.op": "eq",
    "trigger.conditions.r0.value": "",
    "s0.id": "question_1",
    "s0.type": "question",
    "s0.title": "Menú",
    "s0.text": "¿Qué te interesa?\r\nElige una opción.",
    "s0.o0.id": "",
    "s0.o0.title": "Ropa",
    "s0.o0.next": "send_message_1",
    "s0.o1.id": "",
    "s0.o1.title": " Zapatos ",
    "s0.o1.next": "send_message_2",
    "s0.o2.id": "",
    "s0.o2.title": "",  # the page's empty answer
    "s0.o2.next": "",
    "s0.timeout_minutes": "30",
    "s0.on_timeout": "",
    "s0.next": "",
    "s0.minutes": "5",  # a field questions do not use: left out
    "s1.id": "send_message_1",
    "s1.type": "send_message",
    "s1.text": "Tenemos ropa nueva, {contact.name|amigo}.",
    "s1.next": "",
    "s1.template": "",
    "s2.id": "send_message_2",
    "s2.type": "send_message",
    "s2.text": "Zapatos en oferta.",
    "s2.when.match": "any",
    "s2.when.r0.field": "contact.tags",
    "s2.when.r0.op": "contains",
    "s2.when.r0.value": "vip",
    "s2.when.r1.field": "custom.visits",
    "s2.when.r1.op": "gt",
    "s2.when.r1.value": "3",
    "s2.when.r2.field": "",
    "s2.when.r2.op": "eq",
    "s2.when.r2.value": "",
}


def test_the_form_becomes_the_definition_it_shows() -> None:
    definition = definition_from_form(KEYWORD_QUESTION)
    trigger = definition.trigger
    assert (trigger.type, trigger.match, trigger.keyword_mode) == (
        "message_received",
        "keyword",
        "contains",
    )
    assert trigger.keywords == ["precio", "cuánto cuesta"]
    assert trigger.conditions is None  # an empty row is no condition
    question, clothes, shoes = definition.steps
    assert (question.id, question.type, question.title) == ("question_1", "question", "Menú")
    assert question.text == "¿Qué te interesa?\nElige una opción."  # CRLF from the browser
    assert [(o.id, o.title, o.next) for o in question.options] == [
        ("option_1", "Ropa", "send_message_1"),
        ("option_2", "Zapatos", "send_message_2"),
    ]
    assert (question.timeout_minutes, question.on_timeout, question.minutes) == (30, None, None)
    assert clothes.text == "Tenemos ropa nueva, {contact.name|amigo}." and clothes.next is None
    assert shoes.when is not None and shoes.when.match == "any"
    assert [(r.field, r.op, r.value) for r in shoes.when.rules] == [
        ("contact.tags", "contains", "vip"),
        ("custom.visits", "gt", 3),
    ]


def test_each_step_type_keeps_only_its_own_fields() -> None:
    form = {
        "trigger.type": "no_reply",
        "trigger.minutes": "45",
        "trigger.waiting_on": "customer",
        "trigger.keywords": "ignored",
        "trigger.channel_ids": ["3", "7"],
        "s0.id": "call",
        "s0.type": "http",
        "s0.method": "GET",
        "s0.url": "https://example.com/orders/{contact.phone}",
        "s0.headers": "Authorization: Bearer abc\nX-Shop:  esquina ",
        "s0.body": '{"phone": "{contact.phone}", "n": 2}',
        "s0.timeout_seconds": "2,5",
        "s0.on_failure": "apology",
        "s0.text": "not an http step's",
        "s0.next": "check",
        "s1.id": "check",
        "s1.type": "branch",
        "s1.conditions.match": "all",
        "s1.conditions.r0.field": "http.call.status",
        "s1.conditions.r0.op": "in",
        "s1.conditions.r0.value": "paid, sent,",
        "s1.conditions.r1.field": "contact.consent",
        "s1.conditions.r1.op": "exists",
        "s1.conditions.r1.value": "whatever",
        "s1.next": "assign",
        "s1.otherwise": "apology",
        "s1.on_failure": "apology",  # a branch cannot fail: left out
        "s2.id": "assign",
        "s2.type": "assign",
        "s2.agent_id": "",
        "s2.team_id": "12",
        "s3.id": "apology",
        "s3.type": "send_template",
        "s3.template": "disculpa|es_MX",
        "s3.template_variables": "body.1 = {contact.name|cliente}\n",
        "s4.id": "pause",
        "s4.type": "wait",
        "s4.until": "09:30",
        "s4.minutes": "",
    }
    definition = definition_from_form(form)
    trigger = definition.trigger
    assert (trigger.minutes, trigger.waiting_on, trigger.keywords) == (45, "customer", [])
    assert trigger.channel_ids == [3, 7]
    call, check, assign, apology, pause = definition.steps
    assert (call.method, call.url, call.timeout_seconds) == (
        "GET",
        "https://example.com/orders/{contact.phone}",
        2.5,
    )
    assert call.headers == {"Authorization": "Bearer abc", "X-Shop": "esquina"}
    assert call.body == {"phone": "{contact.phone}", "n": 2}
    assert (call.text, call.next, call.on_failure) == ("", "check", "apology")
    assert check.conditions is not None
    assert [(r.op, r.value) for r in check.conditions.rules] == [
        ("in", ["paid", "sent"]),
        ("exists", None),
    ]
    assert (check.next, check.otherwise, check.on_failure) == ("assign", "apology", None)
    assert (assign.agent_id, assign.team_id) == (None, 12)
    assert apology.template is not None
    assert (apology.template.name, apology.template.language) == ("disculpa", "es_MX")
    assert apology.template.variables == {"body.1": "{contact.name|cliente}"}
    assert (pause.until, pause.minutes) == ("09:30", None)


def test_the_builder_knows_every_field_of_a_step_and_a_trigger() -> None:
    """A field added to the definition needs its place in the builder, or saving a
    workflow from the page would drop it."""
    step_fields = {"id", "type", "title", "when"} | {
        f for fields in STEP_FIELDS.values() for f in fields
    }
    assert set(Step.model_fields) == step_fields
    trigger_fields = {"type", "channel_ids", "conditions"} | {
        f for fields in TRIGGER_FIELDS.values() for f in fields
    }
    assert set(Trigger.model_fields) == trigger_fields


def test_what_cannot_be_read_is_named_by_its_step_and_kept_as_typed() -> None:
    form = {
        "trigger.type": "message_received",
        "s0.id": "call",
        "s0.type": "http",
        "s0.url": "https://example.com",
        "s0.body": "{not json",
        "s0.headers": "no colon here",
        "s1.id": "pause",
        "s1.type": "wait",
        "s1.minutes": "ten",
    }
    with pytest.raises(InvalidInput) as refused:
        definition_from_form(form)
    assert {d["field"] for d in refused.value.details} == {
        "steps.call.body",
        "steps.call.headers",
        "steps.pause.minutes",
    }
    data, _problems = definition_data(form)
    shown = editor_data(data)["steps"]
    assert shown[0]["body_text"] == "{not json" and shown[0]["headers_text"] == "no colon here"
    assert shown[1]["minutes"] == "ten"
    # A value the form lets through is refused by the definition itself, by its place.
    with pytest.raises(InvalidInput) as too_long:
        definition_from_form(
            {"s0.id": "q", "s0.type": "question", "s0.text": "?", "s0.o0.title": "x" * 30}
        )
    assert too_long.value.details[0]["field"] == "steps.0.options.0.title"


def test_the_cards_buttons_add_move_and_remove() -> None:
    data, _ = definition_data(KEYWORD_QUESTION)
    assert apply_action(data, "add_step", "assign") == "assign_1"
    assert apply_action(data, "add_step:send_message") == "send_message_3"
    assert [s["id"] for s in data["steps"]][-2:] == ["assign_1", "send_message_3"]
    assert apply_action(data, "move_up:0") == "question_1"  # the first stays first
    assert apply_action(data, "move_down:0") == "question_1"
    assert [s["id"] for s in data["steps"]][:2] == ["send_message_1", "question_1"]
    assert apply_action(data, "remove_option:1:0") == "question_1"
    assert [o["title"] for o in data["steps"][1]["options"]] == ["Zapatos"]
    assert apply_action(data, "remove_rule:s2.when:0") == "send_message_2"
    assert [r["field"] for r in data["steps"][2]["when"]["rules"]] == ["custom.visits"]
    assert apply_action(data, "remove_rule:s2.when:0") == "send_message_2"
    assert "when" not in data["steps"][2]
    assert apply_action(data, "delete_step:4") == "assign_1"
    assert apply_action(data, "add_option:1") == "question_1"
    assert apply_action(data, "delete_step:99") is None and apply_action(data, "save") is None
    assert [s.id for s in parse_definition(data).steps] == [
        "send_message_1",
        "question_1",
        "send_message_2",
        "assign_1",
    ]


# -- the pages ----------------------------------------------------------------------------------


@pytest.fixture
def shop(db: Database) -> int:
    with db.unit_of_work(unscoped="test") as session:
        return make_workspace(session, "Tienda La Esquina").id


def signed_in(
    settings: Settings, db: Database, workspace_id: int, role: str
) -> Iterator[WebClient]:
    with db.unit_of_work(unscoped="test") as session:
        workspace = session.get(Workspace, workspace_id)
        assert workspace is not None
        email = make_user(session, workspace, role=role).email
    with TestClient(create_app(settings, db)) as client:
        web = WebClient(client)
        assert web.login(email, PASSWORD).status_code == 200
        yield web


@pytest.fixture
def web(settings: Settings, db: Database, shop: int) -> Iterator[WebClient]:
    yield from signed_in(settings, db, shop, "supervisor")


def stored(db: Database, workflow_id: int) -> Workflow:
    with db.read(unscoped="test") as session:
        workflow = session.get(Workflow, workflow_id)
        assert workflow is not None
        session.expunge(workflow)
        return workflow


def draft(db: Database, workflow_id: int) -> Definition:
    return parse_definition(stored(db, workflow_id).draft)


def create(web: WebClient, name: str = "Precios") -> int:
    made = web.post(
        "/workflows/new",
        {"name": name, "description": "", "trigger": "message_received"},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    found = re.fullmatch(r"/workflows/(\d+)\?flash=created", made.headers["location"])
    assert found is not None, made.headers["location"]
    return int(found.group(1))


class FormFields(HTMLParser):
    """What a browser posts for one form of a page: its enabled fields (those of disabled
    fieldsets and unchecked boxes left out), each select's chosen option, and the value
    of the button pressed."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.fields: list[tuple[str, str]] = []
        self._inside = False
        self._disabled_depth = 0
        self._depth = 0
        self._select: tuple[str, list[tuple[str, bool]]] | None = None
        self._option: list[str] | None = None
        self._option_selected = False
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._inside = a.get("id") == self.form_id
            return
        if not self._inside:
            return
        if tag == "fieldset":
            self._depth += 1
            if "disabled" in a and not self._disabled_depth:
                self._disabled_depth = self._depth
        off = bool(self._disabled_depth) or "disabled" in a
        name = a.get("name", "")
        if tag == "input" and name and not off:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind not in ("submit", "button", "file"):
                self.fields.append((name, a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and name and not off:
            self._select = (name, [])
        elif tag == "option" and self._select is not None:
            self._option = [a["value"]] if "value" in a else []
            self._option_selected = "selected" in a
        elif tag == "textarea" and name and not off:
            self._textarea = (name, [])

    def handle_data(self, data: str) -> None:
        if self._option is not None and not self._option[:1]:
            self._option.append(data)
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if not self._inside:
            return
        if tag == "form":
            self._inside = False
        elif tag == "fieldset":
            if self._disabled_depth == self._depth:
                self._disabled_depth = 0
            self._depth -= 1
        elif tag == "option" and self._select is not None and self._option is not None:
            value = "".join(self._option).strip() if len(self._option) != 1 else self._option[0]
            self._select[1].append((value, self._option_selected))
            self._option = None
        elif tag == "select" and self._select is not None:
            name, options = self._select
            chosen = [v for v, selected in options if selected] or [v for v, _ in options[:1]]
            self.fields.extend((name, v) for v in chosen[-1:])
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            text = "".join(self._textarea[1])
            self.fields.append((self._textarea[0], text[1:] if text.startswith("\n") else text))
            self._textarea = None


def posted_by(html: str, form_id: str = "builder", **pressed: str) -> dict[str, list[str]]:
    """The form's fields as the browser sends them, with the button pressed (or fields
    changed) given as keyword arguments (`action="save"`)."""
    parser = FormFields(form_id)
    parser.feed(html)
    fields: dict[str, list[str]] = {}
    for name, value in parser.fields:
        fields.setdefault(name, []).append(value)
    fields.update({name: [value] for name, value in pressed.items()})
    return fields


def test_a_new_workflow_shows_how_to_begin(web: WebClient, db: Database) -> None:
    listing = web.get("/workflows")
    assert listing.status_code == 200
    assert 'href="/workflows"' in listing.text and "No workflows yet." in listing.text
    workflow_id = create(web)
    page = web.get(f"/workflows/{workflow_id}?flash=created")
    assert page.status_code == 200
    assert 'data-testid="no-steps"' in page.text and "This workflow has no steps yet." in page.text
    assert "Not published yet" in page.text
    # The empty state's buttons add a first step of their kind.
    added = web.post(
        f"/workflows/{workflow_id}",
        posted_by(page.text, action="add_step:question"),
        follow_redirects=False,
    )
    assert added.status_code == 303
    assert added.headers["location"] == f"/workflows/{workflow_id}#step-question_1"
    assert [(s.id, s.type) for s in draft(db, workflow_id).steps] == [("question_1", "question")]


def card_of(html: str, step_id: str) -> str:
    """The HTML of one step's card."""
    start = html.index(f'id="step-{step_id}"')
    end = html.find('<li class="card wf-step', start)
    return html[start : end if end != -1 else len(html)]


def test_a_supervisor_builds_publishes_switches_on_exports_and_imports(
    web: WebClient, db: Database, shop: int
) -> None:
    workflow_id = create(web)
    url = f"/workflows/{workflow_id}"
    for kind in ("question", "send_message", "send_message"):
        page = web.get(url)
        added = web.post(url, posted_by(page.text, action="add_step", new_step_type=kind))
        assert added.status_code == 200 and "Not saved" not in added.text
    page = web.get(url)
    assert [c.count('data-testid="option"') for c in page.text.split('data-testid="step"')[1:]] == [
        2,
        0,
        0,
    ]  # a new question offers two empty answers
    keyword_question = {
        "trigger.match": "keyword",
        "trigger.keywords": "precio\r\ncuánto cuesta",
        "s0.text": "¿Qué buscas?",
        "s0.o0.title": "Ropa",
        "s0.o0.next": "send_message_1",
        "s0.o1.title": "Zapatos",
        "s0.o1.next": "send_message_2",
        "s1.text": "Ropa nueva cada semana.",
        "s2.text": "Zapatos en oferta.",
    }
    saved = web.post(
        url, posted_by(page.text, action="save", **keyword_question), follow_redirects=False
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"{url}?flash=saved"
    definition = draft(db, workflow_id)
    assert definition.trigger.keywords == ["precio", "cuánto cuesta"]
    question, clothes, shoes = definition.steps
    assert [(o.title, o.next) for o in question.options] == [
        ("Ropa", "send_message_1"),
        ("Zapatos", "send_message_2"),
    ]
    assert (clothes.text, shoes.text) == ("Ropa nueva cada semana.", "Zapatos en oferta.")
    page = web.get(saved.headers["location"])
    assert "Draft saved." in page.text and "Ropa nueva cada semana." in page.text

    # A jump into nothing and a question without its text: refused, each named beside
    # its step and in the list at the top; the draft is kept.
    broken = posted_by(page.text, **{"s0.text": "", "s1.type": "jump", "s1.target": "nowhere"})
    refused = web.post(f"{url}/publish", broken)
    assert refused.status_code == 422
    assert "Not published: the workflow cannot run yet" in refused.text
    listed = re.findall(r'<li data-testid="problem">(.*?)</li>', refused.text, re.S)
    assert len(listed) == 2, listed
    assert "Write the text to send." in listed[0] and 'href="#step-question_1"' in listed[0]
    assert "It goes to “nowhere”, which is not a step." in listed[1]
    jump = card_of(refused.text, "send_message_1")
    assert "It goes to “nowhere”, which is not a step." in jump
    assert "“nowhere”: no such step" in jump  # the select keeps what it points at
    assert "Write the text to send." in card_of(refused.text, "question_1")
    with db.read(unscoped="test") as session:
        workflow = session.get(Workflow, workflow_id)
        assert workflow is not None and workflow.published_version_id is None
        assert parse_definition(workflow.draft).steps[1].type == "jump"

    fixed = posted_by(refused.text, **keyword_question, **{"s1.type": "send_message"})
    published = web.post(f"{url}/publish", fixed, follow_redirects=False)
    assert published.status_code == 303, published.text
    page = web.get(published.headers["location"])
    assert "Published: new runs use this version." in page.text
    assert "Version 1 published" in page.text and 'data-testid="problems"' not in page.text

    on = web.post(
        f"{url}/enabled", {"enabled": "yes", "back": "/workflows"}, follow_redirects=False
    )
    assert on.status_code == 303 and on.headers["location"] == "/workflows?flash=enabled"
    assert stored(db, workflow_id).enabled
    listing = web.get(on.headers["location"]).text
    row = listing[listing.index(f'data-workflow="{workflow_id}"') :]
    assert "A message containing “precio”, “cuánto cuesta”" in row
    assert 'aria-checked="true"' in row and "Version 1" in row

    exported = web.get(f"{url}/export")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith("attachment")
    document = exported.json()
    assert document["format"] == "puente.workflow" and document["name"] == "Precios"
    imported = web.post(
        "/workflows/import",
        {},
        files={"file": ("precios.json", exported.content, "application/json")},
        follow_redirects=False,
    )
    assert imported.status_code == 303, imported.text
    copy_id = int(imported.headers["location"].split("/")[2].split("?")[0])
    assert copy_id != workflow_id
    assert draft(db, copy_id) == draft(db, workflow_id)
    copy = stored(db, copy_id)
    assert (copy.name, copy.enabled, copy.published_version_id) == ("Precios", False, None)


def test_an_imported_file_of_another_version_or_with_unknown_fields_is_refused(
    web: WebClient, db: Database, shop: int
) -> None:
    document = {
        "format": "puente.workflow",
        "version": 2,
        "name": "x",
        "definition": {"trigger": {"type": "manual"}},
    }
    for bad, expected in (
        (document, "this Puente reads version 1"),
        ({**document, "version": 1, "colour": "red"}, "Unknown field in the workflow file"),
        (
            {**document, "version": 1, "definition": {"trigger": {"type": "manual", "when": 1}}},
            "trigger.when: unknown field",
        ),
    ):
        refused = web.post(
            "/workflows/import",
            {},
            files={"file": ("w.json", json.dumps(bad).encode(), "application/json")},
        )
        assert refused.status_code == 422
        assert expected in refused.text, refused.text
    not_json = web.post(
        "/workflows/import", {}, files={"file": ("w.json", b"\xff{", "application/json")}
    )
    assert not_json.status_code == 422 and "The file is not JSON." in not_json.text
    with db.read(unscoped="test") as session:
        assert session.scalars(select(Workflow)).all() == []


@pytest.fixture
def agent(settings: Settings, db: Database, shop: int) -> Iterator[WebClient]:
    yield from signed_in(settings, db, shop, "agent")


def test_an_agent_may_not_see_or_change_workflows(
    agent: WebClient, db: Database, shop: int
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        workflow = service.do_create_workflow(
            session, shop, name="Privado", definition=Definition.model_validate(
                {"trigger": {"type": "manual"}}
            ),
        )  # fmt: skip
        workflow_id = workflow.id
    inbox = agent.get("/inbox")
    assert 'href="/workflows"' not in inbox.text
    for path in ("/workflows", f"/workflows/{workflow_id}", f"/workflows/{workflow_id}/runs"):
        assert agent.get(path).status_code == 403, path
    for path in ("/workflows/new", f"/workflows/{workflow_id}", f"/workflows/{workflow_id}/delete"):
        assert agent.post(path, {"name": "x"}).status_code == 403, path
    assert stored(db, workflow_id).name == "Privado"


EVERY_KIND: dict[str, Any] = {
    "trigger": {
        "type": "message_received",
        "match": "keyword",
        "keywords": ["hola", "buenas tardes"],
        "keyword_mode": "exact",
        "conditions": {
            "match": "any",
            "rules": [{"field": "contact.tags", "op": "not_contains", "value": "spam"}],
        },
    },
    "start": "menu",
    "steps": [
        {"id": "hello", "type": "send_message", "title": "Saludo", "text": "Hola\n¿qué tal?",
         "template": {"name": "saludo", "language": "es", "variables": {"body.1": "{contact.name}"}},
         "next": "menu", "on_failure": "sorry"},
        {"id": "menu", "type": "question", "text": "¿Qué necesitas?", "list_button": "Ver",
         "options": [{"id": "a", "title": "Ventas", "next": "sales"},
                     {"id": "b", "title": "Soporte"}, {"id": "c", "title": "Pagos"},
                     {"id": "d", "title": "Otro", "next": "nobody"}],
         "retry_text": "Elige una opción", "on_invalid": "sorry", "timeout_minutes": 60,
         "on_timeout": "sorry", "save_as": "interes", "next": "wait",
         "when": {"match": "all", "rules": [{"field": "time.hhmm", "op": "gt", "value": 800}]}},
        {"id": "sales", "type": "assign", "team_id": 424242, "next": "tag"},
        {"id": "tag", "type": "add_tag", "tag": "ventas", "next": "field"},
        {"id": "field", "type": "set_field", "field": "ciudad", "value": "{answer.menu}",
         "next": "untag"},
        {"id": "untag", "type": "remove_tag", "tag": "frio", "next": "note"},
        {"id": "note", "type": "note", "text": "Quiere comprar", "next": "snooze"},
        {"id": "snooze", "type": "snooze", "minutes": 90, "next": "off"},
        {"id": "off", "type": "bot_off", "next": "pause"},
        {"id": "pause", "type": "wait", "seconds": 30, "next": "wait"},
        {"id": "wait", "type": "wait", "until": "09:00", "next": "check"},
        {"id": "check", "type": "branch", "conditions": {"match": "all", "rules": [
            {"field": "conversation.status", "op": "in", "value": ["open", "pending"]},
            {"field": "custom.vip", "op": "exists"}]},
         "next": "call", "otherwise": "back"},
        {"id": "back", "type": "jump", "target": "menu"},
        {"id": "call", "type": "http", "method": "PUT", "url": "https://example.com/x",
         "headers": {"X-Key": "abc"}, "body": {"phone": "{contact.phone}", "tags": [1, 2]},
         "timeout_seconds": 3.5, "on_failure": "sorry", "next": "other"},
        {"id": "other", "type": "start_workflow", "workflow_id": 999, "next": "close"},
        {"id": "close", "type": "close", "next": "open"},
        {"id": "open", "type": "reopen", "next": "unassign"},
        {"id": "unassign", "type": "unassign", "next": "on"},
        {"id": "on", "type": "bot_on", "next": "template"},
        {"id": "template", "type": "send_template",
         "template": {"name": "gracias", "language": "en_US"}, "next": "end"},
        {"id": "sorry", "type": "send_message", "text": "Lo siento"},
        {"id": "end", "type": "end"},
    ],
}  # fmt: skip


def test_the_builder_posts_back_exactly_what_it_shows(
    web: WebClient, db: Database, shop: int
) -> None:
    """Every kind of step, with values the workspace no longer has (a team, a workflow, a
    template, a step): saving the page unchanged changes nothing."""
    definition = parse_definition(EVERY_KIND)
    with db.unit_of_work(unscoped="test") as session:
        workflow_id = service.do_create_workflow(
            session, shop, name="Todo", definition=definition
        ).id
    page = web.get(f"/workflows/{workflow_id}")
    assert page.status_code == 200
    fields = posted_by(page.text, action="save")
    assert "s1.minutes" not in fields and "s1.o0.title" in fields  # other kinds' fields: off
    saved = web.post(f"/workflows/{workflow_id}", fields, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert draft(db, workflow_id) == definition


def test_a_team_deleted_since_publishing_shows_in_the_builder(
    web: WebClient, db: Database, shop: int
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, shop)
        assert ws is not None
        team = make_team(session, ws, "Ventas", [])
        workflow = service.do_create_workflow(
            session, shop, name="Reparto", definition=parse_definition(
                {"trigger": {"type": "conversation_opened"},
                 "steps": [{"id": "to_sales", "type": "assign", "team_id": team.id}]}
            ),
        )  # fmt: skip
        service.do_publish(session, workflow)
        workflow_id, team_id = workflow.id, team.id
    assert f'value="{team_id}" selected>Ventas<' in web.get(f"/workflows/{workflow_id}").text
    with db.unit_of_work(unscoped="test") as session:
        session.delete(session.get(type(team), team_id))
    page = web.get(f"/workflows/{workflow_id}").text
    assert "To fix before publishing again" in page
    card = card_of(page, "to_sales")
    assert "The team was deleted." in card and "⚠ Deleted team" in card


@pytest.fixture
def published(db: Database, shop: int) -> tuple[int, int]:
    """A published workflow and a contact with a conversation: (workflow id, contact id)."""
    with db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, shop)
        assert ws is not None
        contact = make_contact(session, ws, name="Lucía Gómez")
        make_conversation(session, make_channel(session, ws), contact)
        workflow = service.do_create_workflow(
            session, shop, name="Aviso", definition=parse_definition(
                {"trigger": {"type": "manual"},
                 "steps": [{"id": "hello", "type": "send_message", "text": "Hola"}]}
            ),
        )  # fmt: skip
        service.do_publish(session, workflow)
        return workflow.id, contact.id


def test_a_test_run_starts_on_a_chosen_contact_and_shows_its_page(
    web: WebClient, db: Database, published: tuple[int, int]
) -> None:
    workflow_id, contact_id = published
    page = web.get(f"/workflows/{workflow_id}").text
    assert f'<option value="{contact_id}">Lucía Gómez' in page  # a recent contact
    found = web.get(f"/workflows/{workflow_id}/test-contacts?contact_q=gómez")
    assert f'value="{contact_id}"' in found.text
    nobody = web.get(f"/workflows/{workflow_id}/test-contacts?contact_q=zzz").text
    assert "No contact found" in nobody

    started = web.post(
        f"/workflows/{workflow_id}/test", {"contact_id": str(contact_id)}, follow_redirects=False
    )
    assert started.status_code == 303, started.text
    with db.read(unscoped="test") as session:
        run = session.scalars(select(WorkflowRun)).one()
        assert (run.test, run.contact_id) == (True, contact_id) and run.conversation_id
        run_id = run.id
    assert started.headers["location"] == f"/workflows/{workflow_id}/runs/{run_id}"
    shown = web.get(started.headers["location"]).text
    assert "Lucía Gómez" in shown and "Test" in shown

    unknown = web.post(f"/workflows/{workflow_id}/test", {"contact_id": "424242"})
    assert unknown.status_code == 422
    assert "Choose the contact to try the workflow on." in unknown.text


def test_failed_runs_are_listed_with_their_steps_and_retried(
    web: WebClient, db: Database, published: tuple[int, int]
) -> None:
    workflow_id, contact_id = published
    with db.unit_of_work(unscoped="test") as session:
        workflow = session.get(Workflow, workflow_id)
        assert workflow is not None
        ok = service.do_start_run(
            session, workflow, trigger="manual", trigger_key="k1", contact_id=contact_id,
            conversation_id=None,
        )  # fmt: skip
        failed = service.do_start_run(
            session, workflow, trigger="manual", trigger_key="k2", contact_id=contact_id,
            conversation_id=None,
        )  # fmt: skip
        assert ok is not None and failed is not None
        # What the engine leaves of a run whose send failed.
        failed.status, failed.error = RunStatus.FAILED.value, "The 24-hour window is closed."
        session.add(
            WorkflowRunStep(
                workspace_id=workflow.workspace_id, run_id=failed.id, step_id="hello",
                step_type="send_message", outcome="failed", detail="window closed",
            )
        )  # fmt: skip
        ok_id, failed_id = ok.id, failed.id
    listing = web.get(f"/workflows/{workflow_id}/runs")
    assert listing.status_code == 200
    assert f'data-run="{ok_id}"' in listing.text and f'data-run="{failed_id}"' in listing.text
    only_failed = web.get(f"/workflows/{workflow_id}/runs?status=failed").text
    assert f'data-run="{ok_id}"' not in only_failed
    assert "The 24-hour window is closed." in only_failed and "window closed" in only_failed
    assert "Lucía Gómez" in only_failed
    assert web.get("/workflows").text.count('data-testid="failed-runs"') == 1

    retried = web.post(
        f"/workflows/{workflow_id}/runs/{failed_id}/retry", {}, follow_redirects=False
    )
    assert retried.status_code == 303
    with db.read(unscoped="test") as session:
        run = session.get(WorkflowRun, failed_id)
        assert run is not None and (run.status, run.error) == (RunStatus.READY.value, None)
    again = web.post(f"/workflows/{workflow_id}/runs/{failed_id}/retry", {})
    assert again.status_code == 409  # only a failed run is retried
    assert web.get(f"/workflows/{workflow_id}/runs/{ok_id + failed_id + 99}").status_code == 404


def test_a_ready_made_workflow_is_installed_as_a_draft(
    web: WebClient, db: Database, shop: int
) -> None:
    library = pytest.importorskip("puente.automation.workflows.library")
    first = library.LIBRARY[0]
    listing = web.get("/workflows").text
    assert f'action="/workflows/library/{first.key}"' in listing
    installed = web.post(f"/workflows/library/{first.key}", {}, follow_redirects=False)
    assert installed.status_code == 303
    assert installed.headers["location"].endswith("?flash=installed")
    with db.read(unscoped="test") as session:
        workflow = session.scalars(select(Workflow)).one()
        assert (workflow.template_key, workflow.enabled) == (first.key, False)
    assert web.post("/workflows/library/no-such-thing", {}).status_code == 404


def test_each_problem_with_a_name_in_it_has_its_catalogue_message(db: Database, shop: int) -> None:
    """The checks write names into their messages (a step, a template): the builder finds
    the catalogue's message for each and puts the names back, in any language."""
    template = {"name": "x", "language": "es"}
    pending = {"name": "y", "language": "es"}
    broken = parse_definition(
        {
            "trigger": {"type": "manual", "conditions": {"rules": [{"field": "colour"}]}},
            "start": "missing",
            "steps": [
                {"id": "a", "type": "send_template", "template": template, "next": "b"},
                {"id": "b", "type": "jump", "target": "a"},
                {"id": "b", "type": "jump", "target": "nowhere"},
                {"id": "c", "type": "send_template", "template": pending, "next": "d"},
                {"id": "d", "type": "jump", "target": "c"},
            ],
        }
    )
    with db.unit_of_work(unscoped="test") as session:
        session.add(
            MessageTemplate(
                workspace_id=shop, waba_id="1", name="y", language="es", category="UTILITY",
                status="PENDING",
            )
        )  # fmt: skip
    with db.read(scope=shop) as session:
        messages = [p.message for p in checks.problems(session, shop, broken)]
    files = []
    for document in (
        {"format": "other"},
        {"format": "puente.workflow", "version": 9},
        {"format": "puente.workflow", "colour": 1},
        {"format": "puente.workflow", "version": 1, "name": "x", "definition": {"x": 1}},
    ):
        with pytest.raises(InvalidInput) as refused:
            service.parse_workflow_file(document)
        files.append(refused.value.message)
    named = [*messages, *files]
    assert len(messages) == 7, messages
    for message in named:
        msgid, params = words.msgid_of(message)
        assert msgid != message, f"no catalogue message for {message!r}"
        # The names put back give the message again (a heading has no names: its details
        # follow it on the page).
        assert not params or msgid % params == message, (msgid, message)
