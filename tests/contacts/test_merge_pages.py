"""Merging from the web UI and the command line: the refusals in each, the possible
duplicates page reached from the contacts list, the merge shown in the activity with its
split, and `puente contacts merge / split / duplicates`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from puente.app import create_app
from puente.config import Settings
from puente.contacts.models import Contact, ContactMerge
from puente.db.session import Database
from tests.command import Ran, environment, run_puente
from tests.factories import (
    PASSWORD,
    make_channel,
    make_contact,
    make_conversation,
    make_user,
    make_workspace,
)
from tests.webclient import WebClient


@dataclass
class Shop:
    slug: str
    lucia: int  # +52 1 55 1234 5678
    twin: int  # the same number without the 1
    pedro: int  # talks on the same number as Lucía
    stranger: int  # another workspace's


@pytest.fixture
def shop(db: Database) -> Shop:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Ferretería Sol")
        make_user(session, ws, role="supervisor", email="sofia@example.com")
        channel = make_channel(session, ws)
        lucia = make_contact(session, ws, wa_id="5215512345678", name="Lucía")
        twin = make_contact(session, ws, wa_id="525512345678", profile_name="Lu")
        pedro = make_contact(session, ws, name="Pedro")
        make_conversation(session, channel, lucia)
        make_conversation(session, channel, pedro)
        stranger = make_contact(session, make_workspace(session, "Otra"), name="Ajeno")
        return Shop(ws.slug, lucia.id, twin.id, pedro.id, stranger.id)


@pytest.fixture
def web(settings: Settings, db: Database, shop: Shop) -> Iterator[WebClient]:
    with TestClient(create_app(settings, db, run_workers=False)) as client:
        web = WebClient(client)
        assert web.login("sofia@example.com", PASSWORD).status_code == 200
        yield web


def _merges(db: Database) -> int:
    with db.read(unscoped="test") as session:
        return int(session.scalar(select(func.count()).select_from(ContactMerge)) or 0)


def test_the_contacts_list_leads_to_the_possible_duplicates(web: WebClient, shop: Shop) -> None:
    listing = web.get("/contacts")
    assert 'href="/contacts/duplicates"' in listing.text

    page = web.get("/contacts/duplicates")

    assert page.status_code == 200
    assert 'data-reason="same_number"' in page.text
    assert f'href="/contacts/{shop.lucia}/merge?other={shop.twin}"' in page.text
    assert "Ajeno" not in page.text


def test_the_page_refuses_itself_another_workspace_and_a_shared_number(
    web: WebClient, shop: Shop, db: Database
) -> None:
    itself = web.post(f"/contacts/{shop.lucia}/merge", {"other": str(shop.lucia)})
    across = web.post(f"/contacts/{shop.lucia}/merge", {"other": str(shop.stranger)})
    compare = web.get(f"/contacts/{shop.lucia}/merge?other={shop.pedro}")
    shared = web.post(f"/contacts/{shop.lucia}/merge", {"other": str(shop.pedro)})

    assert itself.status_code == 422
    assert "A contact cannot be merged into itself." in itself.text
    assert across.status_code == 404
    assert f"No contact {shop.stranger} in this workspace." in across.text
    assert 'data-testid="refused"' in compare.text
    assert 'data-testid="confirm-merge"' not in compare.text
    assert shared.status_code == 409
    assert "Puente keeps one conversation per contact and number" in shared.text
    assert _merges(db) == 0


def test_a_merge_from_the_page_shows_in_the_activity_and_splits_back(
    web: WebClient, shop: Shop, db: Database
) -> None:
    found = web.get(f"/contacts/{shop.lucia}/merge?q=Lu")
    assert f'href="/contacts/{shop.lucia}/merge?other={shop.twin}"' in found.text

    merged = web.post(
        f"/contacts/{shop.lucia}/merge", {"other": str(shop.twin), "field:name": "keep"}
    )

    assert merged.status_code == 200
    assert "The contacts were merged." in merged.text
    assert 'data-testid="merge-event"' in merged.text
    with db.read(unscoped="test") as session:
        merge_id = session.scalar(select(ContactMerge.id))
    split = web.post(f"/contacts/{shop.lucia}/merges/{merge_id}/split", {})
    assert split.status_code == 200
    assert f"/contacts/{shop.twin}" in str(split.url)
    assert 'data-kind="split_out"' in split.text
    again = web.post(f"/contacts/{shop.lucia}/merges/{merge_id}/split", {})
    assert again.status_code == 409
    assert "This merge cannot be split: it was split already." in again.text


def _cli(settings: Settings, *args: str) -> Ran:
    return run_puente(environment(settings), "contacts", *args)


def test_the_command_line_merges_splits_and_lists(
    settings: Settings, db: Database, shop: Shop
) -> None:
    listed = _cli(settings, "duplicates", "--workspace", shop.slug)
    assert listed.returncode == 0, listed.stderr
    assert f"same_number\t+525512345678\t{shop.lucia} Lucía, {shop.twin} Lu" in listed.stdout

    merged = _cli(settings, "merge", str(shop.lucia), str(shop.twin), "--field", "name=other")

    assert merged.returncode == 0, merged.stderr
    assert f"merged contact {shop.twin} into {shop.lucia}" in merged.stdout
    with db.read(unscoped="test") as session:
        lucia = session.get(Contact, shop.lucia)
        assert lucia is not None and lucia.name is None  # Lu had no name of her own
        merge_id = session.scalar(select(ContactMerge.id))
    split = _cli(settings, "split", str(merge_id))
    assert split.returncode == 0, split.stderr
    assert f"contact {shop.twin} is back" in split.stdout
    with db.read(unscoped="test") as session:
        lucia = session.get(Contact, shop.lucia)
        assert lucia is not None and lucia.name == "Lucía"


def test_the_command_line_refuses_in_one_line(settings: Settings, shop: Shop) -> None:
    cases = {
        ("merge", str(shop.lucia), str(shop.lucia)): "A contact cannot be merged into itself.",
        ("merge", str(shop.lucia), str(shop.stranger)): f"No contact {shop.stranger} in this",
        ("merge", str(shop.lucia), str(shop.pedro)): "one conversation per contact and number",
        ("merge", str(shop.lucia), str(shop.twin), "--field", "name"): "NAME=keep or NAME=other",
        ("split", "999"): "no merge 999",
    }
    for args, message in cases.items():
        ran = _cli(settings, *args)
        assert ran.returncode == 1, args
        assert message in ran.stderr, (args, ran.stderr)
        assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
