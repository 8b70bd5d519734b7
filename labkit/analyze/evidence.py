"""What a survey measured, gathered per stage of the declared path (pure: tables in, views out).

For each stage that carries the image under the survey's settings, in byte order: the pulls at
its vantage point (median and spread), the iperf3 capacity of the hop that bounds it, the CPU of
its programs as a share of what they may use (their cgroup quota / cpuset when the settings
limit them, else one core per process), the tcp_info of every connection during those pulls
(medians over the runs), disk throughput when the survey has it, and failures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ..path import CLIENT, ServingPath, Stage
from .noise import Rate
from ..config.settings import LabSettings


@dataclass
class StageView:
    stage: Stage
    pull: Rate | None
    hop: Rate | None
    failures: int = 0
    error: str = ""
    cpu: dict[str, float] = field(default_factory=dict)          # program -> share of its allowance it wanted
    cpu_text: dict[str, str] = field(default_factory=dict)       # program -> how that share was read
    tcp: dict[tuple[str, str], dict] = field(default_factory=dict)
    parallel: Rate | None = None
    parallel_n: int = 0
    disk: dict[str, tuple[float, str]] = field(default_factory=dict)   # disk stage -> (MB/s it moved, text)
    client: tuple[float, str] = (0.0, "")                       # the pulling client here: share wanted, text
    others: dict[str, tuple[float, str]] = field(default_factory=dict)   # other stages' programs during these pulls
    limited: dict[str, float] = field(default_factory=dict)     # its programs under a quota or cpuset: share of it

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def busiest(self) -> tuple[str, float]:
        return max(self.cpu.items(), key=lambda kv: kv[1], default=("", 0.0))


@dataclass
class PathView:
    path: ServingPath                       # the path the survey was measured on
    stages: list[StageView]                 # carrying and measured, in byte order
    idle: list[Stage]                       # stages that carry no image under these settings
    hops: dict[str, Rate]
    judged: int                             # the parallel count compared across stages
    down: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    flows: dict[str, tuple[str, ...]] = field(default_factory=dict)   # connections that are one TCP flow (DNAT)
    detail: pd.DataFrame | None = None      # the survey's detail rows (per run), for what spans the stages

    @property
    def final(self) -> StageView:
        return self.stages[-1]

    def stage(self, name: str) -> StageView | None:
        return next((s for s in self.stages if s.name == name), None)


def _row(df: pd.DataFrame, kind: str, point: str, parallel: int | None = None):
    rows = df[(df.kind == kind) & (df.point == point)]
    if parallel is not None:
        rows = rows[rows.parallel == parallel]
    return rows.iloc[0] if len(rows) else None


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def allowance(settings, program: str, path: ServingPath) -> tuple[float | None, str]:
    """Cores `program` may use under `settings` (None: no limit) and how that was read: the
    settings.cpu entries of its key in `path` (docker-compose's cpus: and cpuset:)."""
    key = path.cpu_key(program)
    if settings is None or key is None:
        return None, ""
    quota, cpuset = settings.cpu.cpus(key), settings.cpu.cpuset(key)
    limits = []
    if quota:
        limits.append((float(quota), f"cpu.{key}_cpus={quota}"))
    if cpuset:
        limits.append((float(_cpus_in(cpuset)), f"cpu.{key}_cpuset={cpuset}"))
    return min(limits) if limits else (None, "")


def _cpus_in(cpuset: str) -> int:
    """How many CPUs a cpuset list names ("0", "0-1", "0,2-3")."""
    n = 0
    for part in cpuset.split(","):
        a, _, b = part.partition("-")
        n += int(b or a) - int(a) + 1
    return n


def cpu_shares(cpu_rows: pd.DataFrame, programs: tuple[str, ...], settings, path: ServingPath) -> tuple[dict, dict]:
    """Each program's CPU as a share of what it may use: the busiest process of one core, or all of
    them of the program's quota; with a note of the numbers behind it."""
    shares, texts = {}, {}
    for prog in programs:
        rows = cpu_rows[(cpu_rows.name == prog) | cpu_rows.name.astype(str).str.startswith(prog + "@")]
        if rows.empty:
            continue
        cols = [c for c in ("cpu_max_proc", "cpu_total", "wait_max_proc", "cpu_sched") if c in rows]
        med = rows.groupby("name")[cols].median()
        one, total = float(med.cpu_max_proc.max()), float(med.cpu_total.max())
        if "cpu_sched" in med and not pd.isna(med.cpu_sched.max()):
            total = max(total, float(med.cpu_sched.max()))       # the scheduler's exact account
        wait = float(med.wait_max_proc.max()) if "wait_max_proc" in med and not pd.isna(med.wait_max_proc.max()) else 0.0
        cores, how = allowance(settings, prog, path)
        share = (one + wait) / 100          # what it ran plus what it waited for a CPU: what it wanted
        text = f"{prog} ran {one:.0f}% of a core" + (f" and waited for a CPU {wait:.0f}% more" if wait >= 5 else "")
        if cores:
            share = max(share, total / (100 * cores))
            text = f"{prog} at {total:.0f}% of a core, {100 * total / (100 * cores):.0f}% of its {cores:g} CPU ({how})"
        shares[prog], texts[prog] = share, text
    return shares, texts


def tcp_state(tcp_rows: pd.DataFrame) -> dict[tuple[str, str], dict]:
    """(connection, side) -> the median of each tcp_info number over the runs."""
    out = {}
    for (conn, side), rows in tcp_rows.groupby(["name", "side"]):
        nums = rows.drop(columns=["point", "parallel", "run", "source", "name", "side"], errors="ignore")
        med = nums.apply(pd.to_numeric, errors="coerce").median(numeric_only=True)
        out[(conn, side)] = {k: v for k, v in med.items() if not pd.isna(v)}
    return out


def path_view(table: pd.DataFrame, path: ServingPath, detail: pd.DataFrame | None = None, settings=None,
              meta: dict | None = None, judge: int | None = None) -> PathView:
    """The survey's numbers per carrying stage of `path` (the path it was measured on).
    `judge`: the parallel count to compare (default 1)."""
    pulls = table[table.kind == "pull"] if "kind" in table else table.iloc[0:0]
    counts = sorted(int(n) for n in pulls.parallel.unique()) if len(pulls) else [1]
    judged = judge or (1 if 1 in counts else counts[0])
    higher = [n for n in counts if n > judged]
    carrying = path.carrying(settings) if settings is not None else list(path.stages)
    measured = set(pulls.point)
    idle = [s for s in path.stages if s.name not in {c.name for c in carrying}]
    hops = {h.name: r for h in path.hops if (r := Rate.of(_row(table, "iperf3", h.name))) is not None}
    detail = detail if detail is not None and len(detail) else pd.DataFrame(
        columns=["point", "parallel", "run", "source", "name", "side"])
    views = []
    for st in carrying:
        if st.vantage not in measured:
            continue
        row = _row(pulls, "pull", st.vantage, judged)
        if row is None:
            continue
        here = detail[(detail.point == st.vantage) & (detail.parallel == judged)]
        cpu, text = cpu_shares(here[here.source == "cpu"], st.programs, settings, path)
        client = cpu_shares(here[here.source == "cpu"], (CLIENT,), settings, path)
        progs = tuple(p for s in carrying if s is not st for p in s.programs if p != CLIENT)
        oth, oth_text = cpu_shares(here[here.source == "cpu"], progs, settings, path)
        par = _row(pulls, "pull", st.vantage, higher[-1]) if higher else None
        disk = disk_rates(row, st, carrying, (meta or {}).get("image_bytes"), settings, path)
        views.append(StageView(st, Rate.of(row), hops.get(st.hop), int(_num(row.get("failures")) or 0),
                               str(row.get("error") or "") if _num(row.get("failures")) else "",
                               cpu, text, tcp_state(here[here.source == "tcp"]),
                               Rate.of(par), higher[-1] if par is not None else 0, disk,
                               (client[0].get(CLIENT, 0.0), client[1].get(CLIENT, "")),
                               {p: (oth[p], oth_text[p]) for p in oth}))
        views[-1].limited = {p: share for p, share in cpu.items() if allowance(settings, p, path)[0]}
        if CLIENT in st.programs and "client_cpu" in row and _num(row["client_cpu"]) is not None:
            views[-1].cpu.setdefault(CLIENT, _num(row["client_cpu"]) / 100)
            views[-1].cpu_text.setdefault(CLIENT, f"the client at {_num(row['client_cpu']):.0f}% of a core")
    # a stage these settings took off the path is worth a note; one off by default (TLS not enabled) is not
    notes = [f"{s.name} carries no image under these settings ({', '.join(s.idle_when)}): left out" for s in idle
             if s.carries(LabSettings())]
    return PathView(path, views, idle, hops, judged, dict((meta or {}).get("down") or {}), notes, table,
                    path.flows(settings) if settings is not None else {}, detail)


def disk_rates(row, stage: Stage, carrying: list[Stage], image_bytes: int | None, settings,
               path: ServingPath) -> dict:
    """The disk stages of `stage` and the MB/s each moved during its pulls (the device's counters).

    A disk stage names its stage; the image read belongs to whichever carrying stage reads the
    file (the first: uwsgi, or nginx with X-Accel-Redirect). MB/s = the MB counted per pull over
    the pull's time, so a disk that moved the whole image runs at the pull's own rate.
    """
    rate, out = _num(row.get("MBps")), {}
    for d in path.disk_stages:
        owner = d.stage or carrying[0].name
        mb = _num(row.get(d.column))
        if owner != stage.name or mb is None or not rate or (settings is not None and not d.carries(settings)):
            continue
        per_pull = (image_bytes or 0) / 1e6 * int(_num(row.get("parallel")) or 1)
        mbps = mb / per_pull * rate if per_pull else rate
        out[d.name] = (mbps, f"{d.name}: {mb:.0f} MB on the disk's device counters per pull"
                             + (f" of {per_pull:.0f} MB ({mbps:.0f} MB/s)" if per_pull else ""))
    return out


def disk_evidence(df: pd.DataFrame, path: ServingPath) -> list[str]:
    """One line per disk stage the survey counted: the MB its disk moved during the client's pulls."""
    point = path.client_vantage.name
    pulls = df[(df.kind == "pull") & (df.point == point)] if "kind" in df else df.iloc[0:0]
    out = []
    for d in path.disk_stages:
        if d.column not in pulls or pulls[d.column].isna().all():
            continue
        per = ", ".join(f"{r[d.column]:.0f} MB with {int(r.parallel)} pull(s)" for _, r in pulls.iterrows()
                        if pd.notna(r[d.column]))
        out.append(f"{d.name}, {d.adds}: {per} at {point}, from the disk's device counters")
    return out


def tcp_text(conn: str, side: str, t: dict) -> str:
    """One connection's tcp_info as the verdict cites it."""
    if side == "receiver":
        buf = f"receive buffer {t['rcvbuf'] / 1024:.0f} KiB" if t.get("rcvbuf") else "receive buffer ?"
        return f"{conn} receiver: {buf}, {t.get('fill_pct', 0):.0f}% full (median)"
    return (f"{conn} sender: busy {t.get('busy_pct', 0):.0f}% of the time, rwnd-limited {t.get('rwnd_pct', 0):.0f}%, "
            f"sndbuf-limited {t.get('sndbuf_pct', 0):.0f}%, waiting on the application {t.get('app_pct', 0):.0f}%; "
            f"delivery rate {t.get('delivery_MBps', 0):.0f} MB/s, cwnd {t.get('cwnd', 0):.0f}, "
            f"{t.get('retrans', 0):.0f} retransmits")
