"""A template as a customer would see it, with sample or given values in its variables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from puente.outbound.templates.rules import NAMED_RE, POSITIONAL_RE, VARIABLE_RE


@dataclass(frozen=True)
class Preview:
    header_format: str | None
    header: str | None
    body: str
    footer: str | None
    buttons: list[dict[str, str]]
    missing: list[str]  # variables with no value given and no sample


def sample_values(components: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """The sample values a template carries for Meta's review, by component and variable."""
    out: dict[str, dict[str, str]] = {"header": {}, "body": {}, "buttons": {}}
    for comp in components:
        kind = str(comp.get("type") or "").upper()
        example = comp.get("example") if isinstance(comp.get("example"), Mapping) else {}
        assert isinstance(example, Mapping)
        if kind in ("HEADER", "BODY"):
            key = kind.lower()
            named = example.get(f"{key}_text_named_params") or []
            for p in named:
                if isinstance(p, Mapping) and p.get("param_name"):
                    out[key][str(p["param_name"])] = str(p.get("example") or "")
            positional = example.get(f"{key}_text") or []
            if kind == "BODY":
                positional = positional[0] if positional and isinstance(positional[0], list) else []
            for i, value in enumerate(positional, start=1):
                out[key][str(i)] = str(value)
        elif kind == "BUTTONS":
            for i, b in enumerate(comp.get("buttons") or []):
                ex = b.get("example") if isinstance(b, Mapping) else None
                url = str(b.get("url") or "") if isinstance(b, Mapping) else ""
                if isinstance(ex, list) and ex and "{{" in url:
                    prefix = url.split("{{", 1)[0]
                    full = str(ex[0])
                    out["buttons"][str(i)] = (
                        full[len(prefix) :] if full.startswith(prefix) else full
                    )
    return out


def _fill(text: str, values: Mapping[str, str], missing: list[str], where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in values and values[name] != "":
            return values[name]
        if POSITIONAL_RE.match(name) or NAMED_RE.match(name):
            missing.append(f"{where}.{name}")
        return m.group(0)

    return VARIABLE_RE.sub(sub, text)


def render_preview(
    components: list[dict[str, Any]],
    values: Mapping[str, Mapping[str, str]] | None = None,
    *,
    samples: bool = True,
) -> Preview:
    """The message as a customer would see it, with `values` (by "header", "body",
    "buttons" and variable name) or else the template's own samples (unless `samples`
    is False: a message already sent shows only what it carried)."""
    given = sample_values(components)
    if not samples:
        given = {k: {} for k in given}
    merged = {k: {**given.get(k, {}), **dict((values or {}).get(k, {}))} for k in given}
    missing: list[str] = []
    header_format = header = footer = None
    body = ""
    buttons: list[dict[str, str]] = []
    for comp in components:
        kind = str(comp.get("type") or "").upper()
        if kind == "HEADER":
            header_format = str(comp.get("format") or "TEXT").upper()
            if header_format == "TEXT":
                header = _fill(str(comp.get("text") or ""), merged["header"], missing, "header")
        elif kind == "BODY":
            body = _fill(str(comp.get("text") or ""), merged["body"], missing, "body")
        elif kind == "FOOTER":
            footer = str(comp.get("text") or "") or None
        elif kind == "BUTTONS":
            for i, b in enumerate(comp.get("buttons") or []):
                if not isinstance(b, Mapping):
                    continue
                shown = {"type": str(b.get("type") or "").upper(), "text": str(b.get("text") or "")}
                if b.get("url"):
                    suffix = {"1": merged["buttons"].get(str(i), "")}
                    shown["url"] = _fill(str(b["url"]), suffix, missing, f"buttons.{i}")
                if b.get("phone_number"):
                    shown["phone_number"] = str(b["phone_number"])
                buttons.append(shown)
    return Preview(header_format, header, body, footer, buttons, missing)
