"""The test suite hashes cheaply; Puente itself must not."""

from __future__ import annotations

import subprocess
import sys

from argon2 import extract_parameters, profiles

from puente.accounts.credentials import PRODUCTION_PROFILE


def test_puente_hashes_passwords_with_the_strong_profile_outside_the_tests() -> None:
    # A fresh interpreter, as `puente serve` is: nothing of the test suite has run there.
    code = (
        "from puente.accounts.credentials import hash_password;"
        "print(hash_password('correct-horse-battery'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    params = extract_parameters(out)
    assert PRODUCTION_PROFILE == profiles.RFC_9106_LOW_MEMORY
    assert params.memory_cost == 65536
    assert params.time_cost == 3
    assert params.type.name == "ID"


def test_a_hash_made_cheaply_still_verifies_and_is_upgraded_on_login() -> None:
    code = (
        "from argon2 import PasswordHasher, profiles, extract_parameters\n"
        "from puente.accounts.credentials import verify_password\n"
        "from puente.accounts.models import User\n"
        "cheap = PasswordHasher.from_parameters(profiles.CHEAPEST).hash('correct-horse-battery')\n"
        "user = User(email='a@b.c', name='A', password_hash=cheap)\n"
        "assert verify_password(user, 'correct-horse-battery')\n"
        "assert not verify_password(user, 'wrong-horse-battery')\n"
        "print(extract_parameters(user.password_hash).memory_cost)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out == "65536"
