"""CPU cost per byte: each program's CPU-seconds per GB moved, from the CPU sampled during a pull.

A column of the pull rows (labkit.measure computes it as it computes MB/s; labkit.analyze reads it),
so it lives with the records both read.

    per_gb({"nginx": 0.9, "uwsgi": 0.01, "client": 0.3}, bytes_moved=2e9)
        -> {"cpu_s_per_GB_nginx": 0.45, "cpu_s_per_GB_uwsgi": 0.005, "cpu_s_per_GB_client": 0.15, ...}

A program's cost is the CPU time all its processes (every thread, from the scheduler's own
account) used while the pulls ran, over the bytes the pulls moved (10^9 bytes a GB). It does not
depend on how fast the pulls went, so it carries from the lab to another machine (scaled by that
machine's speed per core: labkit.analyze.scale).

The programs are the ones the path names in its stages (uwsgi, nginx, docker-proxy, the client),
plus SOFTIRQ: the kernel's softirq time over every CPU of this machine (/proc/stat's seventh
column). That one is machine-wide (other traffic on the host counts too) and tick-sampled; on a
kernel without CONFIG_IRQ_TIME_ACCOUNTING, softirq work run in a program's own context (the
sender's sendmsg often runs the receive side of a veth pair) is also in that program's time. So
it is shown beside the programs, never added to them.

Pure: numbers in, numbers out.
"""
from __future__ import annotations

import math

from ..path import CLIENT, ServingPath

PREFIX = "cpu_s_per_GB_"
SOFTIRQ = "softirq"      # the kernel's softirq time (machine-wide), not a program of the path
GB = 1e9


def column(program: str) -> str:
    """The row column holding `program`'s CPU-seconds per GB ("docker-proxy" -> cpu_s_per_GB_docker_proxy)."""
    return PREFIX + program.replace("-", "_")


def program_of(service: str) -> str:
    """The program a lab service runs: "docker-proxy@registry" -> "docker-proxy", "nginx" -> "nginx"."""
    return service.split("@", 1)[0]


def programs(path: ServingPath) -> tuple[str, ...]:
    """The programs a pull's bytes cross, in byte order (from the path's stages), then SOFTIRQ."""
    return (*dict.fromkeys(p for st in path.stages for p in st.programs), SOFTIRQ)


def columns(path: ServingPath) -> list[str]:
    return [column(p) for p in programs(path)]


def by_program(service_seconds: dict[str, float]) -> dict[str, float]:
    """CPU-seconds per service summed per program (every docker-proxy together)."""
    out: dict[str, float] = {}
    for svc, s in service_seconds.items():
        out[program_of(svc)] = out.get(program_of(svc), 0.0) + s
    return out


def per_gb(cpu_seconds: dict[str, float | None], bytes_moved: float, path: ServingPath) -> dict[str, float | None]:
    """Each of the path's programs' CPU-seconds per GB moved, as row columns.

    `cpu_seconds`: seconds by program (or by service: docker-proxy@x is summed into docker-proxy),
    CLIENT and SOFTIRQ included where measured. A program not measured (not running, no counter)
    is None; nothing moved gives None everywhere.
    """
    secs = by_program({k: v for k, v in cpu_seconds.items() if v is not None})
    if not bytes_moved or bytes_moved <= 0:
        return {column(p): None for p in programs(path)}
    return {column(p): (round(secs[p] / (bytes_moved / GB), 4) if p in secs else None) for p in programs(path)}


def from_row(row, path: ServingPath) -> dict[str, float]:
    """The measured costs in a table row ({program: s/GB}), leaving out what was not measured."""
    out = {}
    for p in programs(path):
        v = row.get(column(p)) if hasattr(row, "get") else getattr(row, column(p), None)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            out[p] = float(v)
    return out


def servers(costs: dict[str, float]) -> dict[str, float]:
    """The costs of the programs on the registry's machine (not the client, not the machine-wide softirq)."""
    return {p: c for p, c in costs.items() if p not in (CLIENT, SOFTIRQ)}
