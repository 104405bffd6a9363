"""Meta's template rules, checked locally: one breaking example per rule, and a valid
template of each category (whatsapp-protocol.md §9)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from puente.outbound.templates.rules import template_languages, validate_template


def utility() -> dict[str, Any]:
    return {
        "name": "order_shipped",
        "category": "UTILITY",
        "language": "es_MX",
        "components": [
            {
                "type": "HEADER",
                "format": "TEXT",
                "text": "Pedido {{1}}",
                "example": {"header_text": ["A-17"]},
            },
            {
                "type": "BODY",
                "text": "Hola {{1}}, tu pedido {{2}} va en camino.",
                "example": {"body_text": [["Ana", "A-17"]]},
            },
            {"type": "FOOTER", "text": "Tienda Ejemplo"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {
                        "type": "URL",
                        "text": "Rastrear",
                        "url": "https://tienda.example/envios/{{1}}",
                        "example": ["https://tienda.example/envios/A-17"],
                    },
                    {"type": "PHONE_NUMBER", "text": "Llamar", "phone_number": "+5215512345678"},
                ],
            },
        ],
    }


def marketing() -> dict[str, Any]:
    return {
        "name": "promo_verano",
        "category": "MARKETING",
        "language": "es",
        "parameter_format": "named",
        "components": [
            {
                "type": "HEADER",
                "format": "IMAGE",
                "example": {"header_handle": ["4::aW1hZ2UvanBlZw==:ARb"]},
            },
            {
                "type": "BODY",
                "text": "Hola {{first_name}}, usa el código para 20% en tu compra.",
                "example": {
                    "body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]
                },
            },
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Me interesa"},
                    {"type": "QUICK_REPLY", "text": "No, gracias"},
                    {"type": "COPY_CODE", "example": "VERANO20", "text": "Copiar código"},
                ],
            },
        ],
    }


def authentication() -> dict[str, Any]:
    return {
        "name": "login_code",
        "category": "AUTHENTICATION",
        "language": "en_US",
        "components": [
            {"type": "BODY", "add_security_recommendation": True},
            {"type": "FOOTER", "code_expiration_minutes": 10},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]},
        ],
    }


@pytest.mark.parametrize("make", [utility, marketing, authentication])
def test_a_valid_template_of_each_category_passes(make: Callable[[], dict[str, Any]]) -> None:
    assert validate_template(make()) == []


def test_types_may_be_written_in_lower_case() -> None:
    t = utility()
    t["category"] = "utility"
    for comp in t["components"]:
        comp["type"] = comp["type"].lower()
    assert validate_template(t) == []


def _body(t: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in t["components"] if c["type"] == "BODY")


def _buttons(t: dict[str, Any]) -> list[dict[str, Any]]:
    comp = next(c for c in t["components"] if c["type"] == "BUTTONS")
    buttons: list[dict[str, Any]] = comp["buttons"]
    return buttons


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(t: dict[str, Any]) -> None:
        t[path] = value

    return apply


def _body_text(text: str, example: list[str] | None = None) -> Callable[[dict[str, Any]], None]:
    def apply(t: dict[str, Any]) -> None:
        _body(t)["text"] = text
        _body(t)["example"] = {"body_text": [example or []]}

    return apply


def _header(**header: Any) -> Callable[[dict[str, Any]], None]:
    def apply(t: dict[str, Any]) -> None:
        t["components"][0] = {"type": "HEADER", **header}

    return apply


def _with_buttons(*buttons: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def apply(t: dict[str, Any]) -> None:
        _buttons(t)[:] = list(buttons)

    return apply


QR = {"type": "QUICK_REPLY", "text": "Sí"}
URL = {"type": "URL", "text": "Ver", "url": "https://tienda.example"}
PHONE = {"type": "PHONE_NUMBER", "text": "Llamar", "phone_number": "+5215512345678"}
COPY = {"type": "COPY_CODE", "example": "ABC123", "text": "Copiar"}


# (id, base template, mutation, expected problem code, field it names)
CASES: list[
    tuple[str, Callable[[], dict[str, Any]], Callable[[dict[str, Any]], None], str, str]
] = [
    ("name upper case", utility, _set("name", "Order_Shipped"), "name_format", "name"),
    ("name with space", utility, _set("name", "order shipped"), "name_format", "name"),
    ("name empty", utility, _set("name", ""), "name_missing", "name"),
    ("name too long", utility, _set("name", "a" * 513), "name_too_long", "name"),
    ("category", utility, _set("category", "PROMOTION"), "category_invalid", "category"),
    ("language", utility, _set("language", "es_XX"), "language_unknown", "language"),
    ("language missing", utility, _set("language", None), "language_missing", "language"),
    (
        "parameter format",
        utility,
        _set("parameter_format", "numbered"),
        "parameter_format_invalid",
        "parameter_format",
    ),
    ("no components", utility, _set("components", []), "components_missing", "components"),
    (
        "two headers",
        utility,
        lambda t: t["components"].insert(0, copy.deepcopy(t["components"][0])),
        "header_repeated",
        "components[1]",
    ),
    (
        "no body",
        utility,
        lambda t: t["components"].remove(_body(t)),
        "body_missing",
        "components",
    ),
    (
        "two bodies",
        utility,
        lambda t: t["components"].append(copy.deepcopy(_body(t))),
        "body_repeated",
        "components[4]",
    ),
    (
        "unknown component",
        utility,
        lambda t: t["components"].append({"type": "CAROUSEL"}),
        "component_type_invalid",
        "components[4].type",
    ),
    (
        "header text too long",
        utility,
        _header(format="TEXT", text="x" * 61),
        "header_text_too_long",
        "components[0].text",
    ),
    (
        "header two variables",
        utility,
        _header(format="TEXT", text="{{1}} y {{2}}", example={"header_text": ["a", "b"]}),
        "header_too_many_variables",
        "components[0].text",
    ),
    (
        "header format",
        utility,
        _header(format="AUDIO"),
        "header_format_invalid",
        "components[0].format",
    ),
    (
        "media header without sample",
        utility,
        _header(format="IMAGE"),
        "example_missing",
        "components[0].example.header_handle",
    ),
    (
        "header variable without sample",
        utility,
        _header(format="TEXT", text="Pedido {{1}}"),
        "example_missing",
        "components[0].example.header_text",
    ),
    (
        "body too long",
        utility,
        _body_text("Hola " + "x" * 1020),
        "body_text_too_long",
        "components[1].text",
    ),
    ("body empty", utility, _body_text("   "), "body_text_missing", "components[1].text"),
    (
        "body starts with variable",
        utility,
        _body_text("{{1}}, tu pedido va en camino.", ["Ana"]),
        "body_starts_with_variable",
        "components[1].text",
    ),
    (
        "body ends with variable",
        utility,
        _body_text("Tu pedido es {{1}}", ["A-17"]),
        "body_ends_with_variable",
        "components[1].text",
    ),
    (
        "positional not consecutive",
        utility,
        _body_text("Hola {{1}}, pedido {{3}} listo.", ["Ana", "x", "A-17"]),
        "variables_not_consecutive",
        "components[1].text",
    ),
    (
        "positional not from one",
        utility,
        _body_text("Hola {{2}}, listo.", ["Ana", "x"]),
        "variables_not_consecutive",
        "components[1].text",
    ),
    (
        "named variable in positional template",
        utility,
        _body_text("Hola {{first_name}}, listo.", ["Ana"]),
        "variable_not_positional",
        "components[1].text",
    ),
    (
        "malformed variable",
        utility,
        _body_text("Hola {{ Name }}, listo.", ["Ana"]),
        "variable_format",
        "components[1].text",
    ),
    (
        "body variable without sample",
        utility,
        _body_text("Hola {{1}}, pedido {{2}} listo.", ["Ana"]),
        "example_missing",
        "components[1].example.body_text",
    ),
    (
        "positional variable in named template",
        marketing,
        lambda t: _body(t).update(text="Hola {{1}}, listo."),
        "variable_not_named",
        "components[1].text",
    ),
    (
        "named variable without sample",
        marketing,
        lambda t: _body(t).update(text="Hola {{first_name}}, tu cupón {{coupon}} te espera."),
        "example_missing",
        "components[1].example.body_text_named_params",
    ),
    (
        "footer too long",
        utility,
        lambda t: t["components"][2].update(text="x" * 61),
        "footer_text_too_long",
        "components[2].text",
    ),
    (
        "footer with variable",
        utility,
        lambda t: t["components"][2].update(text="Tienda {{1}}"),
        "footer_has_variables",
        "components[2].text",
    ),
    (
        "eleven buttons",
        marketing,
        _with_buttons(*[dict(QR, text=f"Opción {i}") for i in range(11)]),
        "too_many_buttons",
        "components[2].buttons",
    ),
    (
        "three url buttons",
        utility,
        _with_buttons(URL, URL, URL),
        "too_many_url_buttons",
        "components[3].buttons",
    ),
    (
        "two phone buttons",
        utility,
        _with_buttons(PHONE, PHONE),
        "too_many_phone_number_buttons",
        "components[3].buttons",
    ),
    (
        "two copy code buttons",
        marketing,
        _with_buttons(COPY, COPY),
        "too_many_copy_code_buttons",
        "components[2].buttons",
    ),
    (
        "copy code outside marketing",
        utility,
        _with_buttons(COPY),
        "copy_code_not_marketing",
        "components[3].buttons[0].type",
    ),
    (
        "quick replies interleaved",
        marketing,
        _with_buttons(QR, URL, dict(QR, text="No")),
        "buttons_not_grouped",
        "components[2].buttons",
    ),
    (
        "button text too long",
        marketing,
        _with_buttons(dict(QR, text="Quiero saber más de la oferta")),
        "button_text_too_long",
        "components[2].buttons[0].text",
    ),
    (
        "button without text",
        marketing,
        _with_buttons({"type": "QUICK_REPLY"}),
        "button_text_missing",
        "components[2].buttons[0].text",
    ),
    (
        "unknown button type",
        marketing,
        _with_buttons({"type": "CALL_ME", "text": "x"}),
        "button_type_invalid",
        "components[2].buttons[0].type",
    ),
    (
        "url without scheme",
        utility,
        _with_buttons(dict(URL, url="tienda.example")),
        "url_invalid",
        "components[3].buttons[0].url",
    ),
    (
        "url variable in the middle",
        utility,
        _with_buttons(dict(URL, url="https://x.example/{{1}}/ver", example=["https://x/a/ver"])),
        "url_variable",
        "components[3].buttons[0].url",
    ),
    (
        "url variable without sample",
        utility,
        _with_buttons(dict(URL, url="https://x.example/{{1}}")),
        "example_missing",
        "components[3].buttons[0].example",
    ),
    (
        "bad phone number",
        utility,
        _with_buttons(dict(PHONE, phone_number="llámanos")),
        "phone_number_invalid",
        "components[3].buttons[0].phone_number",
    ),
    (
        "authentication without OTP button",
        authentication,
        lambda t: t["components"].pop(),
        "otp_button_missing",
        "components",
    ),
    (
        "authentication with a quick reply",
        authentication,
        _with_buttons({"type": "OTP", "otp_type": "COPY_CODE"}, QR),
        "otp_button_required",
        "components[2].buttons",
    ),
    (
        "authentication with a header",
        authentication,
        lambda t: t["components"].insert(0, {"type": "HEADER", "format": "TEXT", "text": "Hi"}),
        "header_not_allowed",
        "components[0]",
    ),
    (
        "OTP outside authentication",
        utility,
        _with_buttons({"type": "OTP", "otp_type": "COPY_CODE"}),
        "otp_not_authentication",
        "components[3].buttons[0].type",
    ),
    (
        "OTP type",
        authentication,
        _with_buttons({"type": "OTP", "otp_type": "SMS"}),
        "otp_type_invalid",
        "components[2].buttons[0].otp_type",
    ),
    (
        "code expiration",
        authentication,
        lambda t: t["components"][1].update(code_expiration_minutes=120),
        "code_expiration_invalid",
        "components[1].code_expiration_minutes",
    ),
]


@pytest.mark.parametrize(
    ("make", "mutate", "code", "field"),
    [pytest.param(m, f, c, fld, id=i) for i, m, f, c, fld in CASES],
)
def test_each_rule_names_its_problem(
    make: Callable[[], dict[str, Any]],
    mutate: Callable[[dict[str, Any]], None],
    code: str,
    field: str,
) -> None:
    template = make()
    mutate(template)
    problems = validate_template(template)
    assert (field, code) in [(p.field, p.code) for p in problems], problems
    assert all(p.message for p in problems)


def test_ten_buttons_within_the_per_type_limits_pass() -> None:
    t = marketing()
    _buttons(t)[:] = [
        *[dict(QR, text=f"Opción {i}") for i in range(6)],
        URL,
        dict(URL, text="Catálogo"),
        PHONE,
        COPY,
    ]
    assert validate_template(t) == []


def test_call_to_action_buttons_may_come_first() -> None:
    t = marketing()
    _buttons(t)[:] = [URL, PHONE, QR, dict(QR, text="No")]
    assert validate_template(t) == []


def test_every_problem_is_reported_at_once() -> None:
    t = utility()
    t["name"] = "Mal Nombre"
    t["language"] = "klingon"
    _body(t)["text"] = "{{1}} " + "x" * 1100
    _buttons(t)[:] = [dict(QR, text="y" * 30), URL, QR]
    codes = {p.code for p in validate_template(t)}
    assert {
        "name_format",
        "language_unknown",
        "body_text_too_long",
        "body_starts_with_variable",
        "button_text_too_long",
        "buttons_not_grouped",
    } <= codes


def test_language_list_is_data_with_the_spanish_variants() -> None:
    languages = template_languages()
    assert {"es", "es_MX", "es_AR", "es_ES", "en_US", "pt_BR"} <= languages
    assert "es_XX" not in languages


def test_nonsense_input_is_reported_not_crashed_on() -> None:
    problems = validate_template({"components": [None, {"type": "BUTTONS", "buttons": [7]}]})
    codes = {p.code for p in problems}
    assert {"name_missing", "category_invalid", "component_invalid", "button_invalid"} <= codes
