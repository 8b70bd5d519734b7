"""The dilation machinery in the real lab (root): the clients' CPU held at 1/k and measured against it, a
PullRun read back in real time; the shared fs from 8 compute nodes, each file verified by a sha256 streamed
as it arrived, no byte kept."""
import pytest

from labkit.config.presets import PRESETS, SREGISTRY_SHIPPED as S
from labkit.lab.conditions.client_cpu import clients_group
from labkit.lab.host import cgroups
from labkit.lab.lab import Lab
from labkit.measure.pull_at import pull_at
from labkit.units import MiB

pytestmark = pytest.mark.integration
NAME = "scalemodel"
NODES = 8


def _quota(*parts: str) -> int:
    return int((cgroups.features().roots["cpu"] / cgroups.TOP / "/".join(parts) / "cpu.cfs_quota_us").read_text())


def test_dilated_clients_are_held_at_their_share_over_k_and_read_back():
    with Lab(f"{NAME}-k2", S.changed(machine={"dilation": 2}), image_size=16 * MiB, quiet=True) as lab:
        assert lab.client.cpu.held and lab.client.cpu.cap == 0.5
        assert _quota(clients_group(lab.name), "compute") == 50_000           # 0.5 of a core per 100 ms
        cap = lab.cpu.model.cap
        assert _quota(lab.name) == round(cap * 100_000)                        # the server's programs' cap
        run = pull_at(lab, parallel=2)
        row = run.row()
        print("k = 2, labkit's client in its node's group:", {c: row[c] for c in (
            "MBps", "ttfb_ms", "client_cpu", "client_cap", "client_cap_use", "client_throttled", "client_binds",
            "kernel_share", "k")}, run.notes())
        assert run.ok and run.k == 2 and row["k"] == 2
        assert row["MBps"] == pytest.approx(round(run.measured_mbps, 1) * 2)
        assert [c.node for c in run.clients] == ["compute"] and run.clients[0].cpu_s > 0   # the child was in it
        assert row["client_cap_use"] is not None and row["kernel_share"] is not None
        assert any(n.startswith(("client binds", "client has room")) for n in run.notes())
        assert _quota(lab.name) == round(cap * 100_000)                        # still capped after the pulls
    assert not (cgroups.features().roots["cpu"] / cgroups.TOP / clients_group(f"{NAME}-k2")).exists()


def test_dilated_oci_pulls_run_in_the_nodes_group_too():
    """Kind `oci` (an OCI registry's own client) on a dilated lab pulls from a child held by the node's group."""
    dist = PRESETS["distribution-2.8"].changed(machine={"dilation": 2}, client={"kind": "oci"})
    with Lab(f"{NAME}-oci", dist, image_size=16 * MiB, quiet=True) as lab:
        assert lab.client.cpu.held
        run = pull_at(lab, parallel=2)
        print("k = 2, kind oci in its node's group:", run.row()["MBps"], run.notes())
        assert run.ok and run.k == 2 and all(r.sha256_ok for r in run.results)
        assert [c.node for c in run.clients] == ["compute"] and run.clients[0].cpu_s > 0   # the child was in it
        assert any(n.startswith(("client binds", "client has room")) for n in run.notes())


def test_the_shared_fs_from_8_nodes_verifies_each_file_as_it_arrives_and_keeps_none():
    s = S.changed(client={"kind": "singularity-2.6", "dest": "shared-fs", "fs_delay_ms": 1, "fs_request_kib": 1024,
                          "fs_node_mbps": 200})
    with Lab(f"{NAME}-sfs", s, image_size=16 * MiB, quiet=True, compute_nodes=NODES) as lab:
        assert not lab.client.keeps
        lab.client.check_room(40, 10**15)          # no room needed: no pull count is ever left out for it
        fuse = {n: ps[0] for n, ps in lab.client.processes().items()}
        before = {n: sum(p.cpu_times()[:2]) for n, p in fuse.items()}
        run = pull_at(lab, parallel=NODES)
        print("shared fs, 8 nodes x 1 pull of 16 MiB:", run.row()["MBps"], "MB/s",
              [round(r.mbps, 1) for r in run.results])
        assert run.ok and len(run.results) == NODES, run.errors
        assert all(r.sha256_ok and r.bytes == 16 * MiB for r in run.results)
        busy = {n for n, p in fuse.items() if sum(p.cpu_times()[:2]) > before[n]}
        assert busy == set(fuse) and len(fuse) == NODES                       # every node wrote to its own mount
        assert not any(f.is_file() for f in lab.client.shared.server.rglob("*"))   # nothing left, nothing kept
        forty = pull_at(lab, parallel=40, verify="sha256")                     # the seed's 40, 5 from each node
        print("shared fs, 40 pulls from 8 nodes:", forty.row()["MBps"], "MB/s, failures", forty.failures)
        assert forty.ok and len(forty.results) == 40 and all(r.sha256_ok for r in forty.results), forty.errors
