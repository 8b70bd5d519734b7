"""Shared CPU (pure): when the path's programs together fill the machine's CPUs, and what each costs per byte.

On a machine with few cores the client, nginx, docker-proxy and uwsgi run side by side: each is
partly busy and partly waiting for a CPU, and which of them looks "pegged" in one run follows the
noise. What does not follow the noise is what each program spends per byte it moves, its
CPU-seconds per GB. So when the programs' CPU time and run-queue waits together reach the
machine's cores, the machine is the constraint, and the program that costs the most per byte is
what binds on a machine like this. A client that needs more CPU per byte than the server's
programs together is the lab's own limit: in a real deployment the client has its own node.

Two programs' costs are compared run by run (both were measured during the same pulls, so a slow
moment of the machine falls on both): one is costlier when the median of its per-run ratio to
the other is at least 1 + FLOOR. Otherwise the runs allow both answers, and both are named.

    shared = shared_cpu(detail, "full path", 1, {"nginx": ["nginx", "full path"], "client": ["full path"]},
                        survey.path, settings, cpus=2)
    shared.saturated, shared.costliest, shared.rival, shared.client_limit, shared.client_close
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..path import CLIENT, ServingPath
from ..records import cost
from .evidence import allowance
from .noise import FLOOR, Rate, straddles

SATURATED = 0.85     # the programs' CPU time plus their run-queue waits, as a share of all cores, that fills the machine:
                     # on 2 cores the scheduler already makes them wait on each other there
WAITED = 25.0        # % of one core the path's programs together waited for a CPU: with the whole machine busy past
                     # SATURATED (their kernel work, softirq, and anything else running), they could not get one


def cpu_seconds_per_gb(program: str, cpu_seconds: float, nbytes: float, path: ServingPath) -> float:
    """CPU-seconds `program` spends per GB it moves, as labkit.records.cost computes it for pull rows."""
    c = cost.per_gb({program: cpu_seconds}, nbytes, path).get(cost.column(program))
    return float("nan") if c is None else c


def run_cost(row, path: ServingPath) -> float:
    """One program's cost per GB in one run of pulls (a detail row with its `program`): its exact
    CPU-seconds over the bytes pulled; in surveys recorded before those were kept, its CPU share over
    the pull's MB/s."""
    secs, nbytes, mbps = _num(row, "cpu_s"), _num(row, "pulled_bytes"), _num(row, "MBps")
    if secs is not None and nbytes:
        return cpu_seconds_per_gb(row["program"], secs, nbytes, path)
    return cpu_seconds_per_gb(row["program"], row["ran"] / 100, mbps * 1e6, path) if mbps else float("nan")


def _num(row, key: str) -> float | None:
    v = pd.to_numeric(row.get(key), errors="coerce")
    return None if v is None or pd.isna(v) else float(v)


def cost_text(c: Rate) -> str:
    """'1.7 CPU-s per GB, 1.5–1.9 over 6 runs': no parentheses, it sits inside other sentences."""
    spread = f", {c.lo:.1f}–{c.hi:.1f} over {c.runs} runs" if c.runs > 1 and c.hi > c.lo else ""
    return f"{c.median:.1f} CPU-s per GB{spread}"


def ratio_text(r: Rate, what: str) -> str:
    """'1.8 times docker-proxy's, 1.6–2.1 run by run over 6 runs'."""
    return f"{r.median:.1f} times {what}, {r.lo:.1f}–{r.hi:.1f} run by run over {r.runs} runs"


@dataclass
class ProgramCpu:
    name: str
    ran: float                 # % of one core it ran at the judged vantage (median over the runs)
    waited: float              # % of one core it waited for a CPU there (0 under a quota: that wait is the quota's)
    cost: Rate                 # CPU-seconds per GB over every run whose pulls cross it
    limited: str = ""          # the quota or cpuset that limits it, if any

    def text(self) -> str:
        wait = f" and waited {self.waited:.0f}% more" if self.waited >= 5 else ""
        return f"{self.name} ran {self.ran:.0f}% of a core{wait}, {cost_text(self.cost)}"


