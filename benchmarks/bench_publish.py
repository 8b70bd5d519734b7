"""Docker's publishing side by side: a compute node's pull and the VM's own 127.0.0.1 pull, DNAT vs docker-proxy.

    python benchmarks/bench_publish.py [--image-size 256MiB] [--reps 5]

The three ways daemon.json can publish (Docker's defaults; userland-proxy false; iptables false),
each pulled from outside (the compute node) and from the VM's 127.0.0.1, in alternating rounds so
drift hits them alike; X-Accel-Redirect so nginx sends with sendfile and the publish step shows.
Prints median (slowest-fastest) MB/s and each median as a ratio of Docker's defaults, plus what
carried the pulls (labkit.path.publish_route). No target: it shows what Docker's choice costs.
"""
from __future__ import annotations

import argparse
import statistics

from labkit.config.presets import SREGISTRY_SHIPPED
from labkit.lab.lab import Lab
from labkit.measure.pull_at import pull_at
from labkit.units import SIZE_HELP, format_size, parse_size

BASE = SREGISTRY_SHIPPED.changed(app={"serve_mode": "accel"})
WAYS = {"defaults (iptables, userland-proxy)": {},
        "userland-proxy false": {"userland_proxy": False},
        "iptables false": {"iptables": False}}
VANTAGES = {"outside": "full path", "VM 127.0.0.1": "VM loopback"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", "--image-mib", dest="image_size", type=parse_size, default="256MiB",
                    help=SIZE_HELP)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    runs: dict[tuple[str, str], list[float]] = {}
    route = {}
    with Lab("bench-pub", BASE, image_size=a.image_size, quiet=True) as lab:
        for _ in range(a.reps):
            for way, pub in WAYS.items():
                lab.apply(BASE.changed(publish=pub))
                for where, vantage in VANTAGES.items():
                    run = pull_at(lab, vantage, verify="length")
                    if not run.ok:
                        raise SystemExit(f"{way}, {where}: {run.errors}")
                    runs.setdefault((way, where), []).append(run.mbps)
                    route[(way, where)] = lab.path.route_at(vantage, lab.settings)
    print(f"one pull of {format_size(a.image_size)}, X-Accel-Redirect, {a.reps} alternating rounds (MB/s)")
    print(f"{'publishing':<38}{'pull from':<14}{'carried by':<14}{'median':>8}{'min':>8}{'max':>8}{'vs defaults':>13}")
    first = next(iter(WAYS))
    for (way, where), mbps in runs.items():
        med = statistics.median(mbps)
        ref = statistics.median(runs[(first, where)])
        print(f"{way:<38}{where:<14}{route[(way, where)]:<14}{med:8.0f}{min(mbps):8.0f}{max(mbps):8.0f}"
              f"{med / ref:12.2f}x")


if __name__ == "__main__":
    main()
