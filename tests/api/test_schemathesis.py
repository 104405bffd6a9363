"""Property-based run of the published OpenAPI document against the API.

Every operation gets generated requests (valid ones, and invalid ones that must be
refused with a 4xx) sent with a valid token; responses must never be 5xx and must
match the documented status codes and shapes.
"""

from __future__ import annotations

import datetime as dt

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from puente.api.routes import build_api
from puente.config import Settings
from puente.db.session import Database
from puente.runtime import Runtime
from tests.factories import (
    make_channel,
    make_contact,
    make_conversation,
    make_message,
    make_token,
    make_workspace,
)

# Routes held to every schemathesis check (documented status codes, response shapes,
# refusal of invalid input). Every other route must at least never answer 5xx.
FULLY_CHECKED_TAGS = {"channels", "chat-links", "contacts", "conversations"}


OTHER_ROUTES = pytest.param(False, id="other-routes")


# On PostgreSQL only: the engine whose stricter types (integer ranges, text encodings)
# would turn a generated request into a 5xx; the shorter leg, too.
@pytest.mark.one_leg("postgres")
@pytest.mark.parametrize("fully_checked", [pytest.param(True, id="core-routes"), OTHER_ROUTES])
@pytest.mark.parametrize(
    "mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)
def test_api_answers_every_generated_request_without_5xx(
    settings: Settings, db: Database, mode: schemathesis.GenerationMode, fully_checked: bool
) -> None:
    with db.unit_of_work(unscoped="test") as session:
        ws = make_workspace(session, "Fuzz")
        token = make_token(session, ws)
        channel = make_channel(session, ws)
        conversation = make_conversation(session, channel, make_contact(session, ws))
        make_message(session, conversation, timestamp=dt.datetime.now(dt.UTC))
    api = build_api(Runtime.from_settings(settings, db))
    schema = schemathesis.openapi.from_asgi("/openapi.json", api)
    auth = {"Authorization": f"Bearer {token}"}

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:
        tags = set(operation.definition.raw.get("tags", []))
        if bool(tags & FULLY_CHECKED_TAGS) != fully_checked:
            continue
        checks = None if fully_checked else [not_a_server_error]

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=10,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            # A schema-valid phone can still be no real number, and a valid new contact
            # can be a duplicate: JSON Schema cannot say so, so a 422/409 there is right.
            case.call_and_validate(
                headers=auth,
                checks=checks,  # noqa: B023 (run() is called before the loop moves on)
                excluded_checks=[positive_data_acceptance],
            )

        run()


def test_openapi_document_is_complete(settings: Settings, db: Database) -> None:
    spec = schemathesis.openapi.from_asgi(
        "/openapi.json", build_api(Runtime.from_settings(settings, db))
    ).raw_schema
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            if not set(operation.get("tags", [])) & FULLY_CHECKED_TAGS:
                continue
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), f"{where} has no summary"
            assert operation.get("tags"), f"{where} has no tags"
            responses = operation["responses"]
            assert {"401", "422"} <= set(responses), f"{where} lacks documented errors"
            success = [code for code in responses if code.startswith("2")]
            assert success, f"{where} documents no success response"
            assert "ErrorOut" in str(responses["401"]), where
