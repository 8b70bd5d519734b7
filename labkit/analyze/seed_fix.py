"""The seed's fixes as recorded (labkit.experiments.seed_fix's SEED_FIXES): the long records, a row per run, as one
table a fix a row. Pure: no lab.

    records = pd.read_csv("data/recorded/seed-fixes-128MiB-k4.csv")
    table = fixes_table(records)       # 1 pull median [lo-hi] of n runs, 40 pulls, x as it was, lk.scale beside
    print(render(table))

Each run is measured in the dilated lab and read back x k; lk.scale's prediction (labkit.analyze.scale.predict,
from the same run's CPU per byte) stands in its own column beside each median, never in its place.
"""
from __future__ import annotations

import pandas as pd

AS_IT_WAS = "as it was"
RECORD_COLUMNS = ("fix", "settings", "pulls", "nodes", "run", "MBps", "predicted_MBps", "predicted_by", "failures",
                  "machine_pct", "tls", "changes", "k", "ratio", "wall_s", "when")


def _median_of(rows: pd.DataFrame) -> dict:
    mb = rows["MBps"].astype(float)
    return {"MB/s": round(float(mb.median()), 1), "lo": round(float(mb.min()), 1), "hi": round(float(mb.max()), 1),
            "runs": int(len(mb)), "lk.scale": round(float(rows["predicted_MBps"].astype(float).median()), 1),
            "failed": int(rows["failures"].sum())}


def fixes_table(records: pd.DataFrame, base: str = AS_IT_WAS) -> pd.DataFrame:
    """A row per fix (in the records' order), for each pull count: the median MB/s, its runs' range and count,
    lk.scale's prediction beside it, and the median over `base`'s median (x as it was). Columns are named
    '<n> pull(s) MB/s', '<n> ... lo', 'hi', 'runs', 'lk.scale', 'x as it was'; then failures and the TLS
    negotiated."""
    if records.empty:
        return pd.DataFrame()
    counts = sorted(int(n) for n in records["pulls"].unique())
    medians = {(f, n): _median_of(g) for (f, n), g in records.groupby(["fix", "pulls"], sort=False)}
    rows = []
    for fix in dict.fromkeys(records["fix"]):
        row: dict = {"fix": fix}
        for n in counts:
            label = f"{n} pull{'s' if n > 1 else ''}"
            got, ref = medians.get((fix, n)), medians.get((base, n))
            if got is None:
                row.update({f"{label} MB/s": float("nan")})
                continue
            row.update({f"{label} MB/s": got["MB/s"], f"{label} lo": got["lo"], f"{label} hi": got["hi"],
                        f"{label} runs": got["runs"], f"{label} lk.scale": got["lk.scale"],
                        f"{label} x as it was": round(got["MB/s"] / ref["MB/s"], 2) if ref else float("nan")})
        mine = records[records["fix"] == fix]
        row["failed"] = int(mine["failures"].sum())
        row["TLS negotiated"] = "; ".join(sorted({str(t) for t in mine["tls"].fillna("") if str(t)})) or "none (http)"
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(row: pd.Series, label: str) -> str:
    v = row.get(f"{label} MB/s")
    if v is None or pd.isna(v):
        return "not run"
    runs = int(row[f"{label} runs"])
    spread = f" [{row[f'{label} lo']:.0f}-{row[f'{label} hi']:.0f}]" if runs > 1 else ""
    return (f"{v:.0f}{spread} ({runs} run{'s' if runs > 1 else ''}) x{row[f'{label} x as it was']:.2f}, "
            f"lk.scale {row[f'{label} lk.scale']:.0f}")


def render(table: pd.DataFrame) -> str:
    """The table in a terminal's words: per pull count 'median [lo-hi] (n runs) x ratio, lk.scale P'."""
    if table.empty:
        return "no fix recorded yet"
    labels = [c[:-len(" MB/s")] for c in table.columns if c.endswith(" MB/s")]
    width = max(len(f) for f in table["fix"])
    lines = [f"{'fix':{width}}  " + "  |  ".join(f"{lab} MB/s (seed's time)" for lab in labels)]
    for _, row in table.iterrows():
        lines.append(f"{row['fix']:{width}}  " + "  |  ".join(_cell(row, lab) for lab in labels)
                     + (f"  failed {row['failed']}" if row["failed"] else "") + f"  [{row['TLS negotiated']}]")
    return "\n".join(lines)
