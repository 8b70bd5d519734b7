"""AES-128-GCM against AES-256-GCM on the Opteron 6174's code paths, side by side in one run: what the lab's
emulated core gains from "AES-128-GCM first".

    python benchmarks/bench_gcm_paths.py [--rounds 5] [--seconds 2]

`openssl speed -evp <path> -bytes 16384` (labkit.lab.conditions.speed_meter.measure, one run per call) round by
round over aes-128-gcm and aes-256-gcm, each with the Opteron's OPENSSL_ia32cap mask (no AES-NI, no PCLMULQDQ:
AES in aes-x86_64's table code, GHASH 4-bit) and unmasked. The lab slows nginx by ratio = this machine's masked
MB/s / the model's published MB/s, per path (labkit.lab.conditions.cpu_emulation), measured at the lab's start.
Printed: the medians and ranges, this machine's 128/256 ratio beside the model's.
Target: this machine's masked 128/256 ratio within +-15% of the model's published one (the two paths differ in
the same part, AES's rounds, on both CPUs: 10 against 14, FIPS-197), so the lab's gain is the model's.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import check, finish  # noqa: E402

from labkit.config import cpu_models  # noqa: E402
from labkit.lab.conditions.cpu_emulation import host_flags, host_name, openssl_version  # noqa: E402
from labkit.lab.conditions.speed_meter import measure  # noqa: E402

PATHS = ("aes-128-gcm", "aes-256-gcm")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=2)
    a = ap.parse_args()
    m = cpu_models.model("opteron-6174")
    mask = cpu_models.ia32cap(m, host_flags()).env
    got: dict[tuple[str, str], list[float]] = {}
    for _ in range(a.rounds):                         # round by round: a busy moment falls on every path alike
        for path in PATHS:
            for name, env in (("masked", mask), ("unmasked", None)):
                got.setdefault((path, name), []).append(measure(path, env, runs=1, seconds=a.seconds).mbps)
    print(f"{host_name()}, {openssl_version()}; mask OPENSSL_ia32cap={mask}; {a.rounds} rounds of {a.seconds} s")
    print(f"{'path':12} {'masked MB/s':>22} {'unmasked MB/s':>22} {'opteron-6174 MB/s':>18}")
    med = {}
    for path in PATHS:
        cells = []
        for name in ("masked", "unmasked"):
            v = got[(path, name)]
            med[(path, name)] = statistics.median(v)
            cells.append(f"{statistics.median(v):8.1f} ({min(v):.1f}-{max(v):.1f})")
        print(f"{path:12} {cells[0]:>22} {cells[1]:>22} {m.mbps(path):18.1f}")
    here = med[("aes-128-gcm", "masked")] / med[("aes-256-gcm", "masked")]
    model = m.mbps("aes-128-gcm") / m.mbps("aes-256-gcm")
    lo = min(got[("aes-128-gcm", "masked")]) / max(got[("aes-256-gcm", "masked")])
    hi = max(got[("aes-128-gcm", "masked")]) / min(got[("aes-256-gcm", "masked")])
    print(f"masked 128/256: this machine {here:.2f} ({lo:.2f}-{hi:.2f} across rounds), the model {model:.2f}; "
          f"target +-15%: {check('masked aes-128/aes-256 within 15% of the model', abs(here / model - 1) <= 0.15)}")
    print(f"unmasked 128/256: {med[('aes-128-gcm', 'unmasked')] / med[('aes-256-gcm', 'unmasked')]:.2f} (AES-NI "
          f"and PCLMULQDQ: what a modern server would see)")
    finish()


if __name__ == "__main__":
    main()
