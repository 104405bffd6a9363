"""A broadcast template's per-contact values: which parameters the template needs
("body.1", "header.image", "button.0"), values written with `{field|fallback}` parts, and
the wire components built from them (protocol §7)."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from puente.errors import InvalidInput
from puente.outbound.broadcasts.audience import Person

_PARAM = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
# A field's name is anything up to `|` or `}` that starts with a non-space: custom fields
# and CSV columns come from spreadsheet headers ("Dirección", "Ciudad de envío").
_FIELD = re.compile(r"\{([^{}|\s][^{}|]*?)\s*(?:\|([^{}]*))?\}")
MEDIA_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")
FIELDS_HELP = "name, first_name, phone, custom.<field> or csv.<column>"


def template_targets(components: list[dict[str, Any]]) -> list[str]:
    """The values a template needs, in the order Meta reads them."""
    targets: list[str] = []
    for component in components or []:
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            fmt = str(component.get("format", "TEXT")).upper()
            if fmt in MEDIA_FORMATS:
                targets.append(f"header.{fmt.lower()}")
            else:
                targets += [f"header.{p}" for p in _PARAM.findall(component.get("text") or "")]
        elif kind == "BODY":
            targets += [f"body.{p}" for p in _PARAM.findall(component.get("text") or "")]
        elif kind == "BUTTONS":
            for index, button in enumerate(component.get("buttons") or []):
                if str(button.get("type", "")).upper() == "URL" and _PARAM.search(
                    button.get("url") or ""
                ):
                    targets.append(f"button.{index}")
    return list(dict.fromkeys(targets))


def check_variables(targets: list[str], variables: Mapping[str, Any]) -> dict[str, str]:
    """Every target needs a value (fields allowed); unknown targets are refused."""
    problems = []
    clean: dict[str, str] = {}
    for target in targets:
        value = variables.get(target)
        if value is None or not str(value).strip():
            problems.append(
                {"field": f"variables.{target}", "message": "the template needs a value here"}
            )
        else:
            clean[target] = str(value)
    for target in variables:
        if target not in targets:
            problems.append(
                {"field": f"variables.{target}", "message": "the template has no such parameter"}
            )
    if problems:
        raise InvalidInput(
            "the template's variables do not match it: "
            + "; ".join(f"{p['field']}: {p['message']}" for p in problems),
            details=problems,
        )
    return clean


def build_components(
    components: list[dict[str, Any]], named: bool, values: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The template's `components` on the wire for these values."""
    out: list[dict[str, Any]] = []
    for component in components or []:
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            fmt = str(component.get("format", "TEXT")).upper()
            if fmt in MEDIA_FORMATS:
                media = fmt.lower()
                out.append(
                    {
                        "type": "header",
                        "parameters": [{"type": media, media: {"link": values[f"header.{media}"]}}],
                    }
                )
            else:
                params = _PARAM.findall(component.get("text") or "")
                if params:
                    out.append(
                        {
                            "type": "header",
                            "parameters": _text_params("header", params, named, values),
                        }
                    )
        elif kind == "BODY":
            params = list(dict.fromkeys(_PARAM.findall(component.get("text") or "")))
            if params:
                out.append(
                    {"type": "body", "parameters": _text_params("body", params, named, values)}
                )
        elif kind == "BUTTONS":
            for index in range(len(component.get("buttons") or [])):
                target = f"button.{index}"
                if target in values:
                    out.append(
                        {
                            "type": "button",
                            "sub_type": "url",
                            "index": index,
                            "parameters": [{"type": "text", "text": values[target]}],
                        }
                    )
    return out


def _text_params(
    part: str, params: list[str], named: bool, values: Mapping[str, str]
) -> list[dict[str, Any]]:
    result = []
    for param in params:
        entry: dict[str, Any] = {"type": "text", "text": values[f"{part}.{param}"]}
        if named:
            entry["parameter_name"] = param
        result.append(entry)
    return result


# -- per person, prepared once per broadcast ----------------------------------------------
# A broadcast renders the same variables and template for every recipient; only the
# person differs. These do the parsing once (the `{field|fallback}` parts, the template's
# wire form, its body text) and then only fill in each person's values.


def _field_getter(name: str) -> Any:
    """Reads one field of a person or a CSV row: `name`, `first_name`, `phone`,
    `custom.<field>` (a bare name is a custom field too) or `csv.<column>`; None when
    it has no value."""
    # One Unicode form, so "ó" typed in a browser matches "ó" from a spreadsheet header.
    name = unicodedata.normalize("NFC", name)
    key = name.lower()
    if key.startswith("contact."):
        # Automatic messages write `{contact.name}` (issue #16's variables): the same field.
        name, key = name[8:], key[8:]
    if key.startswith("csv."):
        column = key[4:]
        return lambda person, csv: (csv or {}).get(column) or None
    if key == "name":
        return lambda person, csv: (person.name or None) if person is not None else None
    if key == "first_name":
        return lambda person, csv: (
            (person.name.split()[0] if person.name.strip() else None)
            if person is not None
            else None
        )
    if key == "phone":
        return lambda person, csv: (
            ("+" + person.wa_id) if person is not None and person.wa_id else None
        )
    custom_key = name[7:] if key.startswith("custom.") else name

    def custom(person: Person | None, csv: Mapping[str, str] | None) -> str | None:
        if person is None:
            return None
        value = person.custom.get(custom_key)
        return str(value) if value not in (None, "") else None

    return custom


