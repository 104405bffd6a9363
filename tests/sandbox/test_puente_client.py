"""Puente's own Graph client against the sandbox over HTTP: a whole coexistence onboarding,
sends and media, and Meta's refusals arriving as Puente's typed errors."""

from __future__ import annotations

import asyncio

import pytest

from puente.whatsapp import errors
from puente.whatsapp.client import GraphClient
from tests.sandbox.conftest import APP_SECRET, LUCIA, Harness


def test_onboarding_send_and_media_with_puentes_client(sandbox: Harness) -> None:
    started = sandbox.control.post(
        "/signups", json={"mode": "coexistence", "phone": "573118887766"}
    ).json()
    done = sandbox.control.post(
        f"/signups/{started['id']}/confirm", json={"confirm_code": started["confirm_code"]}
    ).json()
    app_id = sandbox.control.get("/state").json()["app_id"]
    waba_id, number_id = started["waba_id"], started["phone_number_id"]

    async def walk() -> None:
        async with GraphClient(base_url=sandbox.url, api_version="v23.0") as anonymous:
            token = await anonymous.exchange_code(
                app_id=app_id, app_secret=APP_SECRET, code=done["code"]
            )
        async with GraphClient(
            base_url=sandbox.url, api_version="v23.0", access_token=token.access_token
        ) as graph:
            numbers = await graph.list_phone_numbers(waba_id)
            assert [(n.id, n.is_on_biz_app) for n in numbers] == [(number_id, True)]
            assert await graph.subscribe_app(waba_id)
            assert await graph.smb_app_data(number_id, "smb_app_state_sync")
            assert await graph.smb_app_data(number_id, "history")
            with pytest.raises(errors.GraphError) as again:
                await graph.smb_app_data(number_id, "history")
            assert again.value.code == 100 and "already" in str(again.value.details)
            with pytest.raises(errors.ReEngagementRequired):
                sandbox.config(policy_errors_sync=True)
                await graph.send_message(
                    number_id,
                    {
                        "messaging_product": "whatsapp",
                        "to": LUCIA,
                        "type": "text",
                        "text": {"body": "hola"},
                    },
                )
            sandbox.inbound(number=number_id, text="hola")
            sent = await graph.send_message(
                number_id,
                {
                    "messaging_product": "whatsapp",
                    "to": LUCIA,
                    "type": "text",
                    "text": {"body": "¡Bienvenida!"},
                },
            )
            assert sent.wamid.startswith("wamid.") and sent.wa_id == LUCIA
            media_id = await graph.upload_media(
                number_id, b"%PDF-1.4 factura", mime_type="application/pdf", filename="f.pdf"
            )
            info = await graph.get_media(media_id)
            assert await graph.download_media(info.url) == b"%PDF-1.4 factura"
            assert await graph.delete_media(media_id)

    asyncio.run(walk())


def test_rate_limits_are_typed_and_retryable(sandbox: Harness) -> None:
    sandbox.config(pair_limit=1, pair_window=60)
    sandbox.inbound(text="hola")

    async def twice() -> None:
        async with GraphClient(
            base_url=sandbox.url, api_version="v23.0", access_token="test-token"
        ) as graph:
            body = {
                "messaging_product": "whatsapp",
                "to": LUCIA,
                "type": "text",
                "text": {"body": "x"},
            }
            await graph.send_message("106540352242922", body)
            with pytest.raises(errors.PairRateLimited) as caught:
                await graph.send_message("106540352242922", body)
            assert caught.value.retryable

    asyncio.run(twice())
