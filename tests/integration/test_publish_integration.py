"""Docker's publishing in the real lab: DNAT for a compute node, docker-proxy for the VM's own 127.0.0.1 and iptables off.

Whether docker-proxy carried a pull is read three ways: its CPU (the scheduler's exact account of
every thread), the VM's own TCP counters (a DNATed flow is forwarded, so the VM's sockets see none
of its segments; docker-proxy's sockets are the VM's), and the DNAT rules' packet counters.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from labkit.config.importer import SregistryFiles, import_files
from labkit.config.presets import SREGISTRY_SHIPPED as S
from labkit.lab.host import netns
from labkit.lab.lab import Lab
from labkit.measure.cpu import schedstat
from labkit.measure.pull_at import pull_at
from labkit.path import PROXY

pytestmark = pytest.mark.integration
MiB = 2**20
SIZE = 48 * MiB


@pytest.fixture(scope="module")
def lab():
    with Lab("pub", S, image_size=SIZE, quiet=True) as lab:
        yield lab


def tcp_segments(lab) -> int:
    """Segments in and out of the VM's own TCP sockets so far (/proc/net/snmp inside its namespace)."""
    lines = [x.split() for x in netns.sh("cat", "/proc/net/snmp", ns=lab.plan.ns("vm")).splitlines()
             if x.startswith("Tcp:")]
    row = dict(zip(lines[0][1:], map(int, lines[1][1:])))
    return row["InSegs"] + row["OutSegs"]


def proxy_cpu_s(lab) -> float:
    svc = lab.services.get("docker-proxy@registry")
    return sum(run for run, _ in schedstat(svc.pid).values()) if svc else 0.0


def carried(lab, vantage: str) -> dict:
    """One verified pull from `vantage`, with what docker-proxy and Docker's rules did during it."""
    nat = lab.services.get("docker-nat")
    before = (proxy_cpu_s(lab), tcp_segments(lab), nat.counters()["dnat"] if nat else 0)
    run = pull_at(lab, vantage, verify="sha256")
    after = (proxy_cpu_s(lab), tcp_segments(lab), nat.counters()["dnat"] if nat else 0)
    assert run.ok and run.results[0].sha256_ok, run.errors
    return {"MBps": run.mbps, "proxy_cpu_s": after[0] - before[0], "vm_segments": after[1] - before[1],
            "dnat_packets": after[2] - before[2], "busiest": run.busiest}


def test_an_outside_pull_is_dnated_with_docker_proxy_idle(lab):
    lab.apply(S)
    assert {"docker-nat", "docker-proxy@registry"} <= set(lab.services)
    c = carried(lab, "full path")
    print("outside, iptables on:", c)
    segments_per_image = SIZE / 1448
    assert c["dnat_packets"] >= 2                           # the manifest's connection and the image's
    assert c["vm_segments"] < 0.01 * segments_per_image     # the VM's sockets saw none of it
    assert c["proxy_cpu_s"] < 0.005                         # docker-proxy did nothing
    assert PROXY not in lab.path.programs_at("full path", lab.settings)


def test_the_vms_own_loopback_pull_crosses_docker_proxy(lab):
    lab.apply(S)
    c = carried(lab, "VM loopback")
    print("VM loopback, iptables on:", c)
    assert c["dnat_packets"] == 0
    assert c["vm_segments"] > SIZE / 65536                  # the client's socket and docker-proxy's two
    assert c["proxy_cpu_s"] > 0.005


def test_iptables_off_puts_docker_proxy_on_every_pull(lab, tmp_path: Path):
    """A daemon.json with "iptables": false, imported, runs as the proxy path."""
    (tmp_path / "daemon.json").write_text('{\n  "iptables": false\n}\n')
    imported = import_files(SregistryFiles.in_dir(tmp_path)).settings
    assert imported.publish.iptables is False
    lab.apply(S.changed(publish=imported.publish.model_dump()))
    try:
        assert "docker-nat" not in lab.services
        assert "table ip servelab_docker" not in netns.sh("nft", "list", "ruleset", ns=lab.plan.ns("vm"))
        c = carried(lab, "full path")
        print("outside, iptables off:", c)
        assert c["vm_segments"] > SIZE / 65536 and c["proxy_cpu_s"] > 0.005
        assert PROXY in lab.path.programs_at("full path", lab.settings)
    finally:
        lab.apply(S)


def test_userland_proxy_off_dnats_the_loopback_pull_too(lab):
    lab.apply(S.changed(publish={"userland_proxy": False}))
    try:
        assert not any(n.startswith("docker-proxy") for n in lab.services)
        c = carried(lab, "VM loopback")
        print("VM loopback, userland-proxy off:", c)
        assert c["dnat_packets"] >= 2          # (the VM's TCP counters hold the client's own socket here)
    finally:
        lab.apply(S)
