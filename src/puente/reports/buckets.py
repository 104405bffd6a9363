"""Durations as histogram bins, so that medians and the 90th percentile of any range and
filter come from the daily rollups without reading a row per conversation.

Bins grow by 10 %: bin 0 holds a zero wait, bin k (k >= 1) the seconds in
[RATIO**(k-1), RATIO**k). A percentile read from the bins is the bin's geometric middle,
within 5 % of the exact figure; averages are exact (the rollups keep the sums)."""

from __future__ import annotations

import math
from collections.abc import Iterable

RATIO = 1.1
_LOG = math.log(RATIO)


def bin_of(seconds: float) -> int:
    if seconds < 1:
        return 0
    return int(math.log(seconds) / _LOG) + 1


def middle_of(bucket: int) -> float:
    """The value a bin stands for."""
    if bucket <= 0:
        return 0.0
    return float(RATIO ** (bucket - 0.5))


def percentile(counts: Iterable[tuple[int, int]], fraction: float) -> float | None:
    """The `fraction` percentile (0.5: the median) of (bin, count) pairs; None if empty."""
    ordered = sorted((b, c) for b, c in counts if c > 0)
    total = sum(c for _, c in ordered)
    if total == 0:
        return None
    # The nearest-rank definition: the smallest value with at least `fraction` below it.
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for bucket, count in ordered:
        seen += count
        if seen >= rank:
            return middle_of(bucket)
    return middle_of(ordered[-1][0])
