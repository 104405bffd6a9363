"""Snippets (shared and personal, with variables) and full-text message search."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from puente.accounts.models import Team, Workspace
from puente.contacts.models import Contact
from puente.db.session import Database
from tests.inbox.conftest import NOW, Shop, login
from tests.inbox.helpers import add_conversation, add_message
from tests.webclient import WebClient


def test_snippets_are_shared_or_personal_and_fill_their_variables(
    owner_web: WebClient, client: TestClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía Gómez", at=NOW)
        contact = s.get(Contact, c.contact_id)
        assert contact is not None
        contact.custom_fields = {"ciudad": "Puebla"}
        cid = c.id
    owner_web.get("/inbox/snippets")
    owner_web.post(
        "/inbox/snippets",
        {
            "shortcut": "/Horario",
            "body": "Hola {{contact.first_name}}, abrimos 9-18 en {{contact.ciudad}}. {{contact.nada}}",
            "shared": "1",
        },
    )
    dup = owner_web.post("/inbox/snippets", {"shortcut": "horario", "body": "x", "shared": "1"})
    assert dup.status_code == 422 and "already a snippet /horario" in dup.text
    bad = owner_web.post("/inbox/snippets", {"shortcut": "con espacios", "body": "x"})
    assert bad.status_code == 422 and "lowercase letters" in bad.text

    ana = login(TestClient(client.app), shop.ana_email)
    ana.get("/inbox/snippets")
    refused = ana.post("/inbox/snippets", {"shortcut": "mio", "body": "solo mío", "shared": "1"})
    assert refused.status_code == 403 and "Only supervisors and admins" in refused.text
    assert (
        ana.post(
            "/inbox/snippets", {"shortcut": "mio", "body": "Saludos, {{agent.name}}"}
        ).status_code
        == 200
    )
    mine = ana.get(f"/inbox/c/{cid}/snippets?prefix=").json()["items"]
    assert [(i["shortcut"], i["shared"]) for i in mine] == [("horario", True), ("mio", False)]
    assert mine[0]["text"] == "Hola Lucía, abrimos 9-18 en Puebla. {{contact.nada}}"
    assert mine[1]["text"] == "Saludos, Ana Pérez"
    # The owner does not see Ana's personal snippet, and an agent cannot delete a shared one.
    assert [
        i["shortcut"] for i in owner_web.get(f"/inbox/c/{cid}/snippets?prefix=h").json()["items"]
    ] == ["horario"]
    page = ana.get("/inbox/snippets").text
    shared_id = (
        page.split('action="/inbox/snippets/')[1].split("/")[0] if "/delete" in page else None
    )
    assert shared_id is not None  # Ana's own snippet has a delete button
    owner_page = owner_web.get("/inbox/snippets").text
    horario_id = owner_page.split('action="/inbox/snippets/')[1].split("/")[0]
    assert ana.post(f"/inbox/snippets/{horario_id}/delete", {}).status_code == 403
    assert owner_web.post(f"/inbox/snippets/{horario_id}/delete", {}).status_code == 200
    assert "horario" not in owner_web.get("/inbox/snippets").text


def test_message_search_finds_words_only_where_the_searcher_may_look(
    client: TestClient, owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        ws = s.get(Workspace, shop.workspace_id)
        assert ws is not None
        ventas = Team(workspace_id=ws.id, name="Ventas")
        s.add(ventas)
        s.flush()
        open_c = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW)
        hidden = add_conversation(
            s, shop.workspace_id, shop.channel_id, "Oculta", at=NOW, team_id=ventas.id
        )
        add_message(s, open_c, at=NOW - dt.timedelta(minutes=3), text="¿Tienen envío a Medellín?")
        add_message(s, open_c, at=NOW - dt.timedelta(minutes=2), text="La factura llegó bien")
        add_message(s, hidden, at=NOW - dt.timedelta(minutes=1), text="Factura del pedido secreto")
    results = owner_web.get("/inbox/search?q=factura").text
    assert "La factura llegó bien" in results and "Factura del pedido secreto" in results
    assert "<strong>Lucía</strong>" in results
    # Words are prefixes: "fact" finds "factura".
    assert "La factura llegó bien" in owner_web.get("/inbox/search?q=FACT").text
    # Accents are folded on both engines: people type "medellin" for "Medellín".
    assert "Medellín" in owner_web.get("/inbox/search?q=envi+medellin").text
    assert "No messages contain those words." in owner_web.get("/inbox/search?q=zapatos").text
    # Search syntax typed by a person is taken as words, never as a query language.
    for odd in ['"', "factura OR x", "fact*", "NEAR(a b)", "a:b", "-x", "')"]:
        assert owner_web.get("/inbox/search", params={"q": odd}).status_code == 200
    ana = login(TestClient(client.app), shop.ana_email)
    mine = ana.get("/inbox/search?q=factura").text
    assert "La factura llegó bien" in mine and "secreto" not in mine


def test_message_search_folds_accents_both_ways(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        c = add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía", at=NOW)
        add_message(s, c, at=NOW - dt.timedelta(minutes=2), text="Me encantó la canción")
        add_message(s, c, at=NOW - dt.timedelta(minutes=1), text="la cancion sin tilde, PINGÜINO")
    both = owner_web.get("/inbox/search?q=cancion").text
    assert "Me encantó la canción" in both and "la cancion sin tilde" in both
    typed_with_accent = owner_web.get("/inbox/search?q=CANCIÓN+encanto").text
    assert "Me encantó la canción" in typed_with_accent
    assert "sin tilde" not in typed_with_accent
    assert "PINGÜINO" in owner_web.get("/inbox/search?q=pinguino").text
    assert "No messages contain those words." in owner_web.get("/inbox/search?q=cantina").text
