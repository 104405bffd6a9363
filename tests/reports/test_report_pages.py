"""The Reports pages over HTTP, signed in through the login form: a supervisor sees every
report and every agent's row, an agent only their own figures (and is refused the
business's reports and other people's figures), a range that cannot be is explained on
the page (422) and refused for a CSV, and each table downloads as CSV with a translated
header and durations in seconds as plain numbers.

The figures come from facts recorded as the domain records them, rolled up by the
report worker's own drain."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape

import pytest
from fastapi.testclient import TestClient

from puente.accounts.models import User
from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database
from puente.reports.facts import Fact, Kind, record
from puente.reports.worker import drain
from tests.factories import PASSWORD, make_channel, make_team, make_user, make_workspace
from tests.webclient import WebClient

# The pages' looks and who sees them: the figures beneath are the queries that
# tests/reports/test_rollups.py and tests/api/test_reports_api.py run on both engines.
pytestmark = pytest.mark.one_leg

# Local days of the workspace (Mexico City, UTC-6): 2 to 6 March 2026.
RANGE = "start=2026-03-02&end=2026-03-06"
NOON = dt.datetime(2026, 3, 3, 18, 0, tzinfo=dt.UTC)  # 12:00 on 3 March, local


@dataclass
class Shop:
    ws: int
    channel: int
    sofia: str  # supervisor
    ana: str  # agent, team Ventas
    ana_id: int
    beto_id: int
    ventas: int
    soporte: int


@pytest.fixture
def shop(db: Database) -> Shop:
    with db.unit_of_work(unscoped="test") as s:
        ws = make_workspace(s, "Tienda La Esquina")
        ws.timezone = "America/Mexico_City"
        sofia = make_user(s, ws, role="supervisor", name="Sofía Supervisora")
        ana = make_user(s, ws, role="agent", name="Ana Agente")
        beto = make_user(s, ws, role="agent", name="Beto Agente")
        ventas = make_team(s, ws, "Ventas", [ana])
        soporte = make_team(s, ws, "Soporte", [beto])
        channel = make_channel(s, ws)
        shop = Shop(
            ws.id, channel.id, sofia.email, ana.email, ana.id, beto.id, ventas.id, soporte.id
        )
    with db.unit_of_work(scope=shop.ws) as s:

        def fact(kind: Kind, **dims: object) -> None:
            base: dict[str, object] = {"channel_id": shop.channel, "at": NOON}
            record(s, Fact(kind=kind.value, workspace_id=shop.ws, **{**base, **dims}))  # type: ignore[arg-type]

        # Ana answered first in 2 min 5 s and resolved twice; Beto once, after 10 min; the
        # owner's phone answered a third conversation in 1 min.
        fact(Kind.FIRST_RESPONSE, agent_id=ana.id, team_id=ventas.id, source="agent", seconds=125)
        fact(Kind.FIRST_RESPONSE, agent_id=beto.id, team_id=soporte.id, source="agent", seconds=600)
        fact(Kind.FIRST_RESPONSE, source="business_app", seconds=60)
        fact(Kind.RESOLVED, agent_id=ana.id, team_id=ventas.id, seconds=3780)
        fact(Kind.RESOLVED, agent_id=ana.id, team_id=ventas.id, seconds=3780)
        fact(Kind.RESOLVED, agent_id=beto.id, team_id=soporte.id, seconds=900)
        fact(Kind.MESSAGE, source="customer", label="text", count=12345)
        fact(Kind.MESSAGE, source="history", label="text", count=700)
        fact(Kind.MESSAGE, source="agent", label="text", agent_id=ana.id, count=3)
        # Outside the range: the day before it, local time.
        fact(Kind.RESOLVED, agent_id=ana.id, at=dt.datetime(2026, 3, 2, 5, 0, tzinfo=dt.UTC))
    drain(db)
    return shop


def signed_in(
    settings: Settings, db: Database, email: str, lang: str = "en"
) -> Iterator[WebClient]:
    with db.unit_of_work(unscoped="test") as s:
        user = s.query(User).filter_by(email=email).one()
        user.locale = lang
    with TestClient(create_app(settings, db)) as client:
        web = WebClient(client)
        assert web.login(email, PASSWORD).status_code == 200
        yield web


@pytest.fixture
def sofia(settings: Settings, db: Database, shop: Shop) -> Iterator[WebClient]:
    yield from signed_in(settings, db, shop.sofia)


@pytest.fixture
def ana(settings: Settings, db: Database, shop: Shop) -> Iterator[WebClient]:
    yield from signed_in(settings, db, shop.ana)


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def figures(html: str) -> dict[str, str]:
    found = re.findall(
        r'data-key="([^"]+)">\s*<span class="report-figure-value">([^<]*)</span>', html
    )
    return {key: unescape(value) for key, value in found}


def rows_of(html: str, table: str) -> list[list[str]]:
    section = html.split(f'data-table="{table}"', 1)[1].split("</section>", 1)[0]
    body = section.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", row)]
        for row in body.split("</tr>")
        if "<td" in row
    ]


def test_the_bar_leads_every_member_to_the_reports(sofia: WebClient, ana: WebClient) -> None:
    page = sofia.get("/reports")
    assert page.status_code == 200
    assert '<a href="/reports"' in sofia.get("/inbox").text
    cards = re.findall(r'data-testid="report-card" data-key="([^"]+)"', page.text)
    assert cards == [
        "conversations",
        "responses",
        "resolutions",
        "messages",
        "contacts",
        "assignments",
        "leaderboard",
        "users",
        "broadcasts",
        "costs",
        "csat",
    ]
    mine = ana.get("/reports")
    assert '<a href="/reports"' in ana.get("/inbox").text
    assert "You see your own figures" in mine.text
    shown = re.findall(r'data-testid="report-card" data-key="([^"]+)"', mine.text)
    assert "costs" not in shown and "contacts" not in shown and "leaderboard" in shown


def test_a_supervisor_sees_every_agent_and_the_owners_phone(sofia: WebClient) -> None:
    page = sofia.get(f"/reports/leaderboard?{RANGE}")
    assert page.status_code == 200
    rows = rows_of(page.text, "leaderboard")
    assert [r[:2] for r in rows] == [
        ["Ana Agente", "2"],
        ["Beto Agente", "1"],
        ["Business app", "0"],
    ]
    # Durations read as a person says them: the leaderboard's medians come from 10 %
    # bins; the averages are exact.
    responses = sofia.get(f"/reports/responses?{RANGE}")
    summary = {r[0]: r for r in rows_of(responses.text, "summary")}
    assert summary["First response"][1] == "3"
    assert summary["First response"][3] == "4 min 22 s"  # (125 + 600 + 60) / 3 = 261.7 s
    resolutions = figures(sofia.get(f"/reports/resolutions?{RANGE}").text)
    assert resolutions["resolved"] == "3"
    assert resolutions["resolution_time_average"] == "47 min"  # (3780 * 2 + 900) / 3 = 2,820 s
    messages = sofia.get(f"/reports/messages?{RANGE}")
    assert figures(messages.text)["messages"] == "13,048"
    assert ["Imported history", "700"] in rows_of(messages.text, "by_source")


def test_a_filter_narrows_the_figures(sofia: WebClient, shop: Shop) -> None:
    page = sofia.get(f"/reports/resolutions?{RANGE}&team={shop.soporte}&agent=")
    assert figures(page.text)["resolved"] == "1"
    assert f'<option value="{shop.soporte}" selected>' in page.text
    page = sofia.get(f"/reports/messages?{RANGE}&source=history")
    assert figures(page.text)["messages"] == "700"
    # The preset links keep the filters.
    assert (
        f"/reports/resolutions?preset=today&amp;team={shop.soporte}"
        in sofia.get(f"/reports/resolutions?{RANGE}&team={shop.soporte}").text
    )


def test_an_agent_sees_only_their_own_figures(ana: WebClient, shop: Shop) -> None:
    page = ana.get(f"/reports/leaderboard?{RANGE}")
    assert page.status_code == 200
    assert [r[:2] for r in rows_of(page.text, "leaderboard")] == [["Ana Agente", "2"]]
    assert 'data-testid="filter-agent"' not in page.text
    teams = re.findall(
        r'<option value="(\d+)"', page.text.split('name="team"')[1].split("</select>")[0]
    )
    assert teams == [str(shop.ventas)]
    assert figures(ana.get(f"/reports/resolutions?{RANGE}").text)["resolved"] == "2"
    for refused in (
        f"/reports/costs?{RANGE}",
        f"/reports/contacts?{RANGE}",
        f"/reports/leaderboard?{RANGE}&agent={shop.beto_id}",
        f"/reports/leaderboard?{RANGE}&team={shop.soporte}",
        f"/reports/costs.csv?table=billable&{RANGE}",
    ):
        assert ana.get(refused).status_code == 403, refused


def test_what_is_not_there_is_not_found(sofia: WebClient, db: Database) -> None:
    with db.unit_of_work(unscoped="test") as s:
        elsewhere = make_channel(s, make_workspace(s, "Otra tienda")).id
    assert sofia.get("/reports/salaries").status_code == 404
    assert sofia.get(f"/reports/messages?{RANGE}&channel={elsewhere}").status_code == 404
    assert sofia.get(f"/reports/messages.csv?table=nothing&{RANGE}").status_code == 404


def test_a_reversed_range_is_explained_on_the_page(sofia: WebClient) -> None:
    page = sofia.get("/reports/conversations?start=2026-03-06&end=2026-03-02")
    assert page.status_code == 422
    assert "The range ends (2026-03-02) before it starts (2026-03-06)." in text_of(page.text)
    assert 'value="2026-03-06"' in page.text  # what they typed, to correct it
    assert sofia.get("/reports/conversations?start=2026-13-01&end=2026-03-02").status_code == 422
    csv_page = sofia.get("/reports/conversations.csv?table=by_day&start=2026-03-06&end=2026-03-02")
    assert csv_page.status_code == 422


def test_the_page_speaks_the_readers_language(settings: Settings, db: Database, shop: Shop) -> None:
    for web in signed_in(settings, db, shop.sofia, "es"):
        page = web.get("/reports/conversations?start=2026-03-06&end=2026-03-02")
        assert page.status_code == 422
        assert 'data-testid="report-error"' in page.text
        # Spanish separators, and a duration in the Spanish page.
        page = web.get(f"/reports/messages?{RANGE}")
        assert figures(page.text)["messages"] == "13.048"
        page = web.get(f"/reports/responses?{RANGE}")
        assert figures(page.text)["first_response_average"] == "4 min 22 s"


def test_a_table_downloads_as_csv(sofia: WebClient) -> None:
    with sofia.http.stream(
        "GET", f"/reports/leaderboard.csv?table=leaderboard&{RANGE}"
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert (
            "leaderboard-leaderboard-2026-03-02-2026-03-06.csv"
            in response.headers["content-disposition"]
        )
        assert "content-length" not in response.headers  # streamed, a line at a time
        body = "".join(response.iter_text())
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0] == [
        "Agent",
        "Resolved",
        "First response (s)",
        "Response time (s)",
        "CSAT",
        "Messages",
    ]
    by_name = {r[0]: r for r in rows[1:]}
    assert set(by_name) == {"Ana Agente", "Beto Agente", "Business app"}
    assert by_name["Ana Agente"][1] == "2"
    # A median from a 10 % bin: a number of seconds within 5 % of the 125 s answer.
    assert abs(float(by_name["Ana Agente"][2]) - 125) <= 125 * 0.05
    assert by_name["Ana Agente"][5] == "3"
    days = sofia.get(f"/reports/conversations.csv?table=by_day&{RANGE}")
    lines = list(csv.reader(io.StringIO(days.text.lstrip("\ufeff"))))
    assert lines[0] == ["Date", "New", "Reopened", "Resolved"]
    assert [r[0] for r in lines[1:]] == [f"2026-03-0{d}" for d in range(2, 7)]
    assert lines[2] == ["2026-03-03", "0", "0", "3"]


def test_a_spanish_csv_has_a_spanish_header(settings: Settings, db: Database, shop: Shop) -> None:
    for web in signed_in(settings, db, shop.sofia, "es"):
        response = web.get(f"/reports/responses.csv?table=summary&{RANGE}")
        header = next(csv.reader(io.StringIO(response.text.lstrip("\ufeff"))))
        assert len(header) == 8 and header[2].endswith("(s)")
        assert response.status_code == 200


def test_each_report_opens_for_a_supervisor(sofia: WebClient) -> None:
    for key in (
        "conversations",
        "responses",
        "resolutions",
        "messages",
        "contacts",
        "assignments",
        "leaderboard",
        "users",
        "broadcasts",
        "costs",
        "csat",
    ):
        page = sofia.get(f"/reports/{key}?preset=last_30_days")
        assert page.status_code == 200, key
        assert 'id="report-chart-data"' in page.text and 'role="img"' in page.text, key
        assert 'aria-current="true"' in page.text, key  # the preset pressed
