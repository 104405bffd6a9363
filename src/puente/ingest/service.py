"""Storing, claiming and processing raw webhook events."""

from __future__ import annotations

from sqlalchemy.orm import Session


def release_parked(session: Session, phone_number_id: str) -> int:
    """Queue again every change parked for `phone_number_id` (its channel now exists).
    Returns how many were released."""
    raise NotImplementedError
