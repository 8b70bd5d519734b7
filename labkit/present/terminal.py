"""The survey's table in a terminal (pure): the columns a person needs, within 100 columns.

    print(brief(survey.table))          # kind, where, pulls at once, MB/s and its runs' range, failures,
                                        # the busiest program and its CPU, an error in a few words
    print(wide(survey.table))           # every column (`labkit survey --wide`); the CSV and JSON keep them all

Numbers are rounded to what their runs' spread supports (labkit.present.numbers).
"""
from __future__ import annotations

import textwrap

import pandas as pd

from .numbers import missing, rounded

WIDTH = 100


def _range(row) -> str:
    lo, hi = row.get("MBps_lo"), row.get("MBps_hi")
    if missing(lo) or missing(hi) or not float(hi) > float(lo):
        return ""
    return f"{rounded(lo, lo, hi)}-{rounded(hi, lo, hi)}"


def _busiest(row) -> str:
    who, cpu = row.get("busiest"), row.get("busiest_cpu")
    if missing(who) or not who:
        return ""
    return f"{who} {cpu:.0f}%" if not missing(cpu) else str(who)


def brief_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The brief table's rows: kind, point, x (pulls at once), MB/s, range, fail, busiest (CPU % of a core), error."""
    rows = []
    for _, r in table.iterrows():
        rows.append({"kind": r.get("kind", ""), "point": r.get("point", ""), "x": int(r.get("parallel") or 1),
                     "MB/s": rounded(r.get("MBps"), r.get("MBps_lo"), r.get("MBps_hi")), "range": _range(r),
                     "fail": int(r.get("failures") or 0), "busiest": _busiest(r),
                     "error": "" if missing(r.get("error")) else str(r.get("error"))})
    return pd.DataFrame(rows, columns=["kind", "point", "x", "MB/s", "range", "fail", "busiest", "error"])


def brief(table: pd.DataFrame, width: int = WIDTH) -> str:
    """The brief table as text no wider than `width` (an error is shortened to the room left; the whole
    error is in the CSV and JSON)."""
    df = brief_frame(table)
    has_error = df.error.astype(bool).any()
    if not has_error:
        df = df.drop(columns=["error"])
    df = df.astype(object).where(df.notna(), "")
    if has_error:
        room = width - len(df.drop(columns=["error"]).to_string(index=False).splitlines()[0]) - 2
        df["error"] = [textwrap.shorten(e, max(room, 10), placeholder="…") if e else "" for e in df.error]
    n = max((len(e) for e in df.error), default=0) if has_error else 0
    fmt = {"error": lambda e: str(e).ljust(n)} if has_error else None
    return "\n".join(line[:width].rstrip() for line in df.to_string(index=False, formatters=fmt).splitlines())


def wide(table: pd.DataFrame) -> str:
    """Every column, as the CSV holds them (for a wide terminal)."""
    with pd.option_context("display.width", 1000, "display.max_columns", None):
        return table.astype(object).where(table.notna(), "").to_string(index=False)
