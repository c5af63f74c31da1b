"""Percentiles and tables, printed the same way by every benchmark."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted samples (nearest rank)."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: Sequence[float], unit: str = "ms") -> str:
    """``n= p50= p95= p99= max= mean=`` of the samples."""
    ordered = sorted(samples)
    return (f"n={len(ordered)} p50={percentile(ordered, 0.50):.2f} "
            f"p95={percentile(ordered, 0.95):.2f} p99={percentile(ordered, 0.99):.2f} "
            f"max={ordered[-1]:.2f} mean={statistics.fmean(ordered):.2f} {unit}")


def table(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
