"""OCI pulls over kept-alive connections against a new connection per request, side by side on one OCI lab.

    python benchmarks/bench_oci_keepalive.py [--image-size 32MiB] [--layers 3] [--trials 3] [--preset distribution-2.8]

The lab's OCI registry (docker-registry 2.8 behind nginx with TLS, the lab's CA) stormed by Locust users on its
compute nodes, each pull as labkit's OCI client makes it (ping, manifest, config, the layers 6 at once), alternately
with keep-alive (a pull's requests share connections, labkit.clients.pool, as containers/image's one http.Client per
pull) and without (a TLS handshake per request: labkit before issue 28). Per mode: the storm's aggregate MB/s, the
per-pull median, and the connections one pull dials (one pull from the compute node, its pool counted).
Target: keep-alive reaches the new-connection storms (never slower beyond the runs' noise, labkit.analyze.noise).
"""
from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd

from labkit.analyze.noise import Rate, reaches
from labkit.clients.oci import Reference
from labkit.clients.registry_api import base_url
from labkit.config.presets import PRESETS
from labkit.experiments.storm import run_storm
from labkit.lab.lab import Lab
from labkit.measure.locust_storm import StormSpec
from labkit.measure.oci_probe import OciClient
from labkit.units import SIZE_HELP, format_size, parse_size
from targets import check, finish

NAME = "stormoci-ka"
MODES = {"keep-alive": True, "new connection per request": False}


def connections_of_one_pull(lab, keep_alive: bool) -> dict:
    """One pull from the client's compute node: the connections its session dialled and reused, and its MB/s."""
    ns, host, port = lab.plan.endpoint(lab.path.client_vantage)
    trust = lab.trust_at(lab.path.client_vantage)
    img = lab.services["registry"].image
    client = OciClient(Reference.parse(f"{base_url(host, port, trust)}/{img.ref}"), ns, 30, trust, keep_alive=keep_alive)
    s = client.session()
    try:
        image = client.prepare(s)
        r, _ = client.pull(s, image, 120, watch=False)
    finally:
        s.close()
    counts = s.pool.counts() if s.pool else {"connections": len(s.steps) + len(image.layers), "reused": 0}
    return {**counts, "requests": len(s.steps) + len(image.layers), "ok": r.ok, "MBps": round(r.mbps, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image-size", dest="image_size", type=parse_size, default="32MiB", help=SIZE_HELP)
    ap.add_argument("--layers", type=int, default=3, help="registry.layers: the image's layer count")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--preset", default="distribution-2.8", choices=[p for p, s in PRESETS.items()
                                                                     if s.registry.kind == "distribution"])
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--pulls", type=int, default=24)
    a = ap.parse_args()
    settings = PRESETS[a.preset].changed(registry={"layers": a.layers})
    pd.set_option("display.width", 250)
    print(f"OCI storms, keep-alive vs a connection per request: preset {a.preset}, {format_size(a.image_size)} image "
          f"in {a.layers} layers, {a.nodes} compute nodes, {a.users} users, {a.pulls} pulls a storm", flush=True)
    t0 = time.perf_counter()
    rows, conns = [], {}
    with Lab(NAME, settings, image_size=a.image_size, compute_nodes=a.nodes, quiet=True) as lab:
        connections_of_one_pull(lab, True)                            # the page cache warm for both
        for mode, keep in MODES.items():
            conns[mode] = connections_of_one_pull(lab, keep)          # one pull each: its rate is one sample
        for i in range(a.trials):                                     # alternating: drift hits both alike
            for mode, keep in (MODES.items() if i % 2 == 0 else reversed(MODES.items())):
                s = run_storm(lab, StormSpec(users=a.users, pulls=a.pulls, keep_alive=keep, deadline=120)).row()
                rows.append({"trial": i + 1, "mode": mode, **{k: s[k] for k in (
                    "pulls", "ok", "failures", "harness_failures", "MBps", "per_pull_median", "jain", "ttfb_ms")}})
                print(f"   trial {i + 1} {mode:28s} {s['MBps']:7.1f} MB/s (per pull median {s['per_pull_median']:.1f}, "
                      f"{s['ok']}/{s['pulls']} ok)", flush=True)
    print("\none pull from the compute node, connections its session made:")
    print(pd.DataFrame([{"mode": m, **c} for m, c in conns.items()]).to_string(index=False))
    table = pd.DataFrame(rows)
    print("\nthe storms:\n" + table.to_string(index=False))
    rates = {m: Rate.of_runs(table[table["mode"] == m].MBps) for m in MODES}
    per_pull = {m: statistics.median(table[table["mode"] == m].per_pull_median) for m in MODES}
    for m in MODES:
        print(f"   {m}: aggregate {rates[m]}, per pull median {per_pull[m]:.1f} MB/s")
    ka, new = rates["keep-alive"], rates["new connection per request"]
    all_ok = bool((table.failures == 0).all())
    fewer = conns["keep-alive"]["connections"] < conns["new connection per request"]["connections"]
    print(f"   keep-alive / new connections: {ka.median / new.median:.2f}; target keep-alive reaches the other "
          f"(labkit.analyze.noise): {check('keep-alive storms reach new-connection storms', reaches(ka, new))}; "
          f"fewer connections a pull: {check('keep-alive dials fewer connections', fewer)}; "
          f"every pull verified: {check('no failed pull', all_ok)}")
    print(f"\nbenchmark took {time.perf_counter() - t0:.0f} s")
    finish()


if __name__ == "__main__":
    main()
