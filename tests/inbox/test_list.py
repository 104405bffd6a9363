"""The conversation list: tabs with counts, filters, sorting, search, pages, and rows
that show what an agent needs at a glance."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

from puente.accounts.models import Team
from puente.contacts.models import Contact
from puente.db.session import Database
from tests.factories import make_channel, make_team
from tests.inbox.conftest import NOW, Shop, login
from tests.inbox.helpers import add_conversation
from tests.webclient import WebClient


def _count(html: str, tab: str) -> int:
    found = re.search(rf'data-testid="count-{tab}">(\d+)<', html)
    assert found, f"no count for {tab}"
    return int(found.group(1))


def _names(html: str) -> list[str]:
    found = re.findall(r'<strong class="conv-name">([^<]*)</strong>', html)
    return [unescape(name) for name in found]


def test_tabs_show_counts_and_their_conversations(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        add_conversation(
            s, shop.workspace_id, shop.channel_id, "Mía", at=NOW, assignee_id=shop.owner_id
        )
        add_conversation(
            s, shop.workspace_id, shop.channel_id, "Suelta", at=NOW - dt.timedelta(minutes=1)
        )
        add_conversation(
            s,
            shop.workspace_id,
            shop.channel_id,
            "De Ana",
            at=NOW - dt.timedelta(minutes=2),
            assignee_id=shop.ana_id,
        )
        add_conversation(
            s, shop.workspace_id, shop.channel_id, "Cerrada", at=NOW, status="resolved"
        )
    page = owner_web.get("/inbox").text
    assert (_count(page, "mine"), _count(page, "unassigned"), _count(page, "all")) == (1, 1, 3)
    assert _names(page) == ["Mía", "Suelta", "De Ana"]
    assert _names(owner_web.get("/inbox?tab=mine").text) == ["Mía"]
    assert _names(owner_web.get("/inbox?tab=unassigned").text) == ["Suelta"]
    closed = owner_web.get("/inbox?status=resolved").text
    assert _names(closed) == ["Cerrada"]
    assert _count(closed, "all") == 1
    assert len(_names(owner_web.get("/inbox?status=any").text)) == 4


def test_filters_by_number_team_label_assignee_and_source(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        from puente.accounts.models import Workspace

        ws = s.get(Workspace, shop.workspace_id)
        assert ws is not None
        other = make_channel(s, ws, display_phone_number="5215559998888")
        team = make_team(s, ws, "Ventas", [])
        add_conversation(s, shop.workspace_id, shop.channel_id, "Uno", at=NOW, labels=["vip"])
        add_conversation(s, shop.workspace_id, other.id, "Dos", at=NOW, team_id=team.id)
        add_conversation(
            s,
            shop.workspace_id,
            shop.channel_id,
            "Tres",
            at=NOW,
            assignee_id=shop.ana_id,
            source="business_app",
        )
        other_id, team_id = other.id, team.id
    assert _names(owner_web.get(f"/inbox?channel={other_id}").text) == ["Dos"]
    assert _names(owner_web.get(f"/inbox?team={team_id}").text) == ["Dos"]
    assert _names(owner_web.get("/inbox?label=VIP").text) == ["Uno"]
    assert _names(owner_web.get(f"/inbox?assignee={shop.ana_id}").text) == ["Tres"]
    assert _names(owner_web.get("/inbox?source=business_app").text) == ["Tres"]
    # Nonsense in the query string falls back to the defaults instead of failing.
    assert owner_web.get("/inbox?status=bogus&sort=x&tab=y&channel=abc&page=-3").status_code == 200


def test_sort_by_longest_waiting(owner_web: WebClient, shop: Shop, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as s:
        add_conversation(s, shop.workspace_id, shop.channel_id, "Reciente", at=NOW)
        add_conversation(
            s, shop.workspace_id, shop.channel_id, "Esperando", at=NOW - dt.timedelta(hours=3)
        )
        add_conversation(
            s,
            shop.workspace_id,
            shop.channel_id,
            "Respondida",
            at=NOW - dt.timedelta(hours=5),
            source="agent",
        )
    assert _names(owner_web.get("/inbox").text) == ["Reciente", "Esperando", "Respondida"]
    assert _names(owner_web.get("/inbox?sort=waiting").text) == [
        "Esperando",
        "Reciente",
        "Respondida",
    ]


def test_search_box_finds_contacts_by_name_or_number(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        add_conversation(s, shop.workspace_id, shop.channel_id, "Lucía Gómez", at=NOW)
        add_conversation(s, shop.workspace_id, shop.channel_id, "Pedro", at=NOW)
    assert _names(owner_web.get("/inbox?q=lucía").text) == ["Lucía Gómez"]
    assert _names(owner_web.get("/inbox?q=nadie").text) == []
    assert "No open conversations here." in owner_web.get("/inbox?q=nadie").text


def test_search_box_finds_any_piece_of_a_name_or_number(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        add_conversation(s, shop.workspace_id, shop.channel_id, "María José Peña", at=NOW)
        renamed = add_conversation(s, shop.workspace_id, shop.channel_id, "Pedro", at=NOW)
        contact = s.get(Contact, renamed.contact_id)
        assert contact is not None
        wa_id = contact.wa_id
        contact.name = "Tienda O'Brien"  # an agent's edit: found by the new name
        add_conversation(s, shop.workspace_id, shop.channel_id, 'Ana "la jefa"', at=NOW)
    # Middle of a name, any case, spaces included; a piece of the WhatsApp number.
    assert _names(owner_web.get("/inbox?q=JOSÉ PE").text) == ["María José Peña"]
    assert _names(owner_web.get("/inbox?q=o'bri").text) == ["Tienda O'Brien"]
    # The name from the customer's WhatsApp profile still finds them.
    assert _names(owner_web.get("/inbox?q=pedro").text) == ["Tienda O'Brien"]
    assert wa_id is not None
    assert _names(owner_web.get(f"/inbox?q={wa_id[-6:]}").text) == ["Tienda O'Brien"]
    # Quotes are part of what is looked for, and two letters still search.
    assert _names(owner_web.get('/inbox?q="la jefa"').text) == ['Ana "la jefa"']
    assert sorted(_names(owner_web.get("/inbox?q=pe").text)) == [
        "María José Peña",
        "Tienda O'Brien",
    ]
    assert _names(owner_web.get("/inbox?q=ía jos").text) == ["María José Peña"]


def test_pages_of_fifty(owner_web: WebClient, shop: Shop, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as s:
        for n in range(55):
            add_conversation(
                s, shop.workspace_id, shop.channel_id, f"C{n:02d}", at=NOW - dt.timedelta(minutes=n)
            )
    first = owner_web.get("/inbox").text
    assert len(_names(first)) == 50 and _names(first)[0] == "C00"
    assert 'data-testid="next-page"' in first
    second = owner_web.get("/inbox?page=2").text
    assert _names(second) == ["C50", "C51", "C52", "C53", "C54"]
    assert 'data-testid="next-page"' not in second


def test_rows_show_unread_preview_source_assignee_labels_and_window(
    owner_web: WebClient, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        add_conversation(
            s,
            shop.workspace_id,
            shop.channel_id,
            "Lucía",
            at=NOW,
            unread=3,
            labels=["vip"],
            preview="¿Tienen envío?",
            assignee_id=shop.ana_id,
        )
        add_conversation(
            s,
            shop.workspace_id,
            shop.channel_id,
            "Pedro",
            at=NOW - dt.timedelta(hours=30),
            window_open=False,
            preview="Listo, gracias",
            source="business_app",
        )
    page = owner_web.get("/inbox").text
    lucia, pedro = page.split('data-testid="conversation-row"')[1:3]
    assert 'data-testid="unread" title="Unread">3<' in lucia
    assert "¿Tienen envío?" in lucia and "Ana Pérez" in lucia and ">vip<" in lucia
    assert "win open" in lucia
    assert "win closed" in pedro and "📱" in pedro and "unread" not in pedro.split("conv-link")[0]


def test_an_agent_sees_only_their_teams_and_unrouted_conversations(
    client: object, shop: Shop, db: Database
) -> None:
    with db.unit_of_work(unscoped="test") as s:
        from puente.accounts.models import Workspace

        ws = s.get(Workspace, shop.workspace_id)
        assert ws is not None
        from puente.accounts.models import User

        ana = s.get(User, shop.ana_id)
        assert ana is not None
        soporte = make_team(s, ws, "Soporte", [ana])
        ventas = s.merge(Team(workspace_id=ws.id, name="Ventas"))
        s.flush()
        add_conversation(
            s, shop.workspace_id, shop.channel_id, "Soporte1", at=NOW, team_id=soporte.id
        )
        add_conversation(
            s, shop.workspace_id, shop.channel_id, "Ventas1", at=NOW, team_id=ventas.id
        )
        add_conversation(s, shop.workspace_id, shop.channel_id, "Nadie", at=NOW)
        add_conversation(
            s, shop.workspace_id, shop.channel_id, "DeBeto", at=NOW, assignee_id=shop.beto_id
        )
        hidden = add_conversation(
            s, shop.workspace_id, shop.channel_id, "Oculta", at=NOW, team_id=ventas.id
        )
        hidden_id = hidden.id
    ana_web = login(client, shop.ana_email)  # type: ignore[arg-type]
    page = ana_web.get("/inbox").text
    assert sorted(_names(page)) == ["Nadie", "Soporte1"]
    assert _count(page, "all") == 2
    # Another team's conversation is not found, rather than forbidden: ids reveal nothing.
    assert ana_web.get(f"/inbox/c/{hidden_id}").status_code == 404
