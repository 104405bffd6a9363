"""Meta's rules for message templates, checked locally before anything reaches Meta.

`validate_template` returns every problem at once, each naming the field it is about, so
a person can fix a template in one pass. The rules come from whatsapp-protocol.md §9;
those marked (M) are partner-sourced (Meta's own pages do not state them in one place).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import lru_cache
from importlib import resources
from typing import Any

CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
PARAMETER_FORMATS = ("positional", "named")
HEADER_FORMATS = ("TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION")
MEDIA_HEADER_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")
COMPONENT_TYPES = ("HEADER", "BODY", "FOOTER", "BUTTONS")
BUTTON_TYPES = ("QUICK_REPLY", "URL", "PHONE_NUMBER", "COPY_CODE", "OTP")
OTP_TYPES = ("COPY_CODE", "ONE_TAP", "ZERO_TAP")

# §9: the name is at most 512 characters of lowercase letters, digits and underscores.
NAME_RE = re.compile(r"^[a-z0-9_]{1,512}$")
MAX_HEADER_TEXT = 60
MAX_BODY_TEXT = 1024
MAX_FOOTER_TEXT = 60
MAX_BUTTON_TEXT = 25
MAX_URL = 2000
MAX_PHONE = 20
MAX_COPY_CODE = 15
# §9 button rules (M): totals per template and per button type.
MAX_BUTTONS = 10
MAX_BUTTONS_BY_TYPE = {"QUICK_REPLY": 10, "URL": 2, "PHONE_NUMBER": 1, "COPY_CODE": 1}

# Anything between double braces is meant as a variable; what is inside decides its kind.
VARIABLE_RE = re.compile(r"\{\{(.*?)\}\}")
POSITIONAL_RE = re.compile(r"^[1-9][0-9]*$")
NAMED_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class TemplateProblem:
    field: str  # where, e.g. "components[2].buttons[0].text"
    code: str  # machine-readable, e.g. "button_text_too_long"
    # For a person: a msgid with %(name)s placeholders (the web shows it translated) and
    # the values that fill them.
    template: str
    params: Mapping[str, Any] = dataclass_field(default_factory=dict, hash=False)

    @property
    def message(self) -> str:
        """The English text, as the API gives it."""
        return self.template % dict(self.params)

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


@lru_cache(maxsize=1)
def template_languages() -> frozenset[str]:
    """The language codes Meta accepts, read from languages.json."""
    raw = resources.files("puente.outbound.templates").joinpath("languages.json").read_text()
    return frozenset(json.loads(raw)["codes"])


def variables_in(text: str) -> list[str]:
    """The variable names in `text`, in order of appearance ("1", "order_id", ...)."""
    return [m.group(1) for m in VARIABLE_RE.finditer(text)]


def _braced(name: object) -> str:
    return "{{" + str(name) + "}}"


def _upper(value: Any) -> str:
    return value.upper() if isinstance(value, str) else ""


def normalize_template(data: Mapping[str, Any]) -> dict[str, Any]:
    """The template as Meta's create call expects it: upper-case types, explicit format.

    Only spelling is changed; anything unexpected is kept for `validate_template` to name.
    """
    components: list[Any] = []
    raw_components = data.get("components") or []
    # A non-list is left for `validate_template` to name as a problem.
    for comp in raw_components if isinstance(raw_components, list) else []:
        if not isinstance(comp, Mapping):
            components.append(comp)
            continue
        comp = dict(comp)
        if isinstance(comp.get("type"), str):
            comp["type"] = comp["type"].upper()
        if isinstance(comp.get("format"), str):
            comp["format"] = comp["format"].upper()
        if isinstance(comp.get("buttons"), list):
            comp["buttons"] = [
                {**b, "type": b["type"].upper()}
                if isinstance(b, Mapping) and isinstance(b.get("type"), str)
                else b
                for b in comp["buttons"]
            ]
        components.append(comp)
    out = dict(data)
    out["name"] = data.get("name")
    out["category"] = _upper(data.get("category")) or data.get("category")
    out["parameter_format"] = (
        str(data.get("parameter_format") or "positional").lower()
        if isinstance(data.get("parameter_format"), str | None)
        else data.get("parameter_format")
    )
    out["components"] = components if isinstance(raw_components, list) else raw_components
    return out


def validate_template(data: Mapping[str, Any]) -> list[TemplateProblem]:
    """Every way `data` (Meta's create body) breaks Meta's rules; empty when it is valid."""
    checker = _Checker(normalize_template(data))
    checker.run()
    return checker.problems


class _Checker:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.problems: list[TemplateProblem] = []
        self.category = data.get("category") if data.get("category") in CATEGORIES else None
        fmt = data.get("parameter_format")
        self.parameter_format = fmt if fmt in PARAMETER_FORMATS else None

    def add(self, where: str, code: str, template: str, **params: Any) -> None:
        """A problem: `template` is a msgid (scripts/i18n.py extracts it), `params` its values."""
        self.problems.append(TemplateProblem(where, code, template, params))

    def run(self) -> None:
        self.check_name()
        self.check_category()
        self.check_language()
        self.check_parameter_format()
        self.check_components()

    def check_name(self) -> None:
        name = self.data.get("name")
        if not isinstance(name, str) or not name:
            self.add("name", "name_missing", "a template needs a name")
        elif len(name) > 512:
            self.add(
                "name",
                "name_too_long",
                "the name has %(count)s characters; at most %(limit)s",
                count=len(name),
                limit=512,
            )
        elif not NAME_RE.match(name):
            self.add(
                "name",
                "name_format",
                "the name may only hold lowercase letters, digits and underscores",
            )

    def check_category(self) -> None:
        if self.category is None:
            self.add(
                "category",
                "category_invalid",
                "the category must be one of %(choices)s",
                choices=", ".join(CATEGORIES),
            )

    def check_language(self) -> None:
        language = self.data.get("language")
        if not isinstance(language, str) or not language:
            self.add("language", "language_missing", "a template needs a language code, e.g. es_MX")
        elif language not in template_languages():
            self.add(
                "language",
                "language_unknown",
                "'%(language)s' is not a language WhatsApp templates support"
                " (e.g. es, es_MX, en_US)",
                language=language,
            )

    def check_parameter_format(self) -> None:
        if self.parameter_format is None:
            self.add(
                "parameter_format",
                "parameter_format_invalid",
                "parameter_format must be 'positional' ({{1}}) or 'named' ({{order_id}})",
            )

    def check_components(self) -> None:
        components = self.data.get("components")
        if not isinstance(components, list) or not components:
            self.add("components", "components_missing", "a template needs at least a BODY")
            return
        seen: dict[str, int] = {}
        for i, comp in enumerate(components):
            where = f"components[{i}]"
            if not isinstance(comp, Mapping):
                self.add(where, "component_invalid", "each component must be an object")
                continue
            kind = comp.get("type")
            if kind not in COMPONENT_TYPES:
                self.add(
                    f"{where}.type",
                    "component_type_invalid",
                    "component type must be one of %(choices)s",
                    choices=", ".join(COMPONENT_TYPES),
                )
                continue
            seen[kind] = seen.get(kind, 0) + 1
            if seen[kind] > 1:
                self.add(
                    where,
                    f"{kind.lower()}_repeated",
                    "a template has at most one %(kind)s",
                    kind=kind,
                )
                continue
            getattr(self, f"check_{kind.lower()}")(where, comp)
        if "BODY" not in seen:
            self.add("components", "body_missing", "a template needs exactly one BODY")
        if self.category == "AUTHENTICATION" and "BUTTONS" not in seen:
            self.add(
                "components",
                "otp_button_missing",
                "an AUTHENTICATION template takes exactly one OTP button",
            )

    # --- variables -------------------------------------------------------------------------

    def check_variables(self, where: str, text: str) -> list[str]:
        """Checks the syntax and numbering of the variables in `text`; returns their names."""
        names = variables_in(text)
        for name in names:
            inner = name.strip()
            if POSITIONAL_RE.match(inner) and inner == name:
                if self.parameter_format == "named":
                    self.add(
                        where,
                        "variable_not_named",
                        "%(variable)s is positional but parameter_format is 'named'",
                        variable=_braced(name),
                    )
            elif NAMED_RE.match(inner) and inner == name:
                if self.parameter_format == "positional":
                    self.add(
                        where,
                        "variable_not_positional",
                        "%(variable)s is named but parameter_format is 'positional'"
                        " (use {{1}}, {{2}}...)",
                        variable=_braced(name),
                    )
            else:
                self.add(
                    where,
                    "variable_format",
                    "%(variable)s is not a variable: use {{1}} or {{lowercase_name}}"
                    " with no spaces",
                    variable=_braced(name),
                )
        numbers = sorted({int(n) for n in names if POSITIONAL_RE.match(n)})
        if self.parameter_format == "positional" and numbers != list(range(1, len(numbers) + 1)):
            self.add(
                where,
                "variables_not_consecutive",
                "positional variables must be numbered {{1}}, {{2}}... in sequence;"
                " found %(found)s",
                found=", ".join(_braced(n) for n in numbers),
            )
        return list(dict.fromkeys(names))

    def check_examples(
        self, where: str, comp: Mapping[str, Any], names: list[str], *, header: bool
    ) -> None:
        """Meta reviews every variable against a sample value, so each one needs an example."""
        if not names:
            return
        example = comp.get("example")
        example = example if isinstance(example, Mapping) else {}
        if self.parameter_format == "named":
            key = "header_text_named_params" if header else "body_text_named_params"
            given = {
                p.get("param_name"): p.get("example")
                for p in example.get(key) or []
                if isinstance(p, Mapping)
            }
            missing = [n for n in names if not (isinstance(given.get(n), str) and given.get(n))]
        else:
            if header:
                values = example.get("header_text")
            else:
                rows = example.get("body_text")
                values = rows[0] if isinstance(rows, list) and rows else None
            values = values if isinstance(values, list) else []
            missing = [
                n
                for n in names
                if POSITIONAL_RE.match(n)
                and not (
                    int(n) <= len(values)
                    and isinstance(values[int(n) - 1], str)
                    and values[int(n) - 1]
                )
            ]
            key = "header_text" if header else "body_text"
        if missing:
            self.add(
                f"{where}.example.{key}",
                "example_missing",
                "every variable needs a sample value for Meta's review; missing for %(missing)s",
                missing=", ".join(_braced(n) for n in missing),
            )

    # --- components ------------------------------------------------------------------------

    def check_header(self, where: str, comp: Mapping[str, Any]) -> None:
        if self.category == "AUTHENTICATION":
            self.add(where, "header_not_allowed", "AUTHENTICATION templates cannot have a header")
            return
        fmt = comp.get("format")
        if fmt not in HEADER_FORMATS:
            self.add(
                f"{where}.format",
                "header_format_invalid",
                "the header format must be one of %(choices)s",
                choices=", ".join(HEADER_FORMATS),
            )
            return
        if fmt == "TEXT":
            text = comp.get("text")
            if not isinstance(text, str) or not text.strip():
                self.add(f"{where}.text", "header_text_missing", "a TEXT header needs text")
                return
            if len(text) > MAX_HEADER_TEXT:
                self.add(
                    f"{where}.text",
                    "header_text_too_long",
                    "the header has %(count)s characters; at most %(limit)s",
                    count=len(text),
                    limit=MAX_HEADER_TEXT,
                )
            names = self.check_variables(f"{where}.text", text)
            if len(variables_in(text)) > 1:
                self.add(
                    f"{where}.text",
                    "header_too_many_variables",
                    "a header takes at most one variable",
                )
            self.check_examples(where, comp, names, header=True)
        elif fmt in MEDIA_HEADER_FORMATS:
            example = comp.get("example")
            handles = example.get("header_handle") if isinstance(example, Mapping) else None
            if not (isinstance(handles, list) and handles and all(handles)):
                self.add(
                    f"{where}.example.header_handle",
                    "example_missing",
                    "an %(format)s header needs a sample file (an upload handle) for Meta's review",
                    format=fmt,
                )

    def check_body(self, where: str, comp: Mapping[str, Any]) -> None:
        text = comp.get("text")
        if self.category == "AUTHENTICATION" and text is None:
            return  # Meta writes the body of authentication templates itself.
        if not isinstance(text, str) or not text.strip():
            self.add(f"{where}.text", "body_text_missing", "the BODY needs text")
            return
        if len(text) > MAX_BODY_TEXT:
            self.add(
                f"{where}.text",
                "body_text_too_long",
                "the body has %(count)s characters; at most %(limit)s",
                count=len(text),
                limit=MAX_BODY_TEXT,
            )
        names = self.check_variables(f"{where}.text", text)
        stripped = text.strip()
        if re.match(r"\{\{[^{}]*\}\}", stripped):
            self.add(
                f"{where}.text",
                "body_starts_with_variable",
                "the body cannot start with a variable",
            )
        if re.search(r"\{\{[^{}]*\}\}$", stripped):
            self.add(
                f"{where}.text", "body_ends_with_variable", "the body cannot end with a variable"
            )
        self.check_examples(where, comp, names, header=False)

    def check_footer(self, where: str, comp: Mapping[str, Any]) -> None:
        if self.category == "AUTHENTICATION" and "code_expiration_minutes" in comp:
            minutes = comp.get("code_expiration_minutes")
            if not (isinstance(minutes, int) and 1 <= minutes <= 90):
                self.add(
                    f"{where}.code_expiration_minutes",
                    "code_expiration_invalid",
                    "code_expiration_minutes must be a whole number from 1 to 90",
                )
            return
        text = comp.get("text")
        if not isinstance(text, str) or not text.strip():
            self.add(f"{where}.text", "footer_text_missing", "the FOOTER needs text")
            return
        if len(text) > MAX_FOOTER_TEXT:
            self.add(
                f"{where}.text",
                "footer_text_too_long",
                "the footer has %(count)s characters; at most %(limit)s",
                count=len(text),
                limit=MAX_FOOTER_TEXT,
            )
        if variables_in(text):
            self.add(f"{where}.text", "footer_has_variables", "the footer cannot hold variables")

    def check_buttons(self, where: str, comp: Mapping[str, Any]) -> None:
        buttons = comp.get("buttons")
        if not isinstance(buttons, list) or not buttons:
            self.add(f"{where}.buttons", "buttons_missing", "a BUTTONS component needs buttons")
            return
        # §9 (M): at most 10 buttons in all, with per-type limits.
        if len(buttons) > MAX_BUTTONS:
            self.add(
                f"{where}.buttons",
                "too_many_buttons",
                "%(count)s buttons; a template has at most %(limit)s",
                count=len(buttons),
                limit=MAX_BUTTONS,
            )
        kinds = [b.get("type") if isinstance(b, Mapping) else None for b in buttons]
        for kind, limit in MAX_BUTTONS_BY_TYPE.items():
            count = kinds.count(kind)
            if count > limit:
                self.add(
                    f"{where}.buttons",
                    f"too_many_{kind.lower()}_buttons",
                    "%(count)s %(kind)s buttons; at most %(limit)s",
                    count=count,
                    kind=kind,
                    limit=limit,
                )
        self.check_button_grouping(where, kinds)
        if self.category == "AUTHENTICATION" and (len(buttons) != 1 or kinds[0] != "OTP"):
            # §9: authentication templates take exactly one OTP button.
            self.add(
                f"{where}.buttons",
                "otp_button_required",
                "an AUTHENTICATION template takes exactly one OTP button and no other",
            )
        for i, button in enumerate(buttons):
            self.check_button(f"{where}.buttons[{i}]", button)

    def check_button_grouping(self, where: str, kinds: Sequence[Any]) -> None:
        # §9 (M): quick replies sit together, apart from call-to-action buttons, so the
        # sequence of groups may change kind at most once.
        groups = ["reply" if k == "QUICK_REPLY" else "action" for k in kinds if k in BUTTON_TYPES]
        changes = sum(1 for a, b in itertools.pairwise(groups) if a != b)
        if changes > 1:
            self.add(
                f"{where}.buttons",
                "buttons_not_grouped",
                "quick-reply buttons must be grouped together, not mixed in between"
                " call-to-action buttons (URL, phone, copy code)",
            )

    def check_button(self, where: str, button: Any) -> None:
        if not isinstance(button, Mapping):
            self.add(where, "button_invalid", "each button must be an object")
            return
        kind = button.get("type")
        if kind not in BUTTON_TYPES:
            self.add(
                f"{where}.type",
                "button_type_invalid",
                "button type must be one of %(choices)s",
                choices=", ".join(BUTTON_TYPES),
            )
            return
        text = button.get("text")
        if kind == "OTP" and text is None:
            pass  # Meta supplies "Copy code" / "Autofill"
        elif not isinstance(text, str) or not text.strip():
            self.add(f"{where}.text", "button_text_missing", "the button needs text")
        elif len(text) > MAX_BUTTON_TEXT:
            self.add(
                f"{where}.text",
                "button_text_too_long",
                "'%(text)s' has %(count)s characters; button text is at most %(limit)s",
                text=text,
                count=len(text),
                limit=MAX_BUTTON_TEXT,
            )
        getattr(self, f"check_{kind.lower()}_button")(where, button)

    def check_quick_reply_button(self, where: str, button: Mapping[str, Any]) -> None:
        return None

    def check_url_button(self, where: str, button: Mapping[str, Any]) -> None:
        url = button.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://", url):
            self.add(f"{where}.url", "url_invalid", "a URL button needs a url starting http(s)://")
            return
        if len(url) > MAX_URL:
            self.add(
                f"{where}.url",
                "url_too_long",
                "the url is longer than %(limit)s characters",
                limit=MAX_URL,
            )
        names = variables_in(url)
        if not names:
            return
        # A URL button takes one variable, {{1}}, at the very end (the suffix filled per send).
        if names != ["1"] or not url.endswith("{{1}}"):
            self.add(
                f"{where}.url",
                "url_variable",
                "a URL button takes at most one variable, {{1}}, at the end of the url",
            )
        example = button.get("example")
        if not (isinstance(example, list) and example and isinstance(example[0], str)):
            self.add(
                f"{where}.example",
                "example_missing",
                "a URL with a variable needs a sample full url for Meta's review",
            )

    def check_phone_number_button(self, where: str, button: Mapping[str, Any]) -> None:
        phone = button.get("phone_number")
        if not isinstance(phone, str) or not re.fullmatch(r"\+?[0-9]{6,19}", phone):
            self.add(
                f"{where}.phone_number",
                "phone_number_invalid",
                "a PHONE_NUMBER button needs a number in international form, at most %(limit)s"
                " characters (e.g. +5215512345678)",
                limit=MAX_PHONE,
            )

    def check_copy_code_button(self, where: str, button: Mapping[str, Any]) -> None:
        # §9 (M): COPY_CODE buttons are for marketing templates only.
        if self.category is not None and self.category != "MARKETING":
            self.add(
                f"{where}.type",
                "copy_code_not_marketing",
                "COPY_CODE buttons are only allowed in MARKETING templates",
            )
        example = button.get("example")
        if not isinstance(example, str) or not example:
            self.add(
                f"{where}.example",
                "example_missing",
                "a COPY_CODE button needs a sample code for Meta's review",
            )
        elif len(example) > MAX_COPY_CODE:
            self.add(
                f"{where}.example",
                "copy_code_too_long",
                "the sample code is at most %(limit)s characters",
                limit=MAX_COPY_CODE,
            )

    def check_otp_button(self, where: str, button: Mapping[str, Any]) -> None:
        if self.category is not None and self.category != "AUTHENTICATION":
            self.add(
                f"{where}.type",
                "otp_not_authentication",
                "OTP buttons are only allowed in AUTHENTICATION templates",
            )
        if _upper(button.get("otp_type")) not in OTP_TYPES:
            self.add(
                f"{where}.otp_type",
                "otp_type_invalid",
                "otp_type must be one of %(choices)s",
                choices=", ".join(OTP_TYPES),
            )
