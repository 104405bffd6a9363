"""Old id -> new id for one kind, compact enough for millions of rows: two arrays of
64-bit integers (16 bytes a row; a dict of ints costs about ten times that), filled in
ascending order of the old ids, as the archive lists them, and searched by bisection."""

from __future__ import annotations

from array import array
from bisect import bisect_left


class IdMap:
    def __init__(self) -> None:
        self._old = array("q")
        self._new = array("q")

    def add(self, old: int, new: int) -> None:
        if self._old and old <= self._old[-1]:
            raise ValueError(f"ids must come in ascending order ({old} after {self._old[-1]})")
        self._old.append(old)
        self._new.append(new)

    def get(self, old: int) -> int | None:
        at = bisect_left(self._old, old)
        if at < len(self._old) and self._old[at] == old:
            return self._new[at]
        return None

    def __len__(self) -> int:
        return len(self._old)
