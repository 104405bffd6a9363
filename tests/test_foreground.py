"""Reading requests hold in-process background work back; writes and streams do not."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from puente import foreground


def _seen() -> dict[str, object]:
    # What a background worker would see right now, from another thread.
    out: dict[str, object] = {}

    def look() -> None:
        out["in_flight"] = foreground.requests_in_flight()
        out["would_pause"] = foreground.yield_to_requests(max_pause=0)

    worker = threading.Thread(target=look)
    worker.start()
    worker.join()
    return out


def read_page(_request: Request) -> JSONResponse:
    return JSONResponse(_seen())


def read_then_write(_request: Request) -> JSONResponse:
    with foreground.writing():
        during = _seen()
    return JSONResponse({"during": during, "after": _seen()})


def write(_request: Request) -> JSONResponse:
    return JSONResponse(_seen())


def stream(_request: Request) -> StreamingResponse:
    def body() -> Iterator[bytes]:
        yield f"{_seen()['in_flight']}".encode()

    return StreamingResponse(body())


app = Starlette(
    routes=[
        Route("/page", read_page),
        Route("/read-write", read_then_write),
        Route("/write", write, methods=["POST"]),
        Route("/stream", stream),
    ]
)
app.add_middleware(foreground.ForegroundMiddleware)


def test_a_page_being_read_pauses_background_work_and_releases_it_after() -> None:
    with TestClient(app) as client:
        assert client.get("/page").json() == {"in_flight": 1, "would_pause": True}
        assert _seen() == {"in_flight": 0, "would_pause": False}


def test_writes_never_hold_background_work_back() -> None:
    with TestClient(app) as client:
        assert client.post("/write").json() == {"in_flight": 0, "would_pause": False}
        got = client.get("/read-write").json()
    # While the reading request writes it may wait on a lock a paused worker holds.
    assert got["during"] == {"in_flight": 0, "would_pause": False}
    assert got["after"] == {"in_flight": 1, "would_pause": True}
    assert foreground.requests_in_flight() == 0


def test_a_streamed_body_does_not_count_once_the_response_started() -> None:
    with TestClient(app) as client:
        assert client.get("/stream").text == "0"
    assert foreground.requests_in_flight() == 0
