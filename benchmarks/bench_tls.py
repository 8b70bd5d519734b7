"""TLS on the seed's server CPU and the fixes for it: one pull and N at once, measured side by side in one run.

    python benchmarks/bench_tls.py [--image-size 128MiB] [--reps 3] [--parallel 5]

From sregistry's https setup (preset sregistry-2018-10-https, AES-256-GCM negotiated): plain http, TLS on
this machine's CPU, TLS on the Opteron 6174 (cpu.model: its instruction set for OpenSSL, its per-core
speed by CFS quota, the ratio from published cycles per byte), then each fix of labkit.config.tls_fixes
on the Opteron. Runs go round by round over the configurations of one lab (TLS on or off is a lab's
start-time setting: two labs), so a busy moment of the machine falls on all alike. Printed: median MB/s
(slowest-fastest), each as a ratio to TLS on the Opteron, nginx's CPU, the suite, which clients can use it.
No target: the ratios are the finding (on this 2-core machine N pulls share at most 2 emulated cores).
"""
from __future__ import annotations

import argparse
import statistics
import time

from labkit.config import cpu_models
from labkit.config.presets import preset
from labkit.config.tls_fixes import FIXES
from labkit.lab.lab import Lab
from labkit.measure.pull_at import pull_at
from labkit.units import SIZE_HELP, format_size, parse_size

HTTPS = preset("sregistry-2018-10-https")
K10 = {"cpu": {"model": "opteron-6174"}}


def configs() -> list[tuple[str, object, str, str]]:
    """(label, settings, what it helps, which clients) in the order printed."""
    out = [("plain http (this CPU)", HTTPS.changed(tls={"enabled": False}), "", "every client"),
           ("TLS (this CPU, AES-NI)", HTTPS, "", "every client"),
           ("TLS (opteron-6174)", HTTPS.changed(**K10), "", "the seed's setup")]
    for f in FIXES:
        out.append((f"fix: {f.name}", f.apply(HTTPS.changed(**K10)), f.helps, f.clients))
    return out


def measure(lab: Lab, parallel: int) -> dict:
    one = pull_at(lab, verify="length", deadline=900)
    many = pull_at(lab, parallel=parallel, verify="length", deadline=900)
    for r in (one, many):
        if not r.ok:
            raise RuntimeError(f"pull failed: {r.errors}")
    return {"one": one.mbps, "many": many.mbps, "nginx_cpu": one.cpu.get("nginx", {}).get("cpu_total", 0.0),
            "nginx_s_per_GB": one.row()["cpu_s_per_GB_nginx"]}


def suite(s) -> str:
    return cpu_models.negotiated(s.tls) if s.tls.enabled else "(none)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", "--image-mib", dest="image_size", type=parse_size, default="128MiB",
                    help=SIZE_HELP)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=5)
    a = ap.parse_args()
    t0 = time.perf_counter()
    runs: dict[str, list[dict]] = {}
    todo = configs()
    notes: list[str] = []
    for tls_on in (True, False):
        mine = [c for c in todo if c[1].tls.enabled == tls_on]
        with Lab("bench-tls", mine[0][1], image_size=a.image_size, quiet=True) as lab:
            for _ in range(a.reps):
                for label, s, _, _ in mine:
                    lab.apply(s)
                    runs.setdefault(label, []).append(measure(lab, a.parallel))
                    if s.cpu.model != "host" and lab.cpu.emulation:
                        e = lab.cpu.emulation
                        notes.append(f"{label}: {e.path}: published {e.model_mbps:.1f} MB/s per core, this machine "
                                     f"masked {e.host_mbps:.1f} MB/s: ratio {e.ratio:.2f}, each process held to "
                                     f"{1 / e.ratio:.3f} of a core per thread")
                        notes.append(f"OPENSSL_ia32cap={e.mask} (labkit cpu-model shows the sources)")
    base = statistics.median(r["one"] for r in runs["TLS (opteron-6174)"])
    base_n = statistics.median(r["many"] for r in runs["TLS (opteron-6174)"])
    print(f"TLS on the seed's CPU and its fixes: {format_size(a.image_size)} image, full path, unshaped, one pull and "
          f"{a.parallel} at once, median of {a.reps} rounds (slowest-fastest); ratios to TLS on the Opteron 6174")
    print(f"{'configuration':42} {'suite':30} {'one pull MB/s':>22} {'x':>6} {f'{a.parallel} at once MB/s':>22} "
          f"{'x':>6} {'nginx CPU %':>11} {'nginx s/GB':>10}")
    for label, s, helps, clients in todo:
        rs = runs[label]
        one, many = [r["one"] for r in rs], [r["many"] for r in rs]
        m1, mn = statistics.median(one), statistics.median(many)
        print(f"{label:42} {suite(s):30} {m1:8.1f} ({min(one):6.1f}-{max(one):6.1f}) {m1 / base:6.2f} "
              f"{mn:8.1f} ({min(many):6.1f}-{max(many):6.1f}) {mn / base_n:6.2f} "
              f"{statistics.median(r['nginx_cpu'] for r in rs):11.0f} "
              f"{statistics.median(r['nginx_s_per_GB'] or 0 for r in rs):10.2f}")
    print("\nwho can use each fix:")
    for label, _, helps, clients in todo[3:]:
        print(f"  {label}: helps {helps}; {clients}")
    print("\nthe CPU model as the lab applied it:")
    for n in dict.fromkeys(notes):
        print(f"  {n}")
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; numbers from a shared 2-core machine are provisional")


if __name__ == "__main__":
    main()
