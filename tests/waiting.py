"""Waiting for something another process or thread does: a deadline for a hung test, never
a timing assertion."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_until(check: Callable[[], Any], *, seconds: float = 20.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy and return that; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
