"""Known faults injected into a running lab, and taken out again: the ground truth a verdict is tested on.

    with inject(lab, set=["links.nginx=800mbit"]):            # any setting, as `labkit survey --set`
        survey = run_survey(lab)
    with inject(lab, sysctl=[("compute", "net.ipv4.tcp_rmem", "4096 8192 16384")]):   # one node only
        ...
    with inject(lab, kill=["docker-proxy"]):                   # every process of a program, SIGKILL
        ...

Everything is checked before anything changes (a bad setting, node or program names itself).
On the way out the lab gets its settings back, each sysctl its old value, and killed programs
are restarted (heal), even when the body raised.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass

import psutil

from ..config.overrides import apply_overrides
from ..errors import LabError, SettingsError
from .host import netns


@dataclass(frozen=True)
class Injection:
    """A fault as data: settings overrides, per-node sysctls, programs to kill."""
    set: tuple[str, ...] = ()
    sysctl: tuple[tuple[str, str, str], ...] = ()
    kill: tuple[str, ...] = ()

    def __str__(self) -> str:
        parts = [*self.set, *(f"{node}: {key}={value}" for node, key, value in self.sysctl),
                 *(f"kill {p}" for p in self.kill)]
        return ", ".join(parts) or "nothing"


def services_of(lab, program: str) -> list[str]:
    """The lab's services running `program` (a service name, or a program with one service per port)."""
    names = [n for n in lab.services if n == program or n.startswith(program + "@")]
    if not names:
        raise SettingsError(f"kill {program!r}: the lab runs {', '.join(lab.services)}")
    return names


def _kill(lab, name: str, timeout: float = 5.0) -> None:
    """SIGKILL every process of service `name` (its own pids), and wait until they are gone."""
    procs = lab.services[name].processes()
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            os.kill(p.pid, signal.SIGKILL)
    gone, alive = psutil.wait_procs(procs, timeout=timeout)
    if alive:
        raise LabError(f"kill {name}: pids {[p.pid for p in alive]} still running after {timeout:.0f}s")
    end = time.monotonic() + timeout
    while lab.services[name].alive() and time.monotonic() < end:   # the lab reaps its child
        time.sleep(0.02)


@contextlib.contextmanager
def inject(lab, set: list[str] | tuple[str, ...] = (), sysctl=(), kill=(), injection: Injection | None = None):
    """Apply a fault to the running `lab` for the body of the `with`; everything is put back afterwards."""
    if injection is not None:
        set, sysctl, kill = injection.set, injection.sysctl, injection.kill
    base = lab.settings
    new = apply_overrides(base, list(set))
    if new != base:
        lab.check(new)                        # refused here (nothing applied) when the lab cannot do it
    nodes = {n.name for n in lab.path.nodes}
    for node, key, _ in sysctl:
        if node not in nodes:
            raise SettingsError(f"sysctl on {node!r}: nodes are {', '.join(sorted(nodes))}")
        if not lab.plan.namespaced:
            raise SettingsError(f"sysctl {key} on {node}: needs the lab's namespaces (root)")
    victims = [name for prog in kill for name in services_of(lab, prog)]
    old: list[tuple[str, str, str]] = []
    try:
        if new != base:
            lab.apply(new)
        for node, key, value in sysctl:
            ns = lab.plan.ns(node)
            old.append((ns, key, netns.read_sysctl(ns, key)))
            netns.sysctl(ns, key, value)
        for name in victims:
            _kill(lab, name)
        yield lab
    finally:
        for ns, key, value in reversed(old):
            netns.sysctl(ns, key, value)
        if victims:
            lab.heal()
        if lab.settings != base:
            lab.apply(base)
