"""The business hours pages over real HTTP, signed in through the login form: a supervisor
sets a number's schedule, holidays, closed dates and away message; each mistake is named
in the reader's language; the page and the number's page say whether it is open now."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from puente.accounts.models import Role, Workspace
from puente.accounts.service import do_create_user
from puente.automation.hours import hours_of
from puente.channels.models import Channel
from tests.channels.conftest import Coex, make_coex  # noqa: F401 (a fixture)
from tests.webclient import WebClient

# How the pages look and read runs on one leg: what they change is checked on both engines
# through the API and the domain tests (see the one_leg marker in tests/conftest.py).
pytestmark = pytest.mark.one_leg

PASSWORD = "correct horse battery staple"


@pytest.fixture
def live(make_coex: Callable[..., Coex]) -> Coex:  # noqa: F811
    return make_coex()


def signed_in(live: Coex, role: Role, locale: str) -> WebClient:
    email = f"{role.value}-{locale}@example.com"
    with live.db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, live.workspace_id)
        assert ws is not None
        do_create_user(
            session, workspace=ws, email=email, password=PASSWORD, name="Ana", role=role,
            locale=locale,
        )  # fmt: skip
    web = WebClient(httpx.Client(base_url=live.puente.url, timeout=30))
    assert web.login(email, PASSWORD).status_code == 200
    return web


def week_form(**days: list[tuple[str, str]]) -> dict[str, str]:
    form: dict[str, str] = {}
    for day, intervals in days.items():
        for slot, (start, end) in enumerate(intervals):
            form[f"{day}_start_{slot}"] = start
            form[f"{day}_end_{slot}"] = end
    return form


SHOP = week_form(
    **{d: [("09:00", "13:00"), ("15:00", "19:00")] for d in ("mon", "tue", "wed", "thu", "fri")},
    sat=[("10:00", "14:00")],
)


def stored_hours(live: Coex, channel_id: int) -> Any:
    with live.db.read(unscoped="test") as session:
        channel = session.get(Channel, channel_id)
        assert channel is not None
        return hours_of(channel)


def test_a_supervisor_sets_the_hours_in_spanish(live: Coex) -> None:
    channel_id = live.onboard(import_history=False)
    web = signed_in(live, Role.SUPERVISOR, "es")
    listing = web.get("/settings/business-hours")
    assert listing.status_code == 200
    assert "Sin horario todavía" in listing.text
    assert f'href="/channels/{channel_id}/business-hours"' in listing.text
    page = web.get(f"/channels/{channel_id}/business-hours")
    assert page.status_code == 200 and "Horario de atención" in page.text

    saved = web.post(
        f"/channels/{channel_id}/business-hours",
        {
            **SHOP,
            "time_zone": "America/Mexico_City",
            "holidays_country": "MX",
            "closed_dates": "2026-12-24\n2026-12-31",
            "away_enabled": "yes",
            "away_message": "Hola {contact.name|}, ya cerramos.",
            "away_every_hours": "12",
        },
    )
    assert saved.status_code == 303, saved.text
    hours = stored_hours(live, channel_id)
    assert hours.time_zone == "America/Mexico_City" and hours.holidays_country == "MX"
    assert [(i.start, i.end) for i in hours.week[0]] == [(540, 780), (900, 1140)]
    assert hours.week[6] == () and hours.away_enabled and len(hours.closed_dates) == 2

    shown = web.get(saved.headers["location"]).text
    assert "Guardado." in shown
    status = re.search(r'data-testid="hours-status"><strong>([^<]+)<', shown)
    assert status is not None
    assert status.group(1) == "Abierto ahora" or status.group(1).startswith(
        "Cerrado ahora, abre"
    ), status.group(1)
    # The form reads back what was saved, and the coming holidays are named in Spanish.
    assert 'value="15:00"' in shown and "selected>México<" in shown
    assert "Navidad" in shown or "Año Nuevo" in shown


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        (
            "en",
            [
                "Monday, interval 1: the interval ends before it starts",
                "Tuesday, interval 2: overlaps another interval of the same day",
                "Public holidays of: no public holidays are known for this country",
                "Away message: write the away message, or turn it off",
            ],
        ),
        (
            "es",
            [
                "Lunes, intervalo 1: el intervalo termina antes de empezar",
                "Martes, intervalo 2: se superpone con otro intervalo del mismo día",
                "Feriados de: no se conocen feriados para este país",
                "Mensaje de ausencia: escribe el mensaje de ausencia o desactívalo",
            ],
        ),
    ],
)
def test_each_mistake_is_named_in_the_readers_language(
    live: Coex, locale: str, expected: list[str]
) -> None:
    channel_id = live.onboard(import_history=False)
    web = signed_in(live, Role.ADMIN, locale)
    refused = web.post(
        f"/channels/{channel_id}/business-hours",
        {
            **week_form(mon=[("13:00", "09:00")], tue=[("09:00", "14:00"), ("13:00", "18:00")]),
            "time_zone": "Europe/Madrid",
            "holidays_country": "ZZ",
            "away_enabled": "yes",
            "away_message": "",
            "away_every_hours": "12",
        },
    )
    assert refused.status_code == 422
    errors = re.findall(r'<li data-field="[^"]+">([^<]+)</li>', refused.text)
    assert [e.split(" (")[0] for e in errors] == expected
    # What was typed is shown back to be corrected, and nothing was stored.
    assert 'value="13:00"' in refused.text and 'value="18:00"' in refused.text
    assert stored_hours(live, channel_id) is None


def test_the_numbers_page_says_whether_it_is_open(live: Coex) -> None:
    channel_id = live.onboard(import_history=False)
    web = signed_in(live, Role.ADMIN, "en")
    before = web.get(f"/channels/{channel_id}").text
    assert "No business hours yet: the number counts as always open." in before
    web.post(
        f"/channels/{channel_id}/business-hours",
        {"time_zone": "Asia/Tokyo", "away_every_hours": "12"},  # no open day at all
    )
    after = web.get(f"/channels/{channel_id}").text
    assert "Closed now, with no opening in the schedule" in after
    always = week_form(
        **{d: [("00:00", "24:00")] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    )
    web.post(
        f"/channels/{channel_id}/business-hours",
        {**always, "time_zone": "Asia/Tokyo", "away_every_hours": "12"},
    )
    assert "Open now" in web.get(f"/channels/{channel_id}").text


def test_an_opening_later_in_the_week_names_the_day(live: Coex) -> None:
    channel_id = live.onboard(import_history=False)
    web = signed_in(live, Role.SUPERVISOR, "en")
    # Open one minute a week, two days from now in UTC: closed now whenever this runs.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[later.weekday()]
    web.post(
        f"/channels/{channel_id}/business-hours",
        {**week_form(**{day: [("09:00", "09:01")]}), "time_zone": "UTC", "away_every_hours": "1"},
    )
    status = web.get(f"/channels/{channel_id}/business-hours").text
    assert f"Closed now, opens {later.strftime('%A')} 09:00" in status


def test_agents_cannot_open_the_business_hours(live: Coex) -> None:
    channel_id = live.onboard(import_history=False)
    web = signed_in(live, Role.AGENT, "en")
    assert web.get(f"/channels/{channel_id}/business-hours").status_code == 403
    assert web.get("/settings/business-hours").status_code == 403
    refused = web.post(
        f"/channels/{channel_id}/business-hours", {"time_zone": "UTC", "away_every_hours": "1"}
    )
    assert refused.status_code == 403
    assert stored_hours(live, channel_id) is None
