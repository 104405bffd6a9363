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
    text = _drop_mexican_mobile_one(text)
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _drop_mexican_mobile_one(text: str) -> str:
    """Mexico dropped the "1" after +52 for mobiles in 2019, but WhatsApp ids (and many
    address books) still carry it: +52 1 55 1234 5678 is +52 55 1234 5678."""
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.startswith("+") and digits.startswith("521") and len(digits) == 13:
        return "+52" + digits[3:]
    return text


def wa_id_from_e164(e164: str) -> str:
    return e164.lstrip("+")
