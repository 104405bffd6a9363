"""A broadcast's values and template request are prepared once per broadcast and filled
in per person (`ValueResolver`, `WireTemplate`): what each person is sent and reads, for
every kind of field and template part, and for values JSON has to escape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from puente.outbound.broadcasts.audience import Person
from puente.outbound.broadcasts.params import ValueResolver, WireTemplate, build_components

LUCIA = Person(1, "5215512345678", "Lucía Gómez", {"pedido": "A-1", "n": 0, "vacio": ""})
NAMELESS = Person(2, "34612345678", "", {"pedido": 'B "2" \\ ñ 😀'})
ANA = Person(4, "16505551234", "Ana", {"Pedido": "caps", "pedido": None})
CSV = {"ciudad": "Lima", "codigo": ""}


def _missing(target: str, field: str) -> tuple[dict[str, str], str]:
    return {}, f"missing value for {target} ({{{field}}} is empty and has no fallback)"


@pytest.mark.parametrize(
    ("variables", "person", "csv", "expected"),
    [
        (
            {"body.1": "{first_name|cliente}", "body.2": "{custom.pedido}"},
            LUCIA, None, ({"body.1": "Lucía", "body.2": "A-1"}, None),
        ),
        (  # no name: the fallback; a value JSON must escape, as it is
            {"body.1": "{first_name|cliente}", "body.2": "{custom.pedido}"},
            NAMELESS, None, ({"body.1": "cliente", "body.2": 'B "2" \\ ñ 😀'}, None),
        ),
        (  # text around fields; 0 is a value, not a missing one
            {"body.1": "Hola {name}, {first_name|amigo}!", "body.2": "{phone} / {custom.n|x}"},
            LUCIA, None, ({"body.1": "Hola Lucía Gómez, Lucía!", "body.2": "+5215512345678 / 0"}, None),
        ),
        (  # an empty CSV cell with no fallback names the field
            {"body.1": "{csv.ciudad|?} {csv.codigo}"}, LUCIA, CSV, _missing("body.1", "csv.codigo"),
        ),
        (  # an empty custom field and an absent CSV column take their fallbacks
            {"body.1": "{CSV.Ciudad|?}", "body.2": "{custom.vacio|—}"},
            LUCIA, None, ({"body.1": "?", "body.2": "—"}, None),
        ),
        (  # field names are read case-insensitively, custom keys as written; a bare name is custom
            {"body.1": "{CUSTOM.Pedido|y}", "body.2": "{Pedido}", "body.3": "{custom.pedido|x}"},
            ANA, None, ({"body.1": "caps", "body.2": "caps", "body.3": "x"}, None),
        ),
        ({"body.1": "{CUSTOM.Pedido|y}"}, LUCIA, None, ({"body.1": "y"}, None)),
        (  # a contact Puente does not know: only fallbacks and CSV cells
            {"body.1": "{name|amigo} de {csv.ciudad}"}, None, CSV, ({"body.1": "amigo de Lima"}, None),
        ),
        (  # names from spreadsheet headers: accents and spaces; "ó" typed either way
            {"body.1": "{custom.Dirección}", "body.2": "{csv.Ciudad de envío|?}",
             "body.3": "{custom.Direccio\u0301n}"},
            Person(5, "573001112233", "Rosa", {"Dirección": "Cra 7 # 12"}), {"ciudad de envío": "Cali"},
            ({"body.1": "Cra 7 # 12", "body.2": "Cali", "body.3": "Cra 7 # 12"}, None),
        ),
        (  # braces that are not a field stay as written
            {"body.1": "{} { name} precio {name}"}, LUCIA, None,
            ({"body.1": "{} { name} precio Lucía Gómez"}, None),
        ),
        ({"body.1": "{custom.Teléfono fijo}"}, LUCIA, None, _missing("body.1", "custom.Teléfono fijo")),
        ({"body.1": "{name}", "body.2": "{phone}"}, None, None, _missing("body.1", "name")),
        ({"body.1": "fijo", "body.2": "{phone}"}, Person(3, None, "", {}), None, _missing("body.2", "phone")),
    ],
)  # fmt: skip
def test_values_per_person(
    variables: dict[str, str],
    person: Person | None,
    csv: dict[str, str] | None,
    expected: tuple[dict[str, str], str | None],
) -> None:
    assert ValueResolver(variables)(person, csv) == expected


TEMPLATES: list[tuple[list[dict[str, Any]], bool]] = [
    ([{"type": "BODY", "text": "Hola {{1}}, tu pedido {{2}} salió."}], False),
    (
        [
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "{{1}} y {{1}} otra vez, luego {{2}}"},
            {"type": "FOOTER", "text": "pie"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Sí"},
                    {"type": "URL", "text": "Ver", "url": "https://x.example/{{1}}"},
                ],
            },
        ],
        False,
    ),
    (
        [
            {"type": "HEADER", "format": "TEXT", "text": "Pedido {{order}} / {{order}}"},
            {"type": "BODY", "text": "Hola {{name}} \\u001f {{missing}}"},
        ],
        True,
    ),
    ([{"type": "HEADER", "format": "DOCUMENT"}, {"type": "FOOTER", "text": "sin cuerpo"}], False),
    ([{"type": "BODY", "text": ""}], False),
]
VALUES = [
    {"body.1": "Lucía", "body.2": "A-1"},
    {"body.1": 'co"mi\\llas \n', "body.2": "\x1fpuente-value-0\x1f"},
    {"body.1": "😀 ñ", "body.2": "", "header.image": "https://cdn.example/a b.png"},
]


def _serialised(
    name: str, components: list[dict[str, Any]], named: bool, values: dict[str, str]
) -> str:
    """The request's `template` object serialised for this one person."""
    wire: dict[str, Any] = {"name": name, "language": {"code": "es_MX"}}
    built = build_components(components, named, values)
    if built:
        wire["components"] = built
    return json.dumps(wire)


