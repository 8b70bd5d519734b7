"""A time-dilated scale model of a server larger than this machine, as settings: pure, no processes.

DieCast (D. Gupta, K. Vishwanath, A. Vahdat, "DieCast: Testing Distributed Systems with an Accurate
Scale Model", NSDI 2008): slow every resource by one factor k and stretch every timeout by k; the
whole system then runs in scaled time, and what is measured is read back by k (rates x k, times / k).

    plan = dilate(settings, Host(cores=2, ratio=2.6))      # ratio: this machine's core / the model's
    plan.settings          # what the lab runs: every rate / k, every delay and timeout x k
    plan.server_cores      # the server's programs together: vcpus / ratio / k of this machine's cores
    plan.core_share        # each emulated core: 1 / ratio / k of one of this machine's cores
    to_real_time(table, k) # a measured table in the seed's time: rates x k, times / k, `k` said

The rules, field by field (RULES; every field of LabSettings is named in one of RULES, KEPT or
TIMES_SECONDS and friends, and tests/unit/test_dilation.py checks that none is missed):
- CPU: the server's programs (nginx, uwsgi, docker-proxy) get `machine.vcpus` emulated cores together,
  each (model speed / this machine's) / k of a core; `cpu.<name>_cpus` (a docker `cpus:` share) / k.
- links: `links.<name>` rate / k. The lab's links add no delay (no setting): nothing to stretch there.
- disk: `storage.read_mbps`, `write_mbps`, `read_iops`, `write_iops` / k; `latency_ms` x k.
- shared fs and the client's disk: `client.fs_node_mbps`, `client.write_mbps` / k; `fs_delay_ms` x k.
- dirty-page bounds: a size, kept; where none is set its default (two seconds at the write ceiling) is
  fixed at k = 1's value, so the bound does not shrink with the ceiling.
- timeouts, x k (rounded up to whole seconds): nginx `keepalive_timeout`, `client_body_timeout`,
  `send_timeout`, `uwsgi_read_timeout`, `uwsgi_send_timeout`, `uwsgi_connect_timeout`, `proxy_read_timeout`, `proxy_send_timeout`,
  `tls.session_timeout`; uwsgi `harakiri` (0, off, stays off), `socket_timeout`, `http_timeout`;
  and the lab's and clients' own (`plan.time(seconds)`: the pull deadline, the clients' idle timeout;
  labkit.measure.pull_at applies it once, through `lab.machine.time`).
- the clients' CPU: each compute node's clients together at CLIENT_NODE_CORES / k (`client_cap`), in a group of
  their own (labkit.lab.conditions.client_cpu); `ClientLoad` says from a measured pull whether they bound.
- kept: sizes (buffers, temp-file limits, TCP windows: a link's bandwidth-delay product is rate / k x
  delay x k, unchanged), counts (workers, threads, connections, max_requests), choices.
NOT dilated (NOT_DILATED, said with every plan): the kernel's own work (softirq, TCP, NAT/conntrack)
runs at this machine's full speed outside any CFS quota, and the kernel's timers (TCP's minimum RTO,
delayed ACKs) are not stretched: where the kernel's share of the CPU is large the model is optimistic
(`kernel_understatement` says by how much from a measured cost per GB).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import SettingsError
from .settings import LabSettings, dirty_bound, parse_settings, rate_bits
from ..units import MiB

HEADROOM = 0.25          # of this machine's cores kept from the server: the clients (their CPU / k) and the
                         # kernel's softirq/TCP/NAT work, which no quota dilates
CLIENT_NODE_CORES = 1.0  # one compute node's client CPU at k = 1: one of this machine's cores (an assumption:
                         # the seed names no compute node CPU); / k in the dilated run

# field -> rule, per settings group ("rate": / k, "time": x k, "keep": unchanged)
RULES: dict[str, dict[str, str]] = {
    "nginx": {"keepalive_timeout": "time", "client_body_timeout": "time", "send_timeout": "time",
              "uwsgi_read_timeout": "time", "uwsgi_send_timeout": "time", "uwsgi_connect_timeout": "time",
              "proxy_read_timeout": "time", "proxy_send_timeout": "time"},
    "tls": {"session_timeout": "time"},
    "uwsgi": {"harakiri": "time", "socket_timeout": "time", "http_timeout": "time"},
    "storage": {"read_mbps": "rate", "write_mbps": "rate", "read_iops": "rate", "write_iops": "rate",
                "latency_ms": "time", "dirty_mib": "keep", "temp_mib": "keep"},
    "client": {"write_mbps": "rate", "fs_node_mbps": "rate", "fs_delay_ms": "time", "dirty_mib": "keep",
               "fs_request_kib": "keep", "fs_keep": "keep"},
    "links": {"*": "rate"},                      # every link's rate
    "cpu": {"*_cpus": "rate", "*_cpuset": "keep", "model": "keep", "model_speed": "keep"},
    "machine": {"vcpus": "keep", "dilation": "keep"},
}
# whole groups or fields kept as they are, and why
KEPT = {
    "nginx": "sizes, counts and switches (buffers, workers, connections, sendfile, aio, logging)",
    "tls": "protocols, ciphers and sizes: the work per byte is the same, its CPU is dilated with the core",
    "uwsgi": "counts and switches (processes, threads, buffer size, max_requests, ignore-*)",
    "app": "the serve mode and its block size: no rate or time",
    "kernel": "TCP buffer sizes: a link's bandwidth-delay product is rate / k x delay x k, unchanged",
    "publish": "how the port is published: no rate or time",
    "storage": "the disk kind and cache",
    "client": "the client's kind, command and destination",
    "registry": "which registry, its image's layer count and config.yml's switches: no rate or time",
}
NOT_DILATED = (
    ("kernel CPU", "the kernel's softirq, TCP and NAT/conntrack work runs at this machine's full speed "
                   "outside every CFS quota: in the dilated run it costs 1 / (ratio x k) of what it cost the "
                   "seed's server, so where the kernel's share of the CPU is large the model is optimistic "
                   "(kernel_understatement, from a measured softirq cost per GB)"),
    ("kernel timers", "TCP's minimum RTO (200 ms), delayed ACK and keepalive timers are not stretched: with "
                      "rates / k they are relatively shorter, so loss recovery looks faster than the seed's"),
    ("CFS granularity", "an emulated core is a CFS quota per 100 ms period; at 1 / (ratio x k) of a core a "
                        "thread runs in bursts of a few ms: short requests see more jitter than on a real slow core"),
    ("link delay", "the lab's links add no delay (no setting): only their rate is dilated"),
    ("nginx's other timers", "client_header_timeout (60 s) and lingering_timeout (5 s) are not settings of the "
                             "lab (nginx/nginx release-1.13.6 src/http/ngx_http_core_module.c lines 3261, "
                             "3612-3613): a pull's request header is one packet and lingering close comes after "
                             "the body, so neither can end a pull"),
    ("clients without timeouts", "Singularity 2.6.1 sets none (data/seed/failure-mechanisms.json: "
                                 "singularity-no-timeout): there is nothing of its own to stretch"),
)


@dataclass(frozen=True)
class Host:
    """This machine as the plan needs it: its cores, and how many times faster one of its cores runs the
    server's code than the CPU model's core (labkit.config.cpu_models.ratio; 1 for `host` or `native`)."""
    cores: int
    ratio: float = 1.0

    def __post_init__(self):
        if self.cores < 1 or not self.ratio >= 1:
            raise SettingsError(f"host facts: {self.cores} cores, speed ratio {self.ratio}: need cores >= 1 "
                                "and a ratio >= 1 (this machine's core / the model's)")


@dataclass(frozen=True)
class Plan:
    k: float
    vcpus: int | None
    core_share: float            # one emulated core, in this machine's cores
    server_cores: float | None   # nginx + uwsgi + docker-proxy together (None: unlimited, the lab's own CPU)
    client_node_cores: float     # each compute node's clients together
    settings: LabSettings        # the dilated settings the lab runs
    changed: dict[str, tuple]    # "group.field" -> (as given, dilated)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def time(self, seconds: float) -> float:
        """A timeout or deadline of the lab or a client (the pull deadline, an idle timeout), stretched."""
        return seconds * self.k


def machine_problems(vcpus: int | None, k: float, host: Host, headroom: float = HEADROOM) -> list[str]:
    """Why this machine cannot give `vcpus` emulated cores at dilation k ([] if it can): they need
    vcpus / ratio / k of its cores, and the server may take at most (1 - headroom) of them, the rest
    being the clients' (their CPU / k) and the kernel's (softirq, TCP, NAT: not dilated)."""
    if vcpus is None:
        return []
    need = vcpus / host.ratio / k
    room = host.cores * (1 - headroom)
    if need <= room + 1e-9:
        return []
    k_min = vcpus / host.ratio / room
    return [f"machine.vcpus: {vcpus} emulated cores at {1 / host.ratio:.2f} of this machine's core each "
            f"(speed ratio {host.ratio:.2f}) need {need:.2f} cores at k = {k:g}; this machine has {host.cores}, "
            f"of which the server may take {room:.2f} ({1 - headroom:.0%}): the rest is the clients' (their "
            f"CPU / k) and the kernel's softirq/TCP/NAT work, which is not dilated. Set machine.dilation to "
            f"at least {math.ceil(k_min * 100) / 100:g}, or fewer vcpus"]


_NGINX_TIME = re.compile(r"^(\d+)([smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _stretch_seconds(v: int | None, k: float) -> int | None:
    return None if v is None else 0 if v == 0 else math.ceil(v * k - 1e-9)


def _stretch_nginx_time(v: str, k: float) -> str:
    n, unit = _NGINX_TIME.match(v).groups()
    return f"{math.ceil(int(n) * _SECONDS[unit] * k - 1e-9)}s"


def _rate_text(bits: float) -> str:
    return f"{bits / 1e6:.6g}mbit"


def dilate(s: LabSettings, host: Host, headroom: float = HEADROOM) -> Plan:
    """The settings the lab runs for `s` at its own `machine.dilation` k (refused, with the reason, when
    this machine cannot give `machine.vcpus` at that k)."""
    k, vcpus = s.machine.dilation, s.machine.vcpus
    if problems := machine_problems(vcpus, k, host, headroom):
        raise SettingsError("; ".join(problems))
    share = 1 / host.ratio / k
    notes = [f"time dilation k = {k:g}: every rate measured is read back x {k:g}, every time / {k:g}"]
    if vcpus is not None:
        notes.append(f"the server: {vcpus} emulated cores of {share:.3f} of this machine's core each, "
                     f"{vcpus * share:.2f} cores together")
    notes += [f"not dilated: {what}: {why}" for what, why in NOT_DILATED]
    server = None if vcpus is None else vcpus * share
    if k == 1:                                       # real time: the settings as given
        return Plan(k, vcpus, share, server, CLIENT_NODE_CORES, s, {}, tuple(notes))
    data = s.model_dump(mode="json")
    changed: dict[str, tuple] = {}

    def put(group: str, name: str, value):
        old = data[group].get(name)
        if value != old:
            changed[f"{group}.{name}"] = (old, value)
            data[group][name] = value

    for group, rules in RULES.items():
        for name, rule in rules.items():
            if "*" in name or rule == "keep":
                continue
            v = data[group].get(name)
            if v is None:
                continue
            if rule == "time":
                put(group, name, _stretch_nginx_time(v, k) if isinstance(v, str) else
                    round(v * k, 6) if isinstance(v, float) else _stretch_seconds(v, k))
            elif isinstance(v, int):                      # IOPS
                put(group, name, max(1, round(v / k)))
            else:
                put(group, name, round(v / k, 6))
    for link, rate in list(data["links"].items()):
        put("links", link, _rate_text(rate_bits(rate) / k))
    for key, v in list(data["cpu"].items()):
        if key.endswith("_cpus") and v is not None:
            put("cpu", key, round(v / k, 4))
    # a dirty-page bound left to its default follows the write ceiling: keep k = 1's bound
    for group in ("storage", "client"):
        if getattr(s, group).write_mbps and data[group].get("dirty_mib") is None:
            put(group, "dirty_mib", dirty_bound(getattr(s, group).write_mbps * 1e6) // MiB)
    return Plan(k, vcpus, share, server, CLIENT_NODE_CORES / k, parse_settings(data), changed, tuple(notes))


CLIENT_BINDS = 0.90     # a node's clients using this share of their CPU cap have none to spare: the line of
                        # labkit.analyze.causes.PEGGED (a program at 90% of its allowance)


def client_cap(s: LabSettings) -> float:
    """Each compute node's clients together, in this machine's cores, in the lab that runs `s`: their share at
    k = 1 (CLIENT_NODE_CORES) / k. The headroom they run in is HEADROOM of the machine, kept from the server."""
    return CLIENT_NODE_CORES / s.machine.dilation


@dataclass(frozen=True)
class ClientLoad:
    """One compute node's clients over a pull, against their CPU cap: whether the client bound, not the server.

    `cpu_s`: CPU its group used over `span_s` seconds (the client programs' start-up included, as their
    wall time is); `periods` / `throttled`: CFS periods and those in which the cap ran out."""
    node: str
    cap: float
    cpu_s: float
    span_s: float
    periods: int = 0
    throttled: int = 0

    @property
    def use(self) -> float:
        """Share of the cap used (0..1, more only by the kernel's rounding)."""
        return self.cpu_s / (self.cap * self.span_s) if self.cap > 0 and self.span_s > 0 else 0.0

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.periods if self.periods else 0.0

    @property
    def binds(self) -> bool:
        return self.use >= CLIENT_BINDS

    def note(self) -> str:
        said = (f"the clients on {self.node} used {self.use:.0%} of their cap of {self.cap:.3g} cores "
                f"(throttled in {self.throttled_share:.0%} of CFS periods)")
        return (f"client binds: {said}: the rate read back is the model's client's, not the server's (a larger "
                "k, or more compute nodes, gives each pull more of its core)" if self.binds else
                f"client has room: {said}")


def clients_fit(plan: Plan, host: Host, nodes: int) -> str:
    """'' when `nodes` compute nodes' clients (each CLIENT_NODE_CORES / k) fit beside the server on this
    machine, else why they may bind (the clients' CPU then sets the rate, not the server)."""
    server = plan.server_cores if plan.server_cores is not None else host.cores * (1 - HEADROOM)
    need, room = nodes * plan.client_node_cores, max(0.0, host.cores - server)
    if need <= room + 1e-9:
        return ""
    return (f"{nodes} compute nodes' clients at {plan.client_node_cores:.2f} of a core each need {need:.2f} "
            f"cores beside the server's {server:.2f}; this machine has {host.cores}: the clients may bind "
            f"(their CPU busy near their share says so), a larger k makes room")


# --- reading a dilated run back into the seed's time ----------------------------------------------------
RATE_SUFFIXES = ("MBps", "_MBps", "MBps_lo", "MBps_hi", "Mbps", "_mbit", "Gbit", "_gbit")   # per second: x k
TIME_SUFFIXES = ("_s", "_ms", "seconds", "ttfb_ms")                                          # durations: / k
KEEP_SUFFIXES = ("_MB", "_MiB", "bytes", "failures", "parallel", "pulls", "nodes", "cpu_s_per_GB", "_count",
                 "retransmits", "image_mib", "min_image_mib", "runs", "spread_pct", "k")
NAMED = {"per_pull_min": "rate", "per_pull_max": "rate"}        # a survey's slowest and fastest pull, MB/s
# CPU percentages are refused without a rule: a share of this machine's core grows x k (the same work in 1/k
# of the time on a core k times smaller), a share of the emulated machine's cores does not: say which


def rate_back(x: float, k: float) -> float:
    return x * k


def time_back(t: float, k: float) -> float:
    return t / k


def column_rule(name: str) -> str | None:
    """'rate', 'time' or 'keep' for a measured table's column by its name; None when the name says nothing.
    CPU-seconds per GB are kept (the same work per byte at any k); a CPU percentage has no rule by name."""
    if name in NAMED:
        return NAMED[name]
    if any(name.endswith(sfx) or name.startswith("cpu_s_per_GB") for sfx in KEEP_SUFFIXES):
        return "keep"
    if any(name.endswith(sfx) for sfx in TIME_SUFFIXES):
        return "time"
    if any(name.endswith(sfx) for sfx in RATE_SUFFIXES):
        return "rate"
    return None


def _back(value, rule: str, k: float):
    return value * k if rule == "rate" else value / k if rule == "time" else value


def _refuse(where: str, unknown: list[str]) -> None:
    if unknown:
        raise SettingsError(f"{where}: no rule for column(s) {', '.join(unknown)}: say 'rate' (x k), "
                            "'time' (/ k) or 'keep' in rules")


def to_real_time(table, k: float, rules: dict[str, str] | None = None):
    """A measured table (pandas) in the seed's real time: rate columns x k, time columns / k, the rest as
    they are, and a `k` column saying so. Every numeric column must have a rule (by its name, or in
    `rules`): one that has none is refused by name, so nothing is read back unconverted by mistake."""
    import pandas as pd
    out = table.copy()
    unknown = []
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]) or pd.api.types.is_bool_dtype(out[col]):
            continue
        rule = (rules or {}).get(col) or column_rule(str(col))
        if rule is None:
            unknown.append(str(col))
        else:
            out[col] = _back(out[col], rule, k)
    _refuse("to_real_time", unknown)
    out["k"] = k
    return out


