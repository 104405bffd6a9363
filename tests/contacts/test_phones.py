"""Phone numbers as customers and WhatsApp write them."""

from __future__ import annotations

import pytest

from puente.contacts.phones import to_e164


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("16505551234", "+16505551234"),  # a WhatsApp id: digits with the country code
        ("+1 (650) 555-1234", "+16505551234"),
        ("5215512345678", "+525512345678"),  # Mexico's old mobile "1", as in WhatsApp ids
        ("+52 1 55 1234 5678", "+525512345678"),
        ("525512345678", "+525512345678"),
        ("5511987654321", "+5511987654321"),  # Brazil with the ninth digit
        ("5491123456789", "+5491123456789"),  # Argentina's mobile "9"
    ],
)
def test_numbers_normalise_to_e164(raw: str, e164: str) -> None:
    assert to_e164(raw) == e164


@pytest.mark.parametrize("raw", ["", "abc", "+1 555", "12"])
def test_impossible_numbers_are_refused(raw: str) -> None:
    assert to_e164(raw) is None


def test_a_region_reads_national_numbers() -> None:
    assert to_e164("55 1234 5678", "MX") == "+525512345678"
