"""The template picker's form: which variables a template has, the values an agent typed,
and the `template` object sent to Meta with those values as parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from puente.outbound.models import MessageTemplate
from puente.outbound.templates.preview import sample_values
from puente.outbound.templates.rules import VARIABLE_RE

PARTS = ("header", "body")


@dataclass(frozen=True)
class Field:
    part: str  # header | body
    name: str  # "1" or "first_name"
    sample: str

    @property
    def key(self) -> str:
        return f"{self.part}.{self.name}"


def template_fields(template: MessageTemplate) -> list[Field]:
    samples = sample_values(template.components)
    fields: list[Field] = []
    for comp in template.components:
        part = str(comp.get("type") or "").lower()
        if part not in PARTS or (
            part == "header" and str(comp.get("format") or "TEXT").upper() != "TEXT"
        ):
            continue
        seen: list[str] = []
        for raw in VARIABLE_RE.findall(str(comp.get("text") or "")):
            name = raw.strip()
            if name and name not in seen:
                seen.append(name)
                fields.append(Field(part, name, samples.get(part, {}).get(name, "")))
    return fields


def template_values(params: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    values: dict[str, dict[str, str]] = {p: {} for p in PARTS}
    for key, value in params.items():
        part, _, name = str(key).partition(".")
        if part in PARTS and name:
            values[part][name] = str(value).strip()[:1000]
    return values


def missing_values(template: MessageTemplate, values: Mapping[str, Mapping[str, str]]) -> list[str]:
    return [f.key for f in template_fields(template) if not values.get(f.part, {}).get(f.name)]


def template_content(
    template: MessageTemplate, values: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    """The wire `template` object with the typed values as text parameters."""
    named = template.parameter_format == "named"
    components: list[dict[str, Any]] = []
    for part in PARTS:
        fields = [f for f in template_fields(template) if f.part == part]
        if not fields:
            continue
        ordered = (
            fields
            if named
            else sorted(fields, key=lambda f: int(f.name) if f.name.isdigit() else 0)
        )
        parameters = []
        for f in ordered:
            parameter: dict[str, Any] = {
                "type": "text",
                "text": values.get(part, {}).get(f.name, ""),
            }
            if named:
                parameter["parameter_name"] = f.name
            parameters.append(parameter)
        components.append({"type": part, "parameters": parameters})
    content: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if components:
        content["components"] = components
    return content
