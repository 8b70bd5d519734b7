"""When two throughputs differ (pure): a measured rate with its spread, and the rule that compares two.

A rate is the median of its runs, with the slowest and fastest run beside it (a run DISTURBED from
the median, e.g. six times slower while another program took the CPUs, is shown but set aside from
the spread: one such run would otherwise make every comparison "within noise"). Two medians differ
only when they are further apart than both the noise floor (FLOOR of the larger) and the spread
of their runs (half of each range, added); anything less is within noise, and the verdict never
calls it a finding.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

FLOOR = 0.25      # medians closer than 25% are within noise: each run may be ±20% off on a shared 2-core machine
DISTURBED = 2.0   # with 3 runs or more, a run under half or over twice the median is a disturbance of the machine
                  # (another program's burst), shown but set aside from the spread; the median is unchanged


@dataclass(frozen=True)
class Rate:
    median: float
    lo: float
    hi: float
    runs: int = 1
    set_aside: tuple[float, ...] = ()     # runs outside the spread: DISTURBED from the median

    @classmethod
    def of(cls, row) -> "Rate | None":
        """From a survey row (MBps, MBps_lo, MBps_hi, runs); None when the row is missing."""
        if row is None:
            return None
        med = float(row["MBps"])
        lo, hi = (_num(row.get("MBps_lo"), med), _num(row.get("MBps_hi"), med))
        return cls.steady(med, min(lo, med), max(hi, med), int(_num(row.get("runs"), 1)))

    @classmethod
    def of_runs(cls, values) -> "Rate | None":
        """From the runs' own values (None when there are none)."""
        v = sorted(float(x) for x in values if not math.isnan(float(x)))
        return cls.steady(statistics.median(v), v[0], v[-1], len(v)) if v else None

    @classmethod
    def steady(cls, med: float, lo: float, hi: float, runs: int) -> "Rate":
        """The rate with a run DISTURBED from the median set aside from the spread (3 runs or more)."""
        aside = []
        if runs >= 3 and med > 0:
            if lo < med / DISTURBED:
                aside.append(lo)
                lo = med
            if hi > med * DISTURBED:
                aside.append(hi)
                hi = med
        return cls(med, lo, hi, runs, tuple(aside))

    @property
    def spread_pct(self) -> float:
        return 100 * (self.hi - self.lo) / self.median if self.median > 0 else 0.0

    def __str__(self) -> str:
        if self.runs > 1 or self.hi > self.lo:
            runs = f", {self.runs} runs" if self.runs > 1 else ""
            aside = "; set aside as a disturbance: " + ", ".join(f"{x:.0f}" for x in self.set_aside) if self.set_aside else ""
            return f"{self.median:.0f} MB/s ({self.lo:.0f}–{self.hi:.0f}{runs}{aside})"
        return f"{self.median:.0f} MB/s"


def _num(v, default: float) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(f) else f


def within_noise(a: Rate, b: Rate) -> bool:
    """True when `a` and `b` cannot be told apart: medians within FLOOR, or within their runs' spread."""
    spread = ((a.hi - a.lo) + (b.hi - b.lo)) / 2
    return abs(a.median - b.median) <= max(FLOOR * max(a.median, b.median), spread)


def above(a: Rate, b: Rate) -> bool:
    """`a` is higher than `b` by more than the noise."""
    return a.median > b.median and not within_noise(a, b)


def reaches(a: Rate, b: Rate) -> bool:
    """`a` is within noise of `b` or above it (a pull that reaches a hop's capacity)."""
    return a.median >= b.median or within_noise(a, b)


def straddles(rate: Rate | None, line: float) -> bool:
    """The runs lie on both sides of `line`: the slowest below it, the fastest at or above it (a rule on the
    median then follows the noise; one run cannot straddle)."""
    return bool(rate and rate.runs > 1 and rate.lo < line <= rate.hi)
