"""Database engine, declarative base and the unit of work."""

from puente.db.base import Base, UTCDateTime, utcnow
from puente.db.session import Database, on_commit

__all__ = ["Base", "Database", "UTCDateTime", "on_commit", "utcnow"]
