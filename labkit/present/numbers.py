"""Numbers as a person reads them (pure): no more digits than the runs' spread supports, words for a
missing value instead of NaN.

    rounded(1001.5, 551.9, 1023.1)   # 1000: the runs span 471 MB/s, so the hundreds are all they say
    rounded(94.2, 93.1, 95.0)        # 94
    rounded(0.552402)                # 0.55 (no spread known: 2 significant digits)
    or_words(float("nan"), "no prediction")   # "no prediction"
    table(df)                        # every float column of a DataFrame rounded so (its _lo/_hi columns give the spread)
"""
from __future__ import annotations

import math

import pandas as pd

SIGNIFICANT = 2          # digits kept where no spread is known (a ratio, a share): +-15-20% run to run here


def missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA or x is pd.NaT


def rounded(value, lo=None, hi=None, significant: int = SIGNIFICANT):
    """`value` rounded to the step its spread supports (the power of ten at or under hi - lo), or to
    `significant` digits where the spread is unknown or nil; an int where the step is 1 or more."""
    if missing(value):
        return value
    v = float(value)
    if v == 0:
        return 0
    width = (float(hi) - float(lo)) if not (missing(lo) or missing(hi)) else 0.0
    if width > 0:
        step = 10 ** math.floor(math.log10(width))
        step = min(step, 10 ** (math.floor(math.log10(abs(v))) - 1))    # never fewer than 2 significant digits
    else:
        step = 10 ** (math.floor(math.log10(abs(v))) - significant + 1)
    if v.is_integer():               # a count (pulls, failures) or a whole number: no decimals to invent
        step = max(step, 1)
    out = round(v / step) * step
    return int(round(out)) if step >= 1 else round(out, max(0, -math.floor(math.log10(step))))


def or_words(value, words: str):
    """`value`, or `words` where it is missing (NaN, None)."""
    return words if missing(value) else value


def table(df: pd.DataFrame, words: str | dict[str, str] = "") -> pd.DataFrame:
    """A copy of `df` for reading: each float column rounded (X with X_lo and X_hi beside it: to their
    spread, row by row; any other: to SIGNIFICANT digits), missing values as `words` (or, a dict, as the
    words of their column; "" where it names none)."""
    out = df.copy()
    for col in df.columns:
        if not pd.api.types.is_float_dtype(df[col]):
            continue
        lo, hi = f"{col}_lo", f"{col}_hi"
        if lo in df and hi in df:
            vals = [rounded(v, a, b) for v, a, b in zip(df[col], df[lo], df[hi])]
        else:
            vals = [rounded(v) for v in df[col]]
        out[col] = pd.Series(vals, index=df.index, dtype=object)
    for col in list(out.columns):
        if col.endswith(("_lo", "_hi")) and col[:-3] in df:
            out[col] = [rounded(v, a, b) for v, a, b in zip(df[col], df[col[:-3] + "_lo"], df[col[:-3] + "_hi"])]
    out = out.astype(object)
    if isinstance(words, dict):
        return pd.DataFrame({c: out[c].where(out[c].notna(), words.get(c, "")) for c in out.columns}, index=out.index)
    return out.where(out.notna(), words)
