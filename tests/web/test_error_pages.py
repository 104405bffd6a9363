"""A browser meets the web UI's own error page (translated, with a way back home) for an
unknown address, a wrong method or a page that fails; the API keeps its JSON errors."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from puente.app import create_app
from puente.config import Settings
from puente.db.session import Database

# Pages and their refusals read the same on either database; the queries behind them run
# on both legs in the API and domain tests. One leg (see tests/conftest.py).
pytestmark = pytest.mark.one_leg("sqlite")

BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
SPANISH = {**BROWSER, "accept-language": "es-CO,es;q=0.9"}


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db, run_workers=False)


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def _is_error_page(html: str) -> bool:
    return 'data-testid="error"' in html and '<a href="/">' in html


def test_an_unknown_address_in_a_browser_gets_the_error_page(client: TestClient) -> None:
    page = client.get("/no-such-page", headers=BROWSER)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert _is_error_page(page.text)
    assert "There is no page at this address." in page.text
    assert "Go to the start page" in page.text
    assert '"detail"' not in page.text


def test_the_error_page_speaks_the_browsers_language(client: TestClient) -> None:
    page = client.get("/no-such-page", headers=SPANISH)
    assert page.status_code == 404
    assert _is_error_page(page.text)
    assert "No encontrado" in page.text
    assert "Ir al inicio" in page.text
    assert "Go to the start page" not in page.text


def test_a_wrong_method_on_a_page_gets_the_error_page(client: TestClient) -> None:
    page = client.delete("/login", headers=BROWSER)
    assert page.status_code == 405
    assert _is_error_page(page.text)
    assert "GET" in page.headers["allow"]


@pytest.mark.parametrize(
    ("status", "fail"),
    [
        (403, HTTPException(403)),
        (404, HTTPException(404)),
        (500, RuntimeError("a page that fails")),
    ],
)
def test_a_page_that_refuses_or_fails_shows_the_error_page(
    app: FastAPI, client: TestClient, status: int, fail: Exception
) -> None:
    def failing_page() -> None:
        raise fail

    app.add_api_route("/failing-page", failing_page)
    page = client.get("/failing-page", headers=BROWSER)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert _is_error_page(page.text)
    assert "Traceback" not in page.text
    assert "Internal Server Error" not in page.text


def test_the_api_keeps_its_json_errors(app: FastAPI, client: TestClient) -> None:
    # Even when the caller says it takes HTML (a browser opening an API address).
    unknown = client.get("/api/v1/no-such-thing", headers=BROWSER)
    assert unknown.status_code == 404
    assert unknown.json() == {"error": {"code": "not_found", "message": "Not Found"}}
    unsigned = client.get("/api/v1/contacts", headers=BROWSER)
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["code"] == "not_authenticated"


def test_a_client_that_does_not_ask_for_html_gets_json(client: TestClient) -> None:
    answer = client.get("/no-such-page", headers={"accept": "application/json"})
    assert answer.status_code == 404
    assert answer.json() == {"detail": "Not Found"}
