"""Today's OCI clients side by side on one path, each as a ratio to curl fetching the same blobs in the same run.

    python benchmarks/bench_oci.py [--image-size 32MiB] [--reps 5] [--preset distribution-2.8]

One distribution lab (docker-registry 2.8 behind nginx with TLS, Docker's DNAT; the image 3 layers, the last
one large). Every kind of `apis = ("oci",)` (skopeo, podman, oras-style, enroot-style) pulls from the compute
node, one pull and 5 at once, each verified by digest; right after each (before it in every other round, so
drift on the shared machine falls on both alike) curl fetches the same blobs the same way, through the same
harness (one process per pull, its time from start to exit, its files checked by digest after it):

    skopeo, podman, enroot-style   every layer and the config, as many at once as the kind fetches them
                                   (min(6 or 10, layers): 3 connections), one `curl -Z --parallel-immediate`
    oras-style                     the large layer (the SIF's stand-in) and the config, one connection

curl fetches no manifest and checks nothing while it runs; each kind does what it does in real life on top
(skopeo: ping, manifest, digests checked as it copies; podman: that, then every layer unpacked into its store;
enroot-style: a HEAD, two manifest requests and the config, a curl each, then a hash per blob; oras-style:
ping, manifest, config, sha256 as it streams). MB/s: the blobs' bytes over the pull's wall time; 5 at once:
all bytes over the first start to the last end. The table gives each ratio's median over the rounds and its
spread (slowest-fastest).

Targets (benchmarks/targets.py): every pull of every kind and of curl verified by digest (0 failures); the
oras-style pull, labkit's own loop on one stream, within 10% of curl on the same blob (>= 0.90, or where
the rounds cannot tell them apart). The real programs' ratios are what the lab measures, not targets.
"""
from __future__ import annotations

import argparse
import statistics
from typing import ClassVar

from labkit.clients.kind import Target, Where
from labkit.clients.kinds import KINDS
from labkit.clients.oci_program import OciProgram
from labkit.clients.oci_pulled import Layout, check_blobs
from labkit.clients.puller import aggregate_mbps
from labkit.config.presets import PRESETS
from labkit.lab.host.tools import tool
from labkit.lab.lab import Lab
from labkit.lab.oci_image import oci_target
from labkit.units import SIZE_HELP, format_size, parse_size
from targets import check, finish

NAME = "ocikinds-bench"
OCI = [n for n, k in KINDS.items() if k.apis == ("oci",)]


class CurlBlobs(OciProgram):
    """curl fetching `blobs` (and the config) with `at_once` transfers at a time, each on its own connection."""
    name = "curl"
    layout: ClassVar[Layout] = "flat"

    def __init__(self, blobs: tuple[tuple[str, int], ...], at_once: int):
        super().__init__()
        self.blobs, self.at_once = blobs, at_once

    def argv(self, values: dict[str, str]) -> list[str]:
        urls = [d for d, _ in self.blobs] + [values["config"]]
        return ["curl", "-sS", "-f", *(["--cacert", values["cacert"]] if values["cacert"] else []), "-Z",
                "--parallel-immediate", "--parallel-max", str(self.at_once),
                *[w for d in urls for w in ("-o", f"{values['layout']}/{d.partition(':')[2]}",
                                            f"{values['base']}/v2/{values['repository']}/blobs/{d}")]]

    def values(self, t, url, workdir):
        return {**super().values(t, url, workdir), "config": t.oci.config_digest}

    def check(self, workdir, t, verify, exited_ok, output=""):
        return check_blobs(t.oci, workdir, "flat", verify, layers=self.blobs, manifest=False)


def same_blobs(kind: str, t: Target) -> tuple[CurlBlobs, str]:
    """curl fetching what `kind` fetches, as it does; and that in words."""
    if kind == "oras-style":
        big = max(t.oci.layers, key=lambda x: x[1])
        return CurlBlobs((big,), 1), "the large layer + config, 1 connection"
    n = min(KINDS[kind].connections, len(t.oci.layers))
    return CurlBlobs(t.oci.layers, n), f"{len(t.oci.layers)} layers + config, {n} at once"


def spread(xs: list[float], digits: int = 0) -> str:
    return f"{statistics.median(xs):.{digits}f} [{min(xs):.{digits}f}-{max(xs):.{digits}f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image-size", "--image-mib", dest="image_size", type=parse_size, default="32MiB", help=SIZE_HELP)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--parallel", type=int, default=5)
    ap.add_argument("--preset", default="distribution-2.8", choices=[k for k, s in PRESETS.items()
                                                                     if s.registry.kind == "distribution"])
    a = ap.parse_args()
    runs: dict[tuple[str, int], dict[str, list[float]]] = {}
    failed: list[str] = []
    with Lab(NAME, PRESETS[a.preset], image_size=a.image_size, quiet=True) as lab:
        v = lab.path.client_vantage
        t = oci_target(lab.services["registry"].image, lab.plan.endpoint(v), lab.trust_at(v))
        where = Where(lab.client.dest_root(), lab.client.preexec(), tool)
        for rnd in range(a.reps):
            for n in (1, a.parallel):
                for kind in OCI:
                    curl, _ = same_blobs(kind, t)
                    pair = [("kind", KINDS[kind]()), ("curl", curl)]
                    for who, client in (pair if rnd % 2 == 0 else pair[::-1]):
                        results = client.pull(t, where, n, "sha256", deadline=300)
                        failed += [f"{kind if who == 'kind' else 'curl for ' + kind} x{n}: {r.error}"
                                   for r in results if not (r.ok and r.sha256_ok)]
                        runs.setdefault((kind, n), {}).setdefault(who, []).append(aggregate_mbps(results))
    print(f"\n{a.preset}: compute -> DNAT -> nginx TLS -> docker-registry 2.8; image {format_size(a.image_size)}, "
          f"{len(t.oci.layers)} layers; {a.reps} rounds, median [slowest-fastest], MB/s of the blobs' bytes")
    print(f"{'client':<14}{'at once':>8}  {'curl fetches':<40}{'client MB/s':>18}{'curl MB/s':>18}{'ratio':>20}")
    ratios: dict[tuple[str, int], list[float]] = {}
    for (kind, n), got in runs.items():
        ratios[(kind, n)] = [k / c if c else 0.0 for k, c in zip(got["kind"], got["curl"])]
        print(f"{kind:<14}{n:>8}  {same_blobs(kind, t)[1]:<40}{spread(got['kind']):>18}{spread(got['curl']):>18}"
              f"{spread(ratios[(kind, n)], 2):>20}")
    print(f"\nevery pull verified by digest ({sum(len(g['kind']) + len(g['curl']) for g in runs.values())} runs): "
          + check(f"every pull verified, 0 failures ({len(failed)}: {'; '.join(failed[:3])})", not failed))
    for n in (1, a.parallel):
        got = runs[("oras-style", n)]
        r = ratios[("oras-style", n)]
        same = min(got["kind"]) <= max(got["curl"]) and min(got["curl"]) <= max(got["kind"])   # the rounds overlap
        print(f"oras-style / curl on the same blob, {n} at once: {statistics.median(r):.2f} (target >= 0.90 or within "
              f"the rounds' spread: {check(f'oras-style x{n} / curl >= 0.90 ({statistics.median(r):.2f}), or the same within the spread', statistics.median(r) >= 0.9 or same)})")
    finish()


if __name__ == "__main__":
    main()
