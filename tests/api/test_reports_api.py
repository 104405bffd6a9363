"""Reports over the API: a report's figures, chart and tables from facts rolled up by the
worker, one table as CSV, the dashboard, ranges and filters refused with the reason, the
reports:read scope, and another workspace's numbers not found."""

from __future__ import annotations

import csv
import datetime as dt
import io

from fastapi.testclient import TestClient

from puente.db.session import Database
from puente.reports.facts import Fact, Kind, record
from puente.reports.worker import drain
from tests.api.conftest import Tenant, make_tenant
from tests.factories import make_channel


def _answered(db: Database, tenant: Tenant, waits: list[float]) -> int:
    """First responses of `waits` seconds today on a new number; returns its id."""
    now = dt.datetime.now(dt.UTC)
    with db.unit_of_work(scope=tenant.workspace.id) as session:
        channel = make_channel(session, tenant.workspace)
        for seconds in waits:
            for kind in (Kind.OPENED, Kind.FIRST_RESPONSE):
                record(
                    session,
                    Fact(
                        kind=kind.value,
                        workspace_id=tenant.workspace.id,
                        at=now,
                        channel_id=channel.id,
                        source="customer" if kind is Kind.OPENED else "business_app",
                        label="new" if kind is Kind.OPENED else "",
                        seconds=None if kind is Kind.OPENED else seconds,
                    ),
                )
        channel_id = channel.id
    drain(db)
    return channel_id


def test_a_report_comes_with_its_figures_chart_and_tables(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    channel_id = _answered(db, tenant, [60, 120, 600])
    got = client.get("/reports/responses?preset=today", headers=tenant.auth)
    assert got.status_code == 200, got.text
    body = got.json()
    figures = {f["key"]: f["value"] for f in body["figures"]}
    assert 110 < figures["first_response_median"] < 130  # 120 s, from its 10 % bin
    assert figures["first_response_average"] == 260
    assert body["start"] == body["end"]
    by_source = next(t for t in body["tables"] if t["key"] == "first_response_by_source")
    assert by_source["rows"][0][:2] == ["business_app", 3]

    conversations = client.get(
        f"/reports/conversations?preset=last_7_days&channel_id={channel_id}", headers=tenant.auth
    ).json()
    assert {f["key"]: f["value"] for f in conversations["figures"]}["new"] == 3
    assert len(conversations["chart"]["labels"]) == 7

    listed = client.get("/reports", headers=tenant.auth).json()["reports"]
    assert "costs" in listed and "csat" in listed


def test_a_table_downloads_as_csv(client: TestClient, tenant: Tenant, db: Database) -> None:
    _answered(db, tenant, [30])
    got = client.get("/reports/responses/tables/summary.csv?preset=today", headers=tenant.auth)
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(got.text)))
    assert rows[0][:3] == ["measure", "count", "median"]
    assert rows[1][:2] == ["first_response", "1"]
    missing = client.get("/reports/responses/tables/nope.csv", headers=tenant.auth)
    assert missing.status_code == 404
    assert "summary" in missing.json()["error"]["message"]


def test_bad_ranges_and_filters_are_refused_with_the_reason(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    auth = tenant.auth
    reversed_ = client.get("/reports/messages?start=2026-12-01&end=2026-11-01", headers=auth)
    assert reversed_.status_code == 422
    long = client.get("/reports/messages?start=2020-01-01&end=2026-01-01", headers=auth)
    assert long.status_code == 422
    zone = client.get("/reports/messages?preset=today&timezone=Mars/Olympus", headers=auth)
    assert zone.status_code == 422
    assert client.get("/reports/sales", headers=auth).status_code == 404
    # Costs are per number, not per agent.
    assert client.get("/reports/costs?agent_id=1", headers=auth).status_code == 422

    other = make_tenant(db, "Otra tienda")
    theirs = _answered(db, other, [5])
    # Another workspace's number does not exist for this token.
    assert client.get(f"/reports/costs?channel_id={theirs}", headers=auth).status_code == 404


def test_reports_need_the_reports_read_scope(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    narrow = make_tenant(db, "Solo contactos", scopes=["contacts:read"])
    assert client.get("/reports/messages", headers=narrow.auth).status_code == 403
    assert client.get("/dashboard", headers=narrow.auth).status_code == 403


def test_the_dashboard_says_what_is_open_now(
    client: TestClient, tenant: Tenant, db: Database
) -> None:
    _answered(db, tenant, [45])
    got = client.get("/dashboard", headers=tenant.auth)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["open"] == 0 and body["unassigned"] == 0
    today = {c["key"]: c for c in body["today"]}
    assert today["new"]["today"] == 1
