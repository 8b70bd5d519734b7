"""Docker's published-port rules (`"iptables": true`) as one nftables table: rules, not a process."""
from __future__ import annotations

import re
import subprocess

from ...config.render import PublishedRule, render_nat
from ...config.settings import LabSettings
from ...errors import ServiceError
from ...path import Published
from ..host import netns
from ..host.tools import tool
from .base import Site
from .publish import binding_ip, bridge_of, lab_accepts


class DockerNat:
    """Docker's rules for published ports (`"iptables": true`) as one nftables table in the host node's
    namespace (config/templates/nat.nft.j2): DNAT in prerouting and output, the forward filter with
    policy drop, masquerade; conntrack tracks every flow. The kernel forwards: no process copies.
    Docker's hairpin mode (`userland-proxy: false`) also DNATs 127.0.0.1 and hairpin, with
    route_localnet on the bridge as drivers/bridge/setup_ipv4.go setupLoopbackAddressesRouting sets it.
    `spec`: the published ports of one host node (one table holds them all).
    """
    TABLE = "servelab_docker"

    def __init__(self, site: Site, spec: tuple[Published, ...], settings: LabSettings):
        p = site.plan
        self.name, self.node, self.site = "docker-nat", spec[0].node, site
        self.bridge = bridge_of(p.path, spec[0].container)
        host_ip = binding_ip(p, self.node, settings.publish.ip)
        self.rules = [PublishedRule(p.port(pb.host_port), p.ip(pb.container), p.port(pb.container_port),
                                    None if host_ip == "0.0.0.0" else host_ip) for pb in spec]
        self.hairpin = not settings.publish.userland_proxy
        self.lab_accepts = lab_accepts(p, self.bridge)
        self.ns = p.ns(self.node)
        self.file = site.run_dir / "docker-nat.nft"
        self.pid = None

    @classmethod
    def publishing(cls, site: Site, published: tuple[Published, ...], settings: LabSettings) -> list:
        """One table per host node that publishes ports, with `iptables` on (in namespaces only)."""
        if not (settings.publish.iptables and site.plan.namespaced):
            return []
        nodes = sorted({pb.node for pb in published})
        return [cls(site, tuple(pb for pb in published if pb.node == n), settings) for n in nodes]

    def render(self) -> str:
        return render_nat(self.TABLE, self.bridge.name, self.bridge.subnet, self.rules, self.hairpin, self.lab_accepts)

    def counters(self) -> dict[str, int]:
        """Packets through the table's DNAT rules and forward accepts so far ("dnat", "forward")."""
        res = subprocess.run([*netns.exec_prefix(self.ns), tool("nft"), "list", "table", "ip", self.TABLE],
                             capture_output=True, text=True)
        return nat_counters(res.stdout)

    def start(self) -> None:
        self.file.write_text(self.render())
        netns.sysctl(self.ns, f"net.ipv4.conf.{self.bridge.name}.route_localnet", "1" if self.hairpin else "0")
        netns.sh(tool("nft"), "-f", str(self.file), ns=self.ns)

    def wait_ready(self, timeout: float = 0) -> None:
        if not self.alive():
            raise ServiceError(f"nft table {self.TABLE} is not in {self.ns} after loading {self.file}")

    def stop(self) -> None:
        netns.sh(tool("nft"), "delete", "table", "ip", self.TABLE, ns=self.ns, check=False)
        netns.sh("sysctl", "-q", "-w", f"net.ipv4.conf.{self.bridge.name}.route_localnet=0", ns=self.ns, check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def alive(self) -> bool:
        res = subprocess.run([*netns.exec_prefix(self.ns), tool("nft"), "list", "table", "ip", self.TABLE],
                             capture_output=True)
        return res.returncode == 0

    def status(self) -> str:
        return "ok" if self.alive() else f"nft table {self.TABLE} is missing from {self.ns}"

    def processes(self) -> list:
        return []

    def orphans(self) -> list[int]:
        return []

    def incidents(self, peek: bool = False) -> list[str]:
        return []



def nat_counters(listing: str) -> dict[str, int]:
    """Packets counted by `nft list table` output's DNAT rules and forward accepts of published ports."""
    out = {"dnat": 0, "forward": 0}
    for line in listing.splitlines():
        m = re.search(r"counter packets (\d+) bytes \d+ (dnat|accept)", line)
        if m and (m.group(2) == "dnat" or "dport" in line):
            out["dnat" if m.group(2) == "dnat" else "forward"] += int(m.group(1))
    return out
