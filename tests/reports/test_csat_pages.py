"""The satisfaction survey's settings pages over real HTTP, signed in through the login
form: a supervisor finds the numbers in the settings, sets a number's survey (the question
starts in their language), a template that cannot go is refused by name, an agent may
not, and the number's page says how the survey is asked."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from puente.accounts.models import Role, Workspace
from puente.accounts.service import do_create_user
from puente.channels.models import Channel
from puente.reports.csat_settings import SurveySettings, survey_settings
from tests.channels.conftest import Coex, make_coex  # noqa: F401 (a fixture)
from tests.factories import PASSWORD
from tests.webclient import WebClient

# The settings page's looks and refusals: the survey's storage and flow run on both
# engines in test_csat.py.
pytestmark = pytest.mark.one_leg


@pytest.fixture
def live(make_coex: Callable[..., Coex]) -> Coex:  # noqa: F811
    return make_coex()


def signed_in(live: Coex, role: Role) -> WebClient:
    email = f"{role.value}@example.com"
    with live.db.unit_of_work(unscoped="test") as session:
        ws = session.get(Workspace, live.workspace_id)
        assert ws is not None
        do_create_user(
            session, workspace=ws, email=email, password=PASSWORD, name="Sara", role=role,
            locale="en",
        )  # fmt: skip
    web = WebClient(httpx.Client(base_url=live.puente.url, timeout=30))
    assert web.login(email, PASSWORD).status_code == 200
    return web


def stored(live: Coex, channel_id: int) -> SurveySettings:
    with live.db.read(unscoped="test") as session:
        channel = session.get(Channel, channel_id)
        assert channel is not None
        return survey_settings(channel)


def test_a_supervisor_turns_the_survey_on_for_a_number(live: Coex) -> None:
    channel_id = live.onboard(import_history=False)
    web = signed_in(live, Role.SUPERVISOR)
    listing = web.get("/settings/surveys")
    assert listing.status_code == 200
    assert "Off: no survey" in listing.text
    page = web.get(f"/channels/{channel_id}/survey")
    assert page.status_code == 200
    # Nothing set yet: the question is offered in the reader's language, and the page
    # says why buttons give three answers.
    assert "Thank you for writing to us! How would you rate the help you got?" in page.text
    assert "WhatsApp allows at most 3 reply buttons in a message" in page.text
    assert "😀 Great (5), 😐 OK (3), 😞 Poor (1)" in page.text

    saved = web.post(
        f"/channels/{channel_id}/survey",
        {
            "mode": "list",
            "language": "en",
            "question": "How did we do?",
            "follow_up": "yes",
            "comment_question": "Anything to add?",
            "template": "",
        },
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/channels/{channel_id}/survey?flash=saved"
    assert stored(live, channel_id) == SurveySettings(
        mode="list",
        language="en",
        question="How did we do?",
        follow_up=True,
        comment_question="Anything to add?",
    )
    shown = web.get(f"/channels/{channel_id}/survey?flash=saved")
    assert "Saved." in shown.text and "How did we do?" in shown.text
    assert "A list (5 answers, 1 to 5) · asks for a comment" in web.get("/settings/surveys").text


def test_a_template_that_cannot_go_is_refused_by_name(live: Coex) -> None:
    channel_id = live.onboard(import_history=False)
    web = signed_in(live, Role.SUPERVISOR)
    refused = web.post(
        f"/channels/{channel_id}/survey",
        {"mode": "buttons", "language": "en", "template": "no_such_template|en_US"},
    )
    assert refused.status_code == 422
    assert "Template outside the 24-hour window: choose an approved template" in refused.text
    assert stored(live, channel_id) == SurveySettings()
    odd = web.post(f"/channels/{channel_id}/survey", {"mode": "sms", "language": "en"})
    assert odd.status_code == 422 and "choose off, reply buttons or a list" in odd.text


def test_an_agent_may_not_and_the_numbers_page_says_how_it_is_asked(live: Coex) -> None:
    channel_id = live.onboard(import_history=False)
    agent = signed_in(live, Role.AGENT)
    assert agent.get(f"/channels/{channel_id}/survey").status_code == 403
    assert agent.post(f"/channels/{channel_id}/survey", {"mode": "list"}).status_code == 403
    assert stored(live, channel_id) == SurveySettings()

    admin = signed_in(live, Role.ADMIN)
    assert "Off: no survey when a conversation closes." in admin.get(f"/channels/{channel_id}").text
    admin.post(f"/channels/{channel_id}/survey", {"mode": "buttons", "language": "es"})
    card = admin.get(f"/channels/{channel_id}").text
    assert "Asked with reply buttons when a conversation closes." in card
    assert f'href="/channels/{channel_id}/survey"' in card
