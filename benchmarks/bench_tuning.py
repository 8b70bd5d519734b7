"""One tuning trial (apply + one pull + 5 parallel pulls of the CI image), timed per kind of change.

    python benchmarks/bench_tuning.py [--image-size 64MiB]

Target: every trial <= 10 s. Each row also shows what the change did to throughput.
"""
from __future__ import annotations

import argparse

from labkit.units import SIZE_HELP, format_size, parse_size
from labkit.lab.lab import Lab
from labkit.config.presets import PRESETS, SREGISTRY_SHIPPED as S
from labkit.measure.sweep import trial
from targets import check, finish

CHANGES = {  # label: settings, in the order applied (each trial starts from the previous one)
    "as shipped (no change)": S,
    "uwsgi + app restart: X-Accel-Redirect": S.changed(app={"serve_mode": "accel"}),
    "publish switch: docker-proxy carries all (iptables off)": S.changed(app={"serve_mode": "accel"},
                                                                        publish={"iptables": False}),
    "nginx reload: sendfile off": S.changed(app={"serve_mode": "accel"}, nginx={"sendfile": False}),
    "kernel sysctls: tcp_wmem, bbr": S.changed(app={"serve_mode": "accel"},
                                               kernel={"tcp_wmem": (4096, 65536, 16777216),
                                                       "congestion_control": "bbr"}),
    "link reshape: wan 1gbit": S.changed(app={"serve_mode": "accel"},
                                         links={"wan": "1gbit"}),
    "preset: seed poster (128 uwsgi processes)": PRESETS["seed-poster"],
    "preset: recommended": PRESETS["recommended"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", "--image-mib", dest="image_size", type=parse_size, default="64MiB", help=SIZE_HELP)
    a = ap.parse_args()
    print(f"tuning trials on the running lab ({format_size(a.image_size)} image, 1 + 5 parallel pulls, full path):")
    worst = 0.0
    with Lab("bench", S, image_size=a.image_size, quiet=True) as lab:
        for label, s in CHANGES.items():
            r = trial(lab, s, label, parallel=5)
            worst = max(worst, r["trial_s"])
            print(f"  {label:44} apply {r['apply_s']:5.2f} s  trial {r['trial_s']:5.2f} s   "
                  f"single {r['single_MBps']:6.0f} MB/s  5 parallel {r['parallel_MBps']:6.0f} MB/s  failures {r['failures']}")
    print(f"slowest trial {worst:.2f} s (target <= 10 s: {check(f'slowest trial <= 10 s ({worst:.1f} s)', worst <= 10)})")
    finish()


if __name__ == "__main__":
    main()
