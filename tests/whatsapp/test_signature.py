"""The X-Hub-Signature-256 check Puente applies to every webhook POST."""

from __future__ import annotations

from puente.whatsapp.signature import SignatureCheck, compute_signature

BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_meta_signature_of_the_body_passes_in_either_form() -> None:
    check = SignatureCheck(b"app-secret")
    header = compute_signature(b"app-secret", BODY)
    assert check(BODY, header) and check(BODY, header.upper().replace("SHA256=", "sha256="))
    assert check(BODY, header.encode())


def test_another_body_secret_or_malformed_header_fails() -> None:
    check = SignatureCheck(b"app-secret")
    header = compute_signature(b"app-secret", BODY)
    assert not check(BODY + b" ", header)
    assert not check(BODY, compute_signature(b"other-secret", BODY))
    assert not check(BODY, header.removeprefix("sha256="))
    assert not check(BODY, "sha256=ñ" + header[8:])
    assert not check(BODY, None)


def test_an_empty_secret_verifies_nothing() -> None:
    # Anyone can compute an HMAC under an empty key.
    assert not SignatureCheck(b"")(BODY, compute_signature(b"", BODY))