@dataclass
class SharedCpu:
    cpus: int
    point: str                 # the vantage point the demand was read at (the client's)
    demand: Rate               # the programs' CPU plus waits there, % of one core, per run
    ran: float                 # their CPU alone, % of one core (median)
    programs: list[ProgramCpu]                 # costliest per byte first
    ratios: dict[tuple[str, str], Rate] = field(default_factory=dict)   # (a, b) -> a's cost over b's, run by run
    machine_busy: float | None = None          # the whole machine, % of one core (other work included)

    @property
    def waited(self) -> float:
        """% of one core the path's programs together waited for a CPU (median run)."""
        return max(0.0, self.demand.median - self.ran)

    @property
    def line(self) -> float:
        """Where the machine counts as full: SATURATED of its cores, in % of one core."""
        return SATURATED * 100 * self.cpus

    @property
    def near_full(self) -> bool:
        """The runs' demand straddles the line: some runs below it, some at or above (noise.straddles). The
        verdict then reads the machine as full whichever side the median fell, and says it was near."""
        return straddles(self.demand, self.line)

    @property
    def wanted_all(self) -> bool:
        """The programs' CPU plus their run-queue waits reach SATURATED of the machine's cores, in the median
        run or in some of the runs (near_full: the same reading on either side of the line)."""
        return self.demand.median >= self.line or self.near_full

    @property
    def saturated(self) -> bool:
        """The programs wanted most of the cores; or the whole machine was that busy (their softirq and
        kernel work count there, not in their own time) while they waited for a CPU."""
        return self.wanted_all or (self.machine_busy is not None and self.machine_busy >= SATURATED * 100 * self.cpus
                                   and self.waited >= WAITED)

    def full_text(self) -> str:
        """Why the machine counts as full, in a few words."""
        if self.near_full:
            d = self.demand
            return (f"the path's programs wanted {d.lo:.0f}-{d.hi:.0f}% of the {self.cpus} CPUs' {100 * self.cpus}% "
                    f"over {d.runs} runs, around the line at {self.line:.0f}%")
        if self.wanted_all or self.machine_busy is None:
            return f"the path's programs wanted {self.demand.median:.0f}% of the {self.cpus} CPUs' {100 * self.cpus}%"
        return (f"the machine was {self.machine_busy:.0f}% busy of its {100 * self.cpus}% while the path's programs "
                f"waited for a CPU {self.waited:.0f}% of a core")

    def near_text(self) -> str:
        """'near full: 161-186% of 200% over 10 runs, the line at 170%'."""
        d = self.demand
        return (f"near full: {d.lo:.0f}-{d.hi:.0f}% of {100 * self.cpus}% over {d.runs} runs, "
                f"the line at {self.line:.0f}% (SATURATED): the runs fall on both sides of it")

    @property
    def server(self) -> list[ProgramCpu]:
        return [p for p in self.programs if p.name != CLIENT]

    @property
    def client(self) -> ProgramCpu | None:
        return next((p for p in self.programs if p.name == CLIENT), None)

    @property
    def costliest(self) -> ProgramCpu | None:
        return self.server[0] if self.server else None

    def ratio(self, a: str, b: str) -> Rate | None:
        return self.ratios.get((a, b))

    @property
    def rival(self) -> ProgramCpu | None:
        """The next server program, when the runs cannot tell its cost per byte from the costliest's."""
        s = self.server
        if len(s) < 2:
            return None
        r = self.ratio(s[0].name, s[1].name)
        return s[1] if r is None or r.median < 1 + FLOOR else None

    @property
    def server_cost(self) -> float:
        return sum(p.cost.median for p in self.server)

    @property
    def client_ratio(self) -> Rate | None:
        """The client's CPU per byte over the server's programs' together, run by run."""
        return self.ratio(CLIENT, "server")

    @property
    def client_limit(self) -> bool:
        """The client needs as much CPU per byte as the server's programs together, or more: the lab's own limit
        (when the two are within the noise of each other, the server's costliest is the second answer)."""
        r = self.client_ratio
        return bool(r and r.median > 1 / (1 + FLOOR))

    @property
    def client_close(self) -> bool:
        """The client's cost and the server's together are within the noise of each other: both readings stand."""
        r = self.client_ratio
        return bool(r and 1 / (1 + FLOOR) < r.median < 1 + FLOOR)

    def demand_text(self) -> str:
        other = (f"; the whole machine was {self.machine_busy:.0f}% busy, so other work took about "
                 f"{max(0.0, self.machine_busy - self.ran):.0f}%" if self.machine_busy is not None else "")
        spread = f", {self.demand.lo:.0f}–{self.demand.hi:.0f}% over {self.demand.runs} runs" if self.demand.runs > 1 else ""
        return (f"at {self.point} the path's programs ran {self.ran:.0f}% of a core and waited for a CPU "
                f"{max(0.0, self.demand.median - self.ran):.0f}% more: together they wanted {self.demand.median:.0f}%"
                f"{spread}, against the {100 * self.cpus}% of the machine's {self.cpus} CPUs{other}")

    def ceilings_text(self) -> str:
        """What the costs mean with the client elsewhere, as in a real deployment: per core, and on all cores."""
        top, total = self.costliest, self.server_cost
        if top is None or not top.cost.median or not total:
            return ""
        return (f"with the client on its own node, {top.name} carries about {1000 / top.cost.median:.0f} MB/s per core "
                f"it can use, and the server's programs together, {total:.1f} CPU-s per GB, about "
                f"{1000 * self.cpus / total:.0f} MB/s on {self.cpus} CPUs like these")


