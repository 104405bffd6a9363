"""Phone numbers: E.164 normalisation with `phonenumbers`, and WhatsApp ids."""

from __future__ import annotations

import phonenumbers


def to_e164(raw: str, default_region: str | None = None) -> str | None:
    """E.164 ("+5215512345678") for a number written any way, or None if it is not valid.

    WhatsApp ids are digits with the country code and no "+", so they parse without a region.
    """
    text = raw.strip()
    if not text:
        return None
    if not text.startswith("+") and default_region is None:
        text = "+" + text.lstrip("0")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def wa_id_from_e164(e164: str) -> str:
    return e164.lstrip("+")
