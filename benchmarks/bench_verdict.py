"""The injection matrix: each known bottleneck injected, surveyed, and the verdict compared with the truth.

    python benchmarks/bench_verdict.py [--image-mib 64] [--only TEXT ...]

Prints one row per case (case, expected, named, key evidence, seconds), the accuracy over the cases
that ran (target 100%) and the time per case (target <= 30 s at 64 MiB). Cases whose settings group
the Lab does not apply yet are listed as waiting, not counted.
"""
from __future__ import annotations

import argparse
import textwrap

from labkit.config.presets import preset
from labkit.lab.lab import DATA, Lab
from labkit.matrix import BASE, CASES, run_matrix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-mib", type=int, default=64)
    ap.add_argument("--only", nargs="*", default=[], help="run the cases whose name contains one of these")
    ap.add_argument("--verbose", action="store_true", help="print each verdict in full")
    a = ap.parse_args()
    cases = [c for c in CASES if not a.only or any(t in c.name for t in a.only)]
    print(f"verdict matrix: {len(cases)} cases, {a.image_mib} MiB image, 3 rounds of pulls per vantage point\n")

    def show(r):
        mark = "waiting" if r["ok"] is None else ("ok" if r["ok"] else "WRONG")
        secs = "" if r["seconds"] is None else f"{r['seconds']:5.1f} s"
        print(f"[{mark:7}] {r['case']:42} {secs}\n    expected: {r['expected']}\n    named:    {r['named']}\n"
              + textwrap.indent(textwrap.fill(r["evidence"], 140), "    evidence: ")[:2000])
        if a.verbose and r.get("verdict") is not None:
            print(textwrap.indent(str(r["verdict"]), "      "))

    with Lab("vd-bench", preset(BASE), image_size=a.image_mib * 2**20, quiet=True) as lab:
        rows = run_matrix(lab, cases, on_row=show, save_dir=DATA / "results" / "matrix")
    ran = rows[rows.ok.notna()]
    print()
    print(rows[["case", "expected", "named", "seconds", "ok"]].astype(object).fillna("").to_string(index=False))
    if len(ran):
        acc = 100 * ran.ok.astype(bool).mean()
        print(f"\naccuracy {acc:.0f}% ({int(ran.ok.astype(bool).sum())}/{len(ran)} cases that ran; target 100%)")
        print(f"time per case: median {ran.seconds.median():.1f} s, slowest {ran.seconds.max():.1f} s "
              f"(target <= 30 s at 64 MiB: {'met' if ran.seconds.max() <= 30 else 'MISSED'})")
    wait = rows[rows.ok.isna()]
    if len(wait):
        print(f"{len(wait)} case(s) waiting on settings the Lab does not apply yet: {', '.join(wait.case)}")


if __name__ == "__main__":
    main()
