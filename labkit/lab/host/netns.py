"""Network namespaces, veth pairs, bridges, routes, tc shaping and sysctls, with iproute2.

Every link the lab makes is created directly inside its namespaces, so deleting
the namespaces removes them all; nothing is added to the host's own namespace.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import uuid
from pathlib import Path

import psutil

from ...errors import NetnsError, ToolMissing
from ...in_netns import exec_prefix
from ..changes import HostFeatures
from .process import terminate
from .tools import tool


def sh(*cmd: str, ns: str | None = None, check: bool = True, timeout: float = 20) -> str:
    """Run a command (inside namespace `ns` if given); return its stdout."""
    argv = [*exec_prefix(ns), *cmd]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode:
        raise NetnsError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def can_use_namespaces() -> bool:
    return os.geteuid() == 0 and os.path.exists("/proc/self/ns/net")


def list_ns(prefix: str = "") -> list[str]:
    out = sh("ip", "-json", "netns", "list", check=False).strip()
    names = [n["name"] for n in json.loads(out)] if out else []
    return sorted(n for n in names if n.startswith(prefix))


def add_ns(name: str) -> None:
    sh("ip", "netns", "add", name)
    sh("ip", "link", "set", "lo", "up", ns=name)


def ns_pids(name: str) -> list[int]:
    return [int(p) for p in sh("ip", "netns", "pids", name, check=False).split()]


def delete_ns(name: str, grace: float = 3.0) -> list[int]:
    """End every process in the namespace (TERM, then KILL, by pid), then delete it. Returns the pids ended."""
    pids = ns_pids(name)
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(pid))
    terminate(procs, grace=grace)
    sh("ip", "netns", "delete", name, check=False)
    return pids


def veth(ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
    """A veth pair with one end in each namespace (created there, never in the host)."""
    tmp = "v" + uuid.uuid4().hex[:12]
    sh("ip", "link", "add", tmp, "type", "veth", "peer", "name", dev_b, "netns", ns_b, ns=ns_a)
    sh("ip", "link", "set", tmp, "name", dev_a, ns=ns_a)


def addr(ns: str, dev: str, cidr: str) -> None:
    sh("ip", "addr", "add", cidr, "dev", dev, ns=ns)
    sh("ip", "link", "set", dev, "up", ns=ns)


def bridge(ns: str, name: str, cidr: str | None) -> None:
    """A bridge, with its own address `cidr` (None: a plain switch, only up)."""
    sh("ip", "link", "add", name, "type", "bridge", ns=ns)
    if cidr:
        addr(ns, name, cidr)
    else:
        sh("ip", "link", "set", name, "up", ns=ns)


def enslave(ns: str, dev: str, bridge_name: str) -> None:
    sh("ip", "link", "set", dev, "master", bridge_name, ns=ns)
    sh("ip", "link", "set", dev, "up", ns=ns)


def route(ns: str, dest: str, via: str) -> None:
    sh("ip", "route", "add", dest, "via", via, ns=ns)


def shape(ns: str, dev: str, rate: str | None) -> None:
    """tc tbf at `rate` on dev's egress, or no shaping when rate is None."""
    sh("tc", "qdisc", "del", "dev", dev, "root", ns=ns, check=False)
    if rate:
        sh("tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate,
           "burst", "1mb", "latency", "50ms", ns=ns)


def sysctl(ns: str | None, key: str, value: str) -> None:
    sh("sysctl", "-q", "-w", f"{key}={value}", ns=ns)


def read_sysctl(ns: str | None, key: str) -> str:
    return sh("sysctl", "-n", key, ns=ns).strip()


def congestion_controls() -> list[str]:
    return Path("/proc/sys/net/ipv4/tcp_available_congestion_control").read_text().split()


def host_features(namespaced: bool) -> HostFeatures:
    """What this machine offers a live change of a lab (in namespaces or not)."""
    try:
        nft = bool(tool("nft"))
    except ToolMissing:
        nft = False
    return HostFeatures(namespaced, tuple(congestion_controls()), nft)


@functools.cache
def kernel_features() -> dict[str, bool]:
    """What this kernel's tc can do, probed in a throw-away namespace."""
    probe = f"slprobe-{os.getpid()}"
    feats = {}
    add_ns(probe)
    try:
        for kind, args in (("tbf", ["rate", "1gbit", "burst", "1mb", "latency", "50ms"]),
                           ("netem", ["delay", "1ms"])):
            ok = subprocess.run([*exec_prefix(probe), "tc", "qdisc", "add", "dev", "lo", "root", kind, *args],
                                capture_output=True).returncode == 0
            feats[kind] = ok
            sh("tc", "qdisc", "del", "dev", "lo", "root", ns=probe, check=False)
    finally:
        delete_ns(probe)
    return feats