class ValueResolver:
    """A person's values for a broadcast's variables (`{field|fallback}` parts, parsed
    once), or the reason one is missing."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        # Per target: its spec and its parts, each a literal or (getter, field, fallback).
        self._targets: list[tuple[str, str, list[Any]]] = []
        for target, spec in variables.items():
            parts: list[Any] = []
            at = 0
            for match in _FIELD.finditer(spec):
                if match.start() > at:
                    parts.append(spec[at : match.start()])
                parts.append((_field_getter(match.group(1)), match.group(1), match.group(2)))
                at = match.end()
            if at < len(spec):
                parts.append(spec[at:])
            self._targets.append((target, spec, parts))

    def __call__(
        self, person: Person | None, csv: Mapping[str, str] | None
    ) -> tuple[dict[str, str], str | None]:
        values: dict[str, str] = {}
        for target, spec, parts in self._targets:
            pieces: list[str] = []
            missing: str | None = None
            for part in parts:
                if part.__class__ is str:
                    pieces.append(part)
                    continue
                getter, field, fallback = part
                value = getter(person, csv)
                if value is None:
                    if fallback is not None:
                        pieces.append(fallback)
                    elif missing is None:
                        missing = field
                else:
                    pieces.append(value)
            text = "".join(pieces).strip()
            if missing is None and not text:
                missing = spec
            if missing is not None:
                return {}, (
                    f"missing value for {target} ({{{missing}}} is empty and has no fallback)"
                )
            values[target] = text
        return values, None


class WireTemplate:
    """A template's per-recipient output for given values: the `template` object of the
    Graph request as JSON (`build_components` inside it) and the body text as the person
    reads it (for the conversation and search; the template's name when it has no body
    text). The JSON
    is serialised once per set of value names with markers, and each recipient's values
    are spliced in, JSON-encoded exactly as `json.dumps` encodes them in place."""

    def __init__(
        self, name: str, language: str, components: list[dict[str, Any]], named: bool
    ) -> None:
        self._name = name
        self._language = language
        self._components = components
        self._named = named
        self._wire: dict[tuple[str, ...], list[Any] | None] = {}
        self._body: list[Any] | None = None
        for component in components or []:
            if str(component.get("type", "")).upper() == "BODY":
                body = component.get("text") or ""
                parts: list[Any] = []
                at = 0
                for match in _PARAM.finditer(body):
                    if match.start() > at:
                        parts.append(body[at : match.start()])
                    parts.append((f"body.{match.group(1)}", match.group(0)))
                    at = match.end()
                if at < len(body):
                    parts.append(body[at:])
                self._body = parts
                break

    def _object(self, values: Mapping[str, str]) -> dict[str, Any]:
        wire: dict[str, Any] = {"name": self._name, "language": {"code": self._language}}
        built = build_components(self._components, self._named, values)
        if built:
            wire["components"] = built
        return wire

    def _compile(self, values: Mapping[str, str]) -> list[Any] | None:
        """The JSON cut at each value: literal pieces and (value name,). None when
        splicing these values does not give exactly what serialising them gives (a
        marker met elsewhere in the template): then each recipient is serialised."""
        markers = {key: f"\x1fpuente-value-{i}\x1f" for i, key in enumerate(values)}
        text = json.dumps(self._object(markers))
        encoded = {json.dumps(marker): key for key, marker in markers.items()}
        parts: list[Any] = []
        at = 0
        if encoded:
            for match in re.finditer("|".join(map(re.escape, encoded)), text):
                parts.append(text[at : match.start()])
                parts.append((encoded[match.group(0)],))
                at = match.end()
        parts.append(text[at:])
        if self._splice(parts, values) != json.dumps(self._object(values)):
            return None
        return parts

    @staticmethod
    def _splice(parts: list[Any], values: Mapping[str, str]) -> str:
        dumps = json.dumps
        return "".join(p if p.__class__ is str else dumps(values[p[0]]) for p in parts)

    def json(self, values: Mapping[str, str]) -> str:
        keys = tuple(values)
        if keys not in self._wire:
            self._wire[keys] = self._compile(values)
        parts = self._wire[keys]
        if parts is None:
            return json.dumps(self._object(values))
        return self._splice(parts, values)

    def text(self, values: Mapping[str, str]) -> str:
        if self._body is None:
            return self._name
        text = "".join(p if p.__class__ is str else values.get(p[0], p[1]) for p in self._body)
        return text or self._name
