"""Whole-number shares of a total (largest remainder): synthesis plans, budget splits, matched sample sizes."""

from __future__ import annotations

import math
from collections.abc import Sequence


def largest_remainder(shares: Sequence[float], total: int) -> list[int]:
    """Whole parts summing to `total` from real `shares` that sum to it: each share rounded down, the units left
    over to the largest fractional parts (ties to the first share)."""
    parts = [math.floor(share + 1e-9) for share in shares]
    order = sorted(range(len(shares)), key=lambda i: parts[i] - shares[i])  # stable sort: ties keep their order
    for i in order[: max(0, total - sum(parts))]:
        parts[i] += 1
    return parts


def proportional(weights: Sequence[float], total: int) -> list[int]:
    """`total` split in proportion to `weights` (whole numbers, summing to `total`)."""
    whole = sum(weights)
    return largest_remainder([total * weight / whole for weight in weights], total)
