"""The demo world a fresh sandbox starts with: one coexistence number, customers, templates."""

from __future__ import annotations

from typing import Any

from puente.sandbox.engine import Sandbox

DEMO_WABA = "102290129340398"
DEMO_NUMBER = "106540352242922"
DEMO_PHONE = "15550783881"
CUSTOMERS = {
    "573001112233": "Lucía Gómez",
    "5215512345678": "Carlos Pérez",
    "34612345678": "Marta Ruiz",
    "16505551234": "Sheena Nelson",
}
TEMPLATES: list[tuple[str, str, str, list[dict[str, Any]]]] = [
    ("hello_world", "en_US", "UTILITY", [{"type": "BODY", "text": "Hello World"}]),
    (
        "pedido_confirmado",
        "es",
        "UTILITY",
        [{"type": "BODY", "text": "Hola {{1}}, tu pedido {{2}} está confirmado."}],
    ),
    (
        "promo_mensual",
        "es",
        "MARKETING",
        [
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "¡{{1}}, este mes tienes {{2}} de descuento!"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Me interesa"},
                    {"type": "QUICK_REPLY", "text": "No, gracias"},
                ],
            },
        ],
    ),
    (
        "seguimiento_envio",
        "es",
        "UTILITY",
        [
            {"type": "BODY", "text": "Tu envío {{1}} va en camino."},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "URL", "text": "Rastrear", "url": "https://example.com/envios/{{1}}"}
                ],
            },
        ],
    ),
]


def seed_demo(sb: Sandbox) -> None:
    waba = sb.do_create_waba("Tienda La Esquina", DEMO_WABA)
    number = sb.do_create_number(
        DEMO_PHONE,
        verified_name="Tienda La Esquina",
        coexistence=True,
        waba_id=waba.id,
        number_id=DEMO_NUMBER,
    )
    for wa_id, name in CUSTOMERS.items():
        sb.customer(wa_id, name)
    for wa_id, name in list(CUSTOMERS.items())[:3]:
        number.address_book[wa_id] = {"full_name": name, "first_name": name.split(" ")[0]}
    for name, language, category, components in TEMPLATES:
        sb.do_create_template(
            waba,
            name=name,
            language=language,
            category=category,
            components=components,
            status="APPROVED",
        )
