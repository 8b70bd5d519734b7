"""The seed case under its lead suspect, at the seed's size, recorded: labkit.experiments.hypotheses.tls_seed_case.

    python scripts/seed_tls_case.py [--image-mib 1536] [--out data/recorded/...csv]

Writes one CSV (measured and predicted rows) and a .txt beside it with the summary and the wall time.
Long at the seed's size (about 10 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from labkit.lab.lab import DATA
from labkit.experiments.hypotheses import tls_seed_case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-mib", type=int, default=1536)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    out = a.out or DATA / "recorded" / f"seed-case-2018-10-https-opteron-{a.image_mib}MiB-6gbit.csv"
    t0 = time.perf_counter()
    df, lines = tls_seed_case(a.image_mib, progress=True)
    lines.append(f"wall time {time.perf_counter() - t0:.0f} s ({a.image_mib} MiB image, 2-core machine)")
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(df.to_string(index=False))
    print("\n".join(lines))
    print(f"wrote {out} and {out.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