def row_to_real_time(row: dict, k: float, rules: dict[str, str] | None = None) -> dict:
    """One measured row (a dict) in real time by the same rules as `to_real_time`, with its `k`."""
    out, unknown = {}, []
    for col, v in row.items():
        rule = None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            rule = (rules or {}).get(col) or column_rule(str(col))
            if rule is None:
                unknown.append(str(col))
        out[col] = round(_back(v, rule, k), 4) if rule in ("rate", "time") and k != 1 else v
    _refuse("row_to_real_time", unknown)
    return {**out, "k": k}


def kernel_understatement(softirq_s_per_GB: float, server_s_per_GB: float, ratio: float, k: float) -> float:
    """How much of the seed's server CPU per byte the model leaves out, as a share: the kernel's work
    (softirq, TCP, NAT) cost the seed ratio x `softirq_s_per_GB` (on its slow cores) but costs the dilated
    run `softirq_s_per_GB` / k in real-time terms. `server_s_per_GB`: the server's programs' cost on the
    model's cores (dilated with them). 0 when the kernel does nothing."""
    seed_kernel = softirq_s_per_GB * ratio
    seed_total = seed_kernel + server_s_per_GB
    if seed_total <= 0:
        return 0.0
    return (seed_kernel - softirq_s_per_GB / k) / seed_total
