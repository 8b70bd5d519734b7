"""The injection matrix: each known bottleneck injected, surveyed, and the verdict compared with the truth.

    python benchmarks/bench_verdict.py [--image-mib 64] [--only TEXT ...]

Prints one row per case (case, expected, named, key evidence, seconds), the accuracy over the cases
(target 100%) and the time per case (target <= 30 s at 64 MiB).
"""
from __future__ import annotations

import argparse
import textwrap

from labkit.config.presets import preset
from labkit.lab.lab import DATA, Lab
from labkit.matrix import BASE, cases_for, run_matrix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-mib", type=int, default=64)
    ap.add_argument("--only", nargs="*", default=[], help="run the cases whose name contains one of these")
    ap.add_argument("--verbose", action="store_true", help="print each verdict in full")
    a = ap.parse_args()

    def show(r):
        mark = "ok" if r["ok"] else "WRONG"
        secs = f"{r['seconds']:5.1f} s"
        print(f"[{mark:7}] {r['case']:42} {secs}\n    expected: {r['expected']}\n    named:    {r['named']}\n"
              + textwrap.indent(textwrap.fill(r["evidence"], 140), "    evidence: ")[:2000])
        if a.verbose and r.get("verdict") is not None:
            print(textwrap.indent(str(r["verdict"]), "      "))

    with Lab("vd-bench", preset(BASE), image_size=a.image_mib * 2**20, quiet=True) as lab:
        cases = [c for c in cases_for(lab.plan.path) if not a.only or any(t in c.name for t in a.only)]
        print(f"verdict matrix: {len(cases)} cases, {a.image_mib} MiB image, 3 rounds of pulls per vantage point\n")
        rows = run_matrix(lab, cases, on_row=show, save_dir=DATA / "results" / "matrix")
    print()
    print(rows[["case", "expected", "named", "seconds", "ok"]].astype(object).fillna("").to_string(index=False))
    acc = 100 * rows.ok.astype(bool).mean()
    print(f"\naccuracy {acc:.0f}% ({int(rows.ok.astype(bool).sum())}/{len(rows)} cases; target 100%)")
    print(f"time per case: median {rows.seconds.median():.1f} s, slowest {rows.seconds.max():.1f} s "
          f"(target <= 30 s at 64 MiB: {'met' if rows.seconds.max() <= 30 else 'MISSED'})")


if __name__ == "__main__":
    main()
