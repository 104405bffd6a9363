"""Phone numbers in broadcast audiences: how `normalize_phone` reads what people type and
which forms `person_key` treats as the same person."""

from __future__ import annotations

from puente.outbound.broadcasts.audience import normalize_phone, person_key, wa_id_variants


def test_mexican_mobiles_with_and_without_the_one_are_accepted_and_the_same_person() -> None:
    assert normalize_phone("+52 55 1234 5678") == "+525512345678"
    # WhatsApp's own form keeps the "1" the numbering plan dropped: accepted, and the
    # same person as the plain E.164 number.
    for raw in ("+521 55 1234 5678", "5215512345678"):
        e164 = normalize_phone(raw)
        assert e164 is not None, raw
        assert person_key(e164) == person_key("+525512345678")
    assert person_key("+5215512345678") == person_key("+525512345678")
    assert set(wa_id_variants("525512345678")) == {"525512345678", "5215512345678"}


def test_brazilian_mobiles_with_and_without_the_ninth_digit_are_the_same_person() -> None:
    assert normalize_phone("+55 11 98765-4321") == "+5511987654321"
    assert normalize_phone("(11) 98765-4321", "BR") == "+5511987654321"
    assert person_key("+551187654321") == person_key("+5511987654321")
    assert "551187654321" in wa_id_variants("5511987654321")


def test_invalid_numbers_are_refused() -> None:
    for raw in ("", "hola", "123", "+52 55 1234", "+999 1234 5678"):
        assert normalize_phone(raw) is None, raw
