"""A broadcast template's per-contact values: which parameters the template needs
("body.1", "header.image", "button.0"), values written with `{field|fallback}` parts, and
the wire components built from them (protocol §7)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from puente.errors import InvalidInput
from puente.outbound.audience import Person

_PARAM = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_FIELD = re.compile(r"\{([A-Za-z0-9_.\-]+)(?:\|([^{}]*))?\}")
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


def field_value(name: str, person: Person | None, csv: Mapping[str, str] | None) -> str | None:
    key = name.lower()
    if key.startswith("csv."):
        return (csv or {}).get(key[4:]) or None
    if person is None:
        return None
    if key == "name":
        return person.name or None
    if key == "first_name":
        return person.name.split()[0] if person.name.strip() else None
    if key == "phone":
        return ("+" + person.wa_id) if person.wa_id else None
    custom_key = name[7:] if key.startswith("custom.") else name
    value = person.custom.get(custom_key)
    return str(value) if value not in (None, "") else None


def render_value(
    spec: str, person: Person | None, csv: Mapping[str, str] | None
) -> tuple[str | None, str | None]:
    """(text, None) or (None, the field that had no value and no fallback)."""
    missing: list[str] = []

    def sub(match: re.Match[str]) -> str:
        value = field_value(match.group(1), person, csv)
        if value is None:
            if match.group(2) is not None:
                return match.group(2)
            missing.append(match.group(1))
            return ""
        return value

    text = _FIELD.sub(sub, spec).strip()
    if missing:
        return None, missing[0]
    if not text:
        return None, spec
    return text, None


def resolve_values(
    variables: Mapping[str, str], person: Person | None, csv: Mapping[str, str] | None
) -> tuple[dict[str, str], str | None]:
    """This person's values, or the reason one is missing."""
    values: dict[str, str] = {}
    for target, spec in variables.items():
        text, missing = render_value(spec, person, csv)
        if text is None:
            return {}, f"missing value for {target} ({{{missing}}} is empty and has no fallback)"
        values[target] = text
    return values, None


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


def hydrate_body(components: list[dict[str, Any]], values: Mapping[str, str]) -> str | None:
    """The body text as the person will read it (for the conversation and search)."""
    for component in components or []:
        if str(component.get("type", "")).upper() == "BODY":
            return _PARAM.sub(
                lambda m: values.get(f"body.{m.group(1)}", m.group(0)), component.get("text") or ""
            )
    return None
