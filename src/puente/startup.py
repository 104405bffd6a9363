"""Problems that stop Puente from starting or serving (an unmigrated database, missing
front-end files): each carries one line telling the operator what to do."""

from __future__ import annotations


class NotReady(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
