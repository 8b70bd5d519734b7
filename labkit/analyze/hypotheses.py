"""Candidate explanations of the seed's slow pulls, and which of them fit everything the seed observed.

Each hypothesis is a change to the 2018-10 settings that makes one suspected cause real in the
lab. Its signature (one pull's MB/s, the server's CPU, the aggregate with N pulls, disk bytes,
failures) is measured by the workflow and judged here against the seed's observations
(data/seed/observations.json), with the lab's own link capacity standing in for the seed's 6 Gbit.
Pure: rows in, a judged table out.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from ..config.overrides import apply_overrides
from ..config.presets import preset
from ..config.settings import dirty_bound

SEED_LINK = "6gbit"        # the seed's hypervisor uplink
DEADLINE_S = 900           # each pull of a hypothesis may run this long: a timeout then, its bytes counted


MiB = 2**20
MIN_IMAGE_MIB = 16     # below this a pull's fixed costs (connections, the manifest, a client's start-up) weigh
BOUND_SHARE = 4        # an image 4x a dirty bound: at least 3/4 of it written at the destination's own pace
MIN_SECONDS = 1.0      # a destination that binds at once: at least this long at its ceiling


@dataclass(frozen=True)
class Hypothesis:
    name: str
    explains: str
    overrides: tuple[str, ...]
    fix: str
    base: str = "sregistry-2018-10"
    min_mib: int = 1               # a floor the settings cannot tell (an emulated core needs CFS periods)
    # the preset in force when the seed's many-pull number was measured, where it differs from `base` and
    # the server's CPU binds: the lab's 2 cores cannot show 8 vCPUs adding up, so its N pulls' cost per
    # byte is carried there (labkit.analyze.scale.predict) under these settings
    many_base: str = ""

    def settings(self, *extra: str, base: str = ""):
        """The lab's settings that make it real: its base preset (or `base`), its overrides, then `extra`
        (the seed's link)."""
        return apply_overrides(preset(base or self.base), [*self.overrides, *extra])

    def many_settings(self):
        """The settings its many-pull observation is held against: `many_base` with its overrides (or its own)."""
        return self.settings(base=self.many_base)

    @property
    def min_image_mib(self) -> int:
        """The smallest image that can show it, derived from its own settings: a write ceiling shows
        only past the dirty pages its disk may hold (BOUND_SHARE x that bound); a shared file system
        binds from the first request, so MIN_SECONDS at its ceiling; else MIN_IMAGE_MIB; never below
        its own `min_mib`."""
        return max(self.min_mib, min_image_mib(self.settings()))


def min_image_mib(s) -> int:
    """The smallest image (MiB) a pull under settings `s` needs for its slow destination or disk to show."""
    need = float(MIN_IMAGE_MIB)
    c, st = s.client, s.storage
    if c.dest == "local-disk" and c.write_mbps:
        need = max(need, BOUND_SHARE * dirty_bound(c.write_mbps * 1e6, c.dirty_mib) / MiB)
    spools = s.nginx.uwsgi_buffering and s.app.serve_mode not in ("accel", "nginx-alias")
    if st.disk == "loop" and st.write_mbps and spools:
        need = max(need, BOUND_SHARE * dirty_bound(st.write_mbps * 1e6, st.dirty_mib) / MiB)
    if c.dest == "shared-fs":
        req = c.fs_request_kib * 1024
        one = req / (c.fs_delay_ms / 1000 + req / (c.fs_node_mbps * 1e6))
        need = max(need, MIN_SECONDS * one / MiB)
    return int(math.ceil(need))


# the seed's client writing to a shared file system; the VM's disk a loop device so its reads are counted
SHARED_FS = ("client.kind=singularity-2.6", "client.dest=shared-fs", "storage.disk=loop")
HYPOTHESES = (
    Hypothesis("docker-proxy on the path (iptables off)",
               "every byte crosses docker-proxy, a user-space copy. Docker does this only with "
               "`\"iptables\": false`: with its default rules a compute node's pull is DNATed by the kernel "
               "whatever userland-proxy says (docker/libnetwork 02d0f9d6 portmapper/mapper.go MapRange, "
               "iptables/iptables.go ProgramChain)", ("publish.iptables=false",),
               "Docker's default `\"iptables\": true` (the kernel forwards the published port)"),
    Hypothesis("too few uwsgi workers", "uwsgi 1 process x 1 thread (before d037140): pulls queue behind one worker",
               (), "more processes/threads, or X-Accel-Redirect so a worker is free after the headers",
               base="sregistry-2018-early"),
    Hypothesis("Django iterates the file", "no wsgi.file_wrapper: Django reads and writes 4 KiB blocks in Python",
               ("app.serve_mode=fileresponse-iter",), "keep uwsgi's file wrapper (sendfile), or X-Accel-Redirect"),
    Hypothesis("cold reads on a slow disk", "the image is read from a networked disk (qcow2 on GPFS): "
               "every read request waits", ("storage.disk=loop", "storage.cache=cold", "storage.latency_ms=2"),
               "a warm page cache (RAM for the images), a faster disk, or larger read-ahead"),
    Hypothesis("nginx spools to a slow layer", "nginx buffers every pull into temp files on the container's "
               "own (slow) layer, past the 8 MiB of dirty pages it may hold",
               ("storage.disk=loop", "storage.write_mbps=40", "storage.dirty_mib=8"),
               "uwsgi_buffering off, or X-Accel-Redirect (no temp files)"),
    Hypothesis("slow client disk", "the compute node writes the image to a slow local disk, past the 8 MiB of "
               "dirty pages it may hold (a node whose page cache is full)",
               ("client.dest=local-disk", "client.write_mbps=40", "client.dirty_mib=8"),
               "a faster destination (local SSD, tmpfs)"),
    Hypothesis("Singularity 2.6 writes to a shared file system",
               "singularity pull writes 1 MiB at a time into its pull folder on NFS/GPFS: each 128 KiB write "
               "request waits 2 ms for the server, one stream at a time; pulls on a node overlap (2 ms and "
               "128 KiB are assumed, not measured: the seed names no file system)",
               (*SHARED_FS, "client.fs_delay_ms=2", "client.fs_request_kib=128", "client.fs_node_mbps=1000"),
               "pull to local disk or tmpfs (SINGULARITY_CACHEDIR / SINGULARITY_PULLFOLDER) and copy once, "
               "or larger write requests (wsize)"),
    Hypothesis("Singularity 2.6 on a node's narrow share of the file system",
               "the same, where each compute node's link to the file system carries 40 MB/s: one pull is "
               "slow and pulls on one node share it (only pulls from many nodes add up; 40 MB/s assumed)",
               (*SHARED_FS, "client.fs_delay_ms=0.5", "client.fs_request_kib=1024", "client.fs_node_mbps=40"),
               "a faster link from the compute nodes to the file system, or a local destination"),
    # sregistry's https setup (its docs recommend it) on the seed's Opteron 6174: OpenSSL without AES-NI,
    # PCLMULQDQ, SSSE3 runs AES-256-GCM in its table code at a published ~54 cycles per byte (40.8 MB/s
    # per 2.2 GHz core, labkit.config.cpu_models); one connection is one nginx worker on one core. From
    # 32 MiB: a pull at ~35 MB/s spans ten CFS periods (100 ms) of the emulated core.
    Hypothesis("TLS in software on the Opteron", "nginx encrypts every byte with AES-256-GCM in OpenSSL's "
               "table code (no AES-NI on an Opteron 6174): one pull = one worker = one slow core",
               # the VM's disk a loop device so its reads are counted (the seed saw no disk activity)
               ("cpu.model=opteron-6174", "storage.disk=loop"), "AES-128-GCM first in ssl_ciphers, or plain http on the cluster "
               "network; worker_processes auto for many pulls (benchmarks/bench_tls.py measures each)",
               base="sregistry-2018-10-https", min_mib=32, many_base="seed-poster-https"),
)

IDLE_MACHINE_PCT = 20      # "almost nothing": under 20% of the machine's CPU (fewer than two of its 8 vCPUs busy)
CHECKS = {
    "one_pull_far_below_the_link": lambda r, cap: r.single_MBps <= 0.2 * cap,
    # measured, or carried to the seed's 8 vCPUs under the settings then in force where the server's CPU binds
    "many_pulls_add_up": lambda r, cap: many_MBps(r) >= 4 * r.single_MBps,
    # the seed's "almost nothing" is dstat's whole machine (8 vCPUs): one busy vCPU shows as 12.5%, two as 25%
    "server_idle_for_one_pull": lambda r, cap: r.single_machine_pct < IDLE_MACHINE_PCT,
    "no_disk_activity": lambda r, cap: None if pd.isna(r.disk_read_MB) else r.disk_read_MB <= 0.1 * r.served_MB,
}


def many_MBps(r) -> float:
    """A row's many-pull aggregate as judged: its prediction on the seed's machine where it has one, else measured."""
    seed = getattr(r, "top_seed_MBps", None)
    return r.top_MBps if pd.isna(seed) else seed


def _truth(v):
    return None if v is None else bool(v)


def observations(path: Path | None = None) -> dict:
    path = path or Path(__file__).resolve().parents[2] / "data" / "seed" / "observations.json"
    return json.loads(Path(path).read_text())


def judge(rows: pd.DataFrame, capacity_MBps: float) -> pd.DataFrame:
    """Per hypothesis: each check of the seed's observations met or not, and whether all are.

    `rows`: one per hypothesis with name, single_MBps, single_machine_pct (the whole machine's CPU
    during one pull as dstat on the seed's 8 vCPUs shows it: labkit.analyze.scale.machine_view),
    top_MBps (aggregate at the highest parallel count), top_seed_MBps (where a hypothesis has
    `many_base`: that count predicted on the seed's 8 vCPUs; judged instead of top_MBps), disk_read_MB
    and served_MB (over its pulls), failures.
    """
    out = rows.copy()
    for check, test in CHECKS.items():     # True / False, or None where the lab did not measure it
        out[check] = pd.Series([_truth(test(r, capacity_MBps)) for r in rows.itertuples()], index=rows.index,
                               dtype=object)
    out["fits_all"] = [all(v is True for v in row) for row in out[list(CHECKS)].values]
    return out