@pytest.mark.parametrize(("components", "named"), TEMPLATES)
def test_the_spliced_request_is_the_serialised_one(
    components: list[dict[str, Any]], named: bool
) -> None:
    for name in ("aviso", 'a"viso \x1fpuente-value-0\x1f', "\x1fpuente-value-0\x1f"):
        wire = WireTemplate(name, "es_MX", components, named)
        for base in VALUES:
            values = dict(base)
            values.setdefault("header.image", "https://cdn.example/i.png")
            values.setdefault("header.document", "https://cdn.example/d.pdf")
            values["button.1"] = values["body.1"]
            values["header.order"] = values["body.2"]
            values["body.name"] = values["body.1"]
            values["body.missing"] = "m"
            for _ in range(2):  # compiled on the first call, reused on the second
                assert wire.json(values) == _serialised(name, components, named, values)


def test_wire_template_request_and_text_for_a_person() -> None:
    wire = WireTemplate(
        "aviso", "es", [{"type": "BODY", "text": "Hola {{1}}, tu pedido {{2}} salió."}], False
    )
    values = {"body.1": 'Lucía "Lu"', "body.2": "A-1"}
    assert json.loads(wire.json(values)) == {
        "name": "aviso",
        "language": {"code": "es"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": 'Lucía "Lu"'},
                    {"type": "text", "text": "A-1"},
                ],
            }
        ],
    }
    assert wire.text(values) == 'Hola Lucía "Lu", tu pedido A-1 salió.'


def test_the_body_text_a_person_reads() -> None:
    values = {"body.1": "Lucía", "body.2": "A-1"}
    repeated = WireTemplate(
        "aviso",
        "es",
        [{"type": "BODY", "text": "{{1}} y {{1}} otra vez, luego {{2}} {{3}}"}],
        False,
    )
    # A parameter without a value stays as written.
    assert repeated.text(values) == "Lucía y Lucía otra vez, luego A-1 {{3}}"
    no_body = WireTemplate("aviso", "es", [{"type": "HEADER", "format": "DOCUMENT"}], False)
    assert no_body.text(values) == "aviso"
    empty_body = WireTemplate("aviso", "es", [{"type": "BODY", "text": ""}], False)
    assert empty_body.text(values) == "aviso"
