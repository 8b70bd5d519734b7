"""A benchmark's targets: each one checked, said on its line as met or MISSED, and the benchmark exits 1 when
any was missed (so `make bench`, `make bench-ci` and `.ci/run` see it).

    from targets import check, finish
    print(f"ratio {r:.2f} (target >= 0.95: {check('labkit / curl >= 0.95', r >= 0.95)})")
    ...
    finish()      # at the end of main(): lists the misses and exits 1 if there were any
"""
from __future__ import annotations

import sys

MISSES: list[str] = []


def check(what: str, ok: bool) -> str:
    """'met' or 'MISSED' (remembered for finish())."""
    if not ok:
        MISSES.append(what)
    return "met" if ok else "MISSED"


def finish() -> None:
    """Exit 1 naming every missed target (a line starting with 'MISSED:' each, which benchmarks/run.py collects)."""
    for what in MISSES:
        print(f"MISSED: {what}", flush=True)
    if MISSES:
        sys.exit(1)