def _program(name: str) -> str:
    return str(name).split("@")[0]


def _run_rows(detail: pd.DataFrame, parallel: int, settings, path: ServingPath) -> pd.DataFrame:
    """One row per (point, run, program): CPU ran and waited (% of a core) and its cost per GB."""
    rows = detail[(detail.source == "cpu") & (detail.parallel == parallel)].copy()
    if rows.empty:
        return rows
    rows["program"] = rows.name.map(_program)
    nums = rows[[c for c in ("cpu_sched", "cpu_total") if c in rows]].apply(pd.to_numeric, errors="coerce")
    rows["ran"] = nums.bfill(axis=1).iloc[:, 0].fillna(0.0)       # the scheduler's exact account where there is one
    waits = rows[[c for c in ("wait_total", "wait_max_proc") if c in rows]].apply(pd.to_numeric, errors="coerce")
    rows["wait"] = waits.bfill(axis=1).iloc[:, 0].fillna(0.0) if len(waits.columns) else 0.0   # every thread's, where kept
    agg = {"ran": ("ran", "sum"), "wait": ("wait", "sum"), "MBps": ("MBps", "first")}
    agg |= {c: (c, "sum" if c == "cpu_s" else "first") for c in ("cpu_s", "pulled_bytes") if c in rows}
    out = rows.groupby(["point", "run", "program"], sort=False).agg(**agg).reset_index()
    out["cost"] = [run_cost(r, path) for _, r in out.iterrows()]
    quota = {p: bool(allowance(settings, p, path)[0]) for p in out.program.unique()}
    out.loc[out.program.map(quota), "wait"] = 0.0     # a throttled group waits for its quota, not for the machine
    return out


def _rate(values) -> Rate | None:
    return Rate.of_runs([x for x in values if not pd.isna(x)])


def shared_cpu(detail: pd.DataFrame | None, point: str, parallel: int, crossing: dict[str, list[str]],
               path: ServingPath, settings=None, cpus: int | None = None) -> SharedCpu | None:
    """The path's programs' CPU during `parallel` pulls, against the machine's `cpus`.

    `detail`: a survey's detail rows (per run: each program's CPU and run-queue wait, the pull's
    MB/s and, where recorded, CPU-seconds and bytes). `point`: where the demand is read (the
    client's vantage). `crossing`: each program of the carrying stages (CLIENT included) and the
    vantage points whose pulls cross it (its cost per byte is pooled over their runs). `path`: the path
    the survey was measured on (its CPU limits, its programs' cost columns). None when
    there are no CPU rows or the machine's CPU count is unknown.
    """
    if detail is None or not len(detail) or not cpus or "source" not in detail:
        return None
    runs = _run_rows(detail, parallel, settings, path)
    if runs.empty:
        return None
    runs = runs[[p in crossing and pt in crossing[p] for p, pt in zip(runs.program, runs.point)]]
    here = runs[runs.point == point]
    if here.empty:
        return None
    progs = []
    for prog in crossing:
        mine = runs[runs.program == prog]
        cost = _rate(mine.cost)
        if cost is None:
            continue
        at = here[here.program == prog]
        progs.append(ProgramCpu(prog, float(at.ran.median()) if len(at) else 0.0,
                                float(at.wait.median()) if len(at) else 0.0, cost,
                                allowance(settings, prog, path)[1] if settings is not None else ""))
    if not progs:
        return None
    progs.sort(key=lambda p: -p.cost.median)
    per_run = here.groupby("run").agg(ran=("ran", "sum"), wait=("wait", "sum"))
    demand = _rate(per_run.ran + per_run.wait)
    cost = runs.pivot_table(index=["point", "run"], columns="program", values="cost", aggfunc="first")
    ratios = {}
    server = [p.name for p in progs if p.name != CLIENT]
    for a, b in zip(server, server[1:2]):
        if a in cost and b in cost and (r := _rate(cost[a] / cost[b])):
            ratios[(a, b)] = r
    if CLIENT in cost and server:
        at = cost.loc[point] if point in cost.index.get_level_values(0) else None
        if at is not None and (r := _rate(at[CLIENT] / at[[s for s in server if s in at]].sum(axis=1, min_count=1))):
            ratios[(CLIENT, "server")] = r
    machine = detail[(detail.point == point) & (detail.parallel == parallel) & (detail.source == "machine")]
    busy = float(pd.to_numeric(machine.cpu_total, errors="coerce").median()) if len(machine) else None
    return SharedCpu(int(cpus), point, demand, float(per_run.ran.median()), progs, ratios, busy)
