"""Candidate explanations of the seed's slow pulls, and which of them fit everything the seed observed.

Each hypothesis is a change to the 2018-10 settings that makes one suspected cause real in the
lab. Its signature (one pull's MB/s, the server's CPU, the aggregate with N pulls, disk bytes,
failures) is measured by the workflow and judged here against the seed's observations
(data/seed/observations.json), with the lab's own link capacity standing in for the seed's 6 Gbit.
Pure: rows in, a judged table out.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SEED_LINK = "6gbit"        # the seed's hypervisor uplink


@dataclass(frozen=True)
class Hypothesis:
    name: str
    explains: str
    overrides: tuple[str, ...]
    fix: str
    base: str = "sregistry-2018-10"
    min_mib: int = 1               # the smallest image (MiB) at which its effect shows


HYPOTHESES = (
    Hypothesis("docker-proxy copying", "every byte crosses docker-proxy, a user-space copy (2018-10 as is)",
               (), "publish with DNAT (`userland-proxy: false` in daemon.json)"),
    Hypothesis("too few uwsgi workers", "uwsgi 1 process x 1 thread (before d037140): pulls queue behind one worker",
               (), "more processes/threads, or X-Accel-Redirect so a worker is free after the headers",
               base="sregistry-2018-early"),
    Hypothesis("Django iterates the file", "no wsgi.file_wrapper: Django reads and writes 4 KiB blocks in Python",
               ("app.serve_mode=fileresponse-iter",), "keep uwsgi's file wrapper (sendfile), or X-Accel-Redirect"),
    Hypothesis("cold reads on a slow disk", "the image is read from a networked disk (qcow2 on GPFS): "
               "every read request waits", ("storage.disk=loop", "storage.cache=cold", "storage.latency_ms=2"),
               "a warm page cache (RAM for the images), a faster disk, or larger read-ahead"),
    Hypothesis("nginx spools to a slow layer", "nginx buffers every pull into temp files on the container's "
               "own (slow) layer", ("storage.disk=loop", "storage.write_mbps=40"),
               "uwsgi_buffering off, or X-Accel-Redirect (no temp files)"),
    Hypothesis("slow client disk", "the compute node writes the image to a slow disk",
               ("client.write_to=disk", "client.write_mbps=40"), "a faster destination (local SSD, tmpfs)"),
    # sregistry's https setup (its docs recommend it) on the seed's Opteron 6174: OpenSSL without AES-NI,
    # PCLMULQDQ, SSSE3 runs AES-256-GCM in its table code at a published ~54 cycles per byte (40.8 MB/s
    # per 2.2 GHz core, labkit.config.cpu_models); one connection is one nginx worker on one core. From
    # 32 MiB: a pull at ~35 MB/s spans ten CFS periods (100 ms) of the emulated core.
    Hypothesis("TLS in software on the Opteron", "nginx encrypts every byte with AES-256-GCM in OpenSSL's "
               "table code (no AES-NI on an Opteron 6174): one pull = one worker = one slow core",
               ("cpu.model=opteron-6174",), "AES-128-GCM first in ssl_ciphers, or plain http on the cluster "
               "network; worker_processes auto for many pulls (benchmarks/bench_tls.py measures each)",
               base="sregistry-2018-10-https", min_mib=32),
)

CHECKS = {
    "one_pull_far_below_the_link": lambda r, cap: r.single_MBps <= 0.2 * cap,
    "many_pulls_add_up": lambda r, cap: r.top_MBps >= 4 * r.single_MBps,
    "server_idle_for_one_pull": lambda r, cap: r.single_cpu < 50,
    "no_disk_activity": lambda r, cap: None if pd.isna(r.disk_read_MB) else r.disk_read_MB <= 0.1 * r.served_MB,
}


def _truth(v):
    return None if v is None else bool(v)


def observations(path: Path | None = None) -> dict:
    path = path or Path(__file__).resolve().parents[2] / "data" / "seed" / "observations.json"
    return json.loads(Path(path).read_text())


def judge(rows: pd.DataFrame, capacity_MBps: float) -> pd.DataFrame:
    """Per hypothesis: each check of the seed's observations met or not, and whether all are.

    `rows`: one per hypothesis with name, single_MBps, single_cpu (busiest server process during
    one pull, % of a core), top_MBps (aggregate at the highest parallel count), disk_read_MB and
    served_MB (over its pulls), failures.
    """
    out = rows.copy()
    for check, test in CHECKS.items():     # True / False, or None where the lab did not measure it
        out[check] = pd.Series([_truth(test(r, capacity_MBps)) for r in rows.itertuples()], index=rows.index,
                               dtype=object)
    out["fits_all"] = [all(v is True for v in row) for row in out[list(CHECKS)].values]
    return out
