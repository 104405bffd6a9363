"""The API's description promises every error a route can answer, in the error envelope."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_routes_that_call_meta_document_their_502(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, method in [
        ("/templates/sync", "post"),
        ("/templates", "post"),
        ("/templates/{template_id}", "delete"),
    ]:
        responses = spec["paths"][path][method]["responses"]
        assert "502" in responses, (path, method)
        ref = responses["502"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorOut")
