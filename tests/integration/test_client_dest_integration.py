"""The seed's client and destination in the real lab: Singularity 2.6's pull, a shared file system per compute node."""
from __future__ import annotations

import statistics
import threading

import pytest

from labkit.config.presets import SREGISTRY_SHIPPED as S
from labkit.lab.lab import Lab
from labkit.lab.conditions.sharedfs import ceiling_MBps
from labkit.clients.kind import Target, Where
from labkit.clients.kinds import client_kind
from labkit.clients.puller import aggregate_mbps
from labkit.measure.pull_at import pull_at

pytestmark = pytest.mark.integration
MiB = 2**20
SIZE = 24 * MiB
NODES = 4


@pytest.fixture(scope="module")
def lab():
    with Lab("sfs", S, image_size=SIZE, quiet=True, compute_nodes=NODES) as lab:
        yield lab


def test_singularity_26_pulls_a_verified_renamed_file_over_http(lab):
    lab.apply(S.changed(client={"kind": "singularity-2.6"}))
    run = pull_at(lab, parallel=2)
    print("singularity-2.6, http, to memory:", run.row())
    assert run.ok and run.client == "singularity-2.6"
    assert all(r.sha256_ok and r.bytes == SIZE for r in run.results)
    assert list(lab.client.dest_root().iterdir()) == []        # its files (and no temporary one) removed


def test_a_shared_fs_caps_one_pull_as_its_delay_and_request_size_predict(lab):
    """labkit's client writing 1 MiB at a time (no program start-up in its time); Singularity 2.6's beside it."""
    s = S.changed(client={"kind": "labkit", "dest": "shared-fs", "fs_delay_ms": 8, "fs_request_kib": 128,
                          "fs_node_mbps": 1000})
    lab.apply(s)
    rates = [pull_at(lab).mbps for _ in range(3)]
    predicted = ceiling_MBps(s.client)
    lab.apply(s.changed(client={"kind": "singularity-2.6"}))
    sing = pull_at(lab)
    print(f"shared-fs 8 ms x 128 KiB: predicted {predicted:.1f} MB/s, measured {[round(r, 1) for r in rates]}; "
          f"singularity-2.6 {sing.mbps:.1f} MB/s (its start-up and manifest included)")
    assert abs(statistics.median(rates) - predicted) <= 0.2 * predicted
    assert sing.ok and sing.results[0].sha256_ok


def _from_every_node(lab, s) -> list:
    """One pull from each compute node at once, each writing to its own node's mount."""
    img, out, threads = lab.image, {}, []
    for node, ns, host, port in lab.plan.compute_endpoints():
        t = Target(ns, host, port, img.uri, img.sha256, img.size)
        threads.append(threading.Thread(target=lambda n=node, t=t: out.__setitem__(
            n, client_kind(s.client).pull(t, Where(lab.client.dest_root(n)), 1, "sha256", deadline=120)[0])))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return list(out.values())


def test_compute_nodes_each_have_their_own_share_and_add_up(lab):
    s = S.changed(client={"kind": "singularity-2.6", "dest": "shared-fs", "fs_delay_ms": 1, "fs_request_kib": 1024,
                          "fs_node_mbps": 20})
    lab.apply(s)
    one = pull_at(lab).mbps
    many = _from_every_node(lab, s)
    assert all(r.ok and r.sha256_ok for r in many), [r.error for r in many]
    together = aggregate_mbps(many)
    print(f"shared-fs 20 MB/s per node: one pull {one:.1f} MB/s (ceiling {ceiling_MBps(s.client):.1f}), "
          f"{NODES} nodes at once {together:.1f} MB/s, each {[round(r.mbps, 1) for r in many]}")
    assert one <= 1.2 * 20
    assert together >= 0.75 * NODES * one
