"""The injection matrix: each known bottleneck injected, surveyed, and the verdict compared with the truth;
or the default survey repeated, and how often its verdict says the same thing.

    python benchmarks/bench_verdict.py [--image-size 64MiB] [--only TEXT ...]
    python benchmarks/bench_verdict.py --stability 10

The matrix prints one row per case (case, expected, named, key evidence, seconds), the accuracy over
the cases that ran, first answers only (target 100%), and the time per case (target <= 30 s at 64 MiB). A
verdict whose runs allow two answers says both; a truth given only as the second answer is marked "2nd",
listed apart and not counted (labkit.analyze.scoring).

--stability N runs the default survey (`labkit survey`: sregistry-2018-10, 64 MiB, 5 at once, 3
rounds, sha256) N times on one lab and prints one row per run (hop, cause, whether the machine's
CPUs were full or near full, a second answer, the client's MB/s), how many runs gave the most common hop and
cause, and how many gave the same whole headline with its numbers stripped (targets: at least 9 in 10 each).
Each survey is saved, to be judged again offline.
"""
from __future__ import annotations

import argparse
import textwrap

from labkit.units import SIZE_HELP, format_size, parse_size
from labkit.analyze import scoring
from labkit.config.presets import preset
from labkit.lab.lab import DATA, Lab
from labkit.experiments.matrix import BASE, cases_for, run_matrix
from targets import check, finish


def stability(runs: int, image_size: int, parallel: int = 5) -> None:
    """The default survey `runs` times: the verdict's hop and cause per run, and how often the most common repeats."""
    from collections import Counter

    import pandas as pd

    from labkit.analyze.verdict import verdict
    from labkit.measure.survey import run_survey
    print(f"verdict stability: the default survey {runs} times ({BASE}, {format_size(image_size)}, {parallel} at once, "
          "3 rounds, sha256)\n")
    rows, out = [], DATA / "results" / "stability"
    with Lab("vd-stable", preset(BASE), image_size=image_size, quiet=True) as lab:
        for i in range(1, runs + 1):
            s = run_survey(lab, parallel=parallel, progress=False)
            saved = s.save(out, f"stability-{i:02d}")
            v = verdict(s)
            sh = v.shared
            rows.append({"run": i, "hop": v.hop, "cause": v.cause, "machine_full": v.machine_bound,
                         "demand_pct": round(sh.demand.median) if sh else None,
                         "machine_pct": round(sh.machine_busy) if sh and sh.machine_busy is not None else None,
                         "costliest": sh.costliest.name if sh and sh.costliest else "",
                         "or": f"{v.alternative.hop}: {v.alternative.cause}" if v.alternative else "",
                         "near": sh.near_full if sh else False,
                         "client_MBps": round(v.rate or 0), "wall_s": s.meta["wall_s"], "saved": saved.name,
                         "words": scoring.stripped(v.to_dict()["headline"])})
            print(f"run {i:2}: {v.hop}: {v.cause}" + ("  (the machine's CPUs full)" if v.machine_bound else "")
                  + f"\n        {v.to_dict()['headline']}\n        numbers stripped: {rows[-1]['words']}", flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table.drop(columns=["saved", "words"]).to_string(index=False))
    (hop, cause), same = Counter(zip(table.hop, table.cause)).most_common(1)[0]
    words, alike = Counter(table.words).most_common(1)[0]
    need = -(-9 * runs // 10)
    print(f"\nsame hop and cause in {same}/{runs} runs: {hop}: {cause} "
          f"(target at least {need}/{runs}: {check(f'same hop and cause in >= {need}/{runs} ({same})', same >= need)})")
    print(f"the same headline, numbers stripped, in {alike}/{runs} runs: {words} "
          f"(target at least {need}/{runs}: {check(f'same headline words in >= {need}/{runs} ({alike})', alike >= need)})")
    for w, n in Counter(table.words).most_common()[1:]:
        print(f"  and in {n}/{runs}: {w}")
    print(f"surveys saved in {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", "--image-mib", dest="image_size", type=parse_size, default="64MiB", help=SIZE_HELP)
    ap.add_argument("--only", nargs="*", default=[], help="run the cases whose name contains one of these")
    ap.add_argument("--verbose", action="store_true", help="print each verdict in full")
    ap.add_argument("--stability", type=int, metavar="N", help="run the default survey N times instead of the matrix")
    a = ap.parse_args()
    if a.stability:
        if not 2 <= a.stability <= 50:
            ap.error("--stability N: 2..50")
        stability(a.stability, a.image_size)
        return finish()

    def show(r):
        mark = scoring.mark(r.get("answer", ""))
        secs = f"{r['seconds']:5.1f} s"
        print(f"[{mark:7}] {r['case']:42} {secs}\n    expected: {r['expected']}\n    named:    {r['named']}\n"
              + textwrap.indent(textwrap.fill(r["evidence"], 140), "    evidence: ")[:2000])
        if a.verbose and r.get("verdict") is not None:
            print(textwrap.indent(str(r["verdict"]), "      "))

    with Lab("vd-bench", preset(BASE), image_size=a.image_size, quiet=True) as lab:
        cases = [c for c in cases_for(lab.path) if not a.only or any(t in c.name for t in a.only)]
        print(f"verdict matrix: {len(cases)} cases, {format_size(a.image_size)} image, 3 rounds of pulls per vantage point\n")
        rows = run_matrix(lab, cases, on_row=show, save_dir=DATA / "results" / "matrix")
    print()
    rows["mark"] = rows.answer.map(scoring.mark)
    print(rows[["case", "expected", "named", "seconds", "mark"]].astype(object).fillna("").to_string(index=False))
    sc = scoring.score(rows.answer, rows.case)
    print("\n" + sc.text() + f" ({check(f'first-answer accuracy 100% ({sc.right}/{sc.cases})', sc.right == sc.cases)})")
    print(f"time per case: median {rows.seconds.median():.1f} s, slowest {rows.seconds.max():.1f} s "
          f"(target <= 30 s at 64 MiB: {check('slowest case <= 30 s', rows.seconds.max() <= 30)})")
    finish()


if __name__ == "__main__":
    main()
