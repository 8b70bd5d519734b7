"""What changing a running lab's settings takes: a pure function of (old, new, what this machine offers).

    plan_changes(old, new, HostFeatures(...)) -> Changes(groups, steps, problems)

Steps are done in the order given: kernel sysctls, link shaping, the publish mode, uwsgi
(restarted: it reads its ini at start), nginx (reloaded gracefully). A change with problems
is refused before anything is touched.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config.settings import LabSettings
from ..path import Plan, plan

# what each settings group's change takes (nginx's server block follows the serve mode: X-Accel's location)
STEP_FOR_GROUP = {"kernel": ("kernel",), "links": ("links",), "publish": ("publish",), "uwsgi": ("uwsgi",),
                  "app": ("uwsgi", "nginx"), "nginx": ("nginx",), "storage": ("storage",), "cpu": ("cpu",),
                  "client": ("client",), "tls": ("nginx",), "registry": ("distribution",),
                  "machine": ()}     # the time-dilated model is set when the lab starts (refused live below)
STEP_ORDER = ("storage", "kernel", "links", "publish", "uwsgi", "distribution", "nginx", "cpu", "client")


@dataclass(frozen=True)
class HostFeatures:
    """What this machine offers a live change (cgroups' own offer is labkit.lab.host.cgroups.Features)."""
    namespaced: bool
    congestion_controls: tuple[str, ...]
    nft: bool


@dataclass(frozen=True)
class Changes:
    groups: tuple[str, ...]      # the settings groups that differ
    steps: tuple[str, ...]       # what to do, in order
    problems: tuple[str, ...]    # why it cannot be done here (empty: it can)


def plan_changes(old: LabSettings, new: LabSettings, feats: HostFeatures) -> Changes:
    groups = tuple(g for g in LabSettings.model_fields if getattr(old, g) != getattr(new, g))
    problems = []
    if not feats.namespaced:
        for g, why in (("kernel", "per-namespace TCP settings"), ("links", "link rates (tc)")):
            if g in groups:
                problems.append(f"{g}: {why} need network namespaces (root); this lab runs on loopback")
    cc = new.kernel.congestion_control
    if cc and cc not in feats.congestion_controls:
        problems.append(f"kernel.congestion_control: {cc!r} is not available in this kernel "
                        f"(available: {', '.join(feats.congestion_controls)})")
    problems += publish_problems(new, feats)
    if new.publish.host_port != old.publish.host_port:
        problems.append("publish.host_port is set when the lab starts; bring it up again to change it")
    if "machine" in groups:
        problems.append("machine.* (the server's vCPUs, the time dilation k) is set when the lab starts; "
                        "bring it up again to change it")
    if new.registry.kind != old.registry.kind:
        problems.append("registry.kind is set when the lab starts (it chooses the path); bring it up again to change it")
    wanted = {step for g in groups for step in STEP_FOR_GROUP[g]}
    if (old.tls.enabled, old.tls.port) != (new.tls.enabled, new.tls.port):
        wanted.add("publish")           # Docker publishes nginx's https port instead of its http one, or back
    if old.client.model_dump(exclude={"kind", "command"}) == new.client.model_dump(exclude={"kind", "command"}):
        wanted.discard("client")        # another kind of client needs nothing of the running lab
    return Changes(groups, tuple(s for s in STEP_ORDER if s in wanted), tuple(problems))


def publish_problems(s: LabSettings, feats: HostFeatures) -> list[str]:
    """What this machine cannot do of `s.publish` (the path's own objections: ServingPath.problems)."""
    out = []
    if s.publish.iptables and feats.namespaced and not feats.nft:
        out.append("publish.iptables: Docker's rules need nftables (`nft`): run `make setup`, "
                   "or publish.iptables = false (docker-proxy carries every pull)")
    if not feats.namespaced and not s.publish.userland_proxy:
        out.append("publish.userland_proxy: false needs network namespaces (root) for Docker's DNAT; "
                   "this lab runs on loopback")
    return out


def replanned(p: Plan, s: LabSettings) -> Plan | None:
    """The plan under `s` when TLS is turned on or off or its port moved (Docker then publishes nginx's
    https port, or its http one again); None when the plan stays as it is."""
    new = plan(p.lab, p.namespaced, s.publish.host_port, p.path, tls_port=s.tls.port if s.tls.enabled else None)
    return None if new == p else new
