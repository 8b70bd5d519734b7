"""Every client kind of the table (labkit.clients.kinds.KINDS) side by side on one path, writing to the
compute node's disk and to memory.

    python benchmarks/bench_clients.py [--image-size 128MiB] [--reps 3]

Every pull goes through `pull_at` (the lab's one measurement primitive) from the compute node,
sha256-verified from the file each client wrote. Runs alternate (labkit, curl, sregistry-cli, ...,
labkit, ...) so drift on the shared machine hits all of them; the table gives the median MB/s, the
spread, and each kind's ratio to labkit's own client.
"""
from __future__ import annotations

import argparse
import statistics

from labkit.clients.command import EXAMPLE
from labkit.clients.kinds import KINDS, OWN
from labkit.config.presets import SREGISTRY_SHIPPED
from labkit.lab.lab import Lab
from labkit.measure.pull_at import pull_at
from labkit.units import SIZE_HELP, format_size, parse_size

EXTRA = {"command": {"command": EXAMPLE}}          # a kind's own settings
SREGISTRY = [k for k, c in KINDS.items() if "sregistry" in c.apis]     # the OCI kinds: bench_oci.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image-size", "--image-mib", dest="image_size", type=parse_size, default="128MiB",
                    help=SIZE_HELP)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    base = SREGISTRY_SHIPPED.changed(storage={"disk": "loop"})
    runs: dict[tuple[str, str], list[float]] = {}
    with Lab("ly-bench", base, image_size=a.image_size, quiet=True) as lab:
        for dest in ("local-disk", "memory"):
            for _ in range(a.reps):
                for kind in SREGISTRY:
                    lab.apply(base.changed(client={"kind": kind, "dest": dest, **EXTRA.get(kind, {})}))
                    run = pull_at(lab)
                    if not run.ok:
                        raise SystemExit(f"{kind} -> {dest}: {run.errors}")
                    runs.setdefault((kind, dest), []).append(run.mbps)
    print(f"one pull of {format_size(a.image_size)} through the whole path, {a.reps} alternating runs each (MB/s)")
    w = max(map(len, SREGISTRY)) + 2
    print(f"{'client':<{w}}{'writes to':<11}{'median':>8}{'min':>8}{'max':>8}{'vs labkit':>11}")
    for (kind, dest), mbps in runs.items():
        med = statistics.median(mbps)
        ref = statistics.median(runs[(OWN, dest)])
        print(f"{kind:<{w}}{dest:<11}{med:8.0f}{min(mbps):8.0f}{max(mbps):8.0f}{med / ref:10.2f}x")


if __name__ == "__main__":
    main()
