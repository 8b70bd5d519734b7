"""The lab's CPU cost per byte carried to the operator's machine: how fast one pull and N pulls can go there.

    s = scale(survey, cores=8, model="opteron-6174", pulls=40)
    s.one_MBps, s.one_by          # one pull's ceiling and the program whose cost sets it
    s.many_MBps, s.many_by        # N pulls' ceiling and what sets it (a program, or the whole machine)
    s.table                       # per program: cost here and there, and the ceilings it allows
    machine_cpu(costs, MBps, cores)   # the share of all cores busy at that rate (dstat's whole-machine view)
    placed(detail, "nginx", point, 2)  # per run: how many of its processes the 2 pulls' work actually went to

A program's cost (CPU-seconds per GB moved, labkit.records.cost) was measured on this machine's cores. On
the model's cores it is that times the ratio the lab emulated the model with (the survey's meta: the code
path its TLS suite runs, this machine's speed on it against the model's published one). Then:
- one pull is one connection: one nginx worker, one uwsgi thread, one docker-proxy goroutine: each
  program can spend at most one core on it, so one pull goes at most 1/cost of the costliest program;
- N pulls spread over a program's processes (nginx: min(workers, N, cores); uwsgi: min(processes x
  threads, N, cores); docker-proxy: min(N, cores)), and all programs share the machine's cores: N pulls go
  at most min over programs of (its share of cores / its cost), and cores / (sum of the costs).
  That assumes the connections spread evenly. nginx puts each on the worker whose accept wins: pulls
  started together can land on one worker (measured in this lab). `placed` reads, run by run, over how
  many processes a program's work went (its processes' CPU together over its busiest one's), and
  `scale(..., placed={"nginx": 1})` predicts N pulls as they were placed instead of evenly.
The client runs on the compute nodes, not on this machine: its ceiling is reported apart (at this
machine's speed) and counted in the machine's sum only with `with_client` (the lab itself, where the
client shares the cores). Softirq time overlaps the programs' own (labkit.records.cost) and is left out.
Pure: a survey (or its parts) in, numbers and words out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..path import CLIENT
from ..records import cost


@dataclass
class Scale:
    cores: int
    model: str
    ratio: float
    pulls: int
    one_MBps: float
    one_by: str
    many_MBps: float
    many_by: str
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def machine_pct(self, MBps: float, costs: dict[str, float] | None = None) -> float:
        """The share of the machine's cores busy when pulls go at `MBps` (dstat's whole-machine CPU)."""
        c = costs or dict(zip(self.table.program, self.table.cost_there))
        return machine_cpu(c, MBps, self.cores)

    def __str__(self) -> str:
        return (f"on {self.cores} cores of {self.model} (x{self.ratio:.2f} the lab's CPU per byte): one pull "
                f"{self.one_MBps:.0f} MB/s ({self.one_by}); {self.pulls} pulls {self.many_MBps:.0f} MB/s "
                f"({self.many_by}); the machine {self.machine_pct(self.one_MBps):.0f}% busy for one pull, "
                f"{self.machine_pct(self.many_MBps):.0f}% for {self.pulls}")


def machine_cpu(costs: dict[str, float], MBps: float, cores: int) -> float:
    """Percent of all `cores` busy moving `MBps` with these programs' CPU-seconds per GB (servers only)."""
    return round(100 * sum(costs.values()) * MBps / 1e3 / cores, 1)


def machine_view(row, path, ratio: float = 1.0, vcpus: int = 8) -> dict[str, float]:
    """What dstat on the operator's machine shows while pulls go at a pull row's MB/s: the share of all its
    `vcpus` busy (the seed's "CPU almost nothing" is this), and each server program's % of one core, from
    the row's CPU-seconds per GB times `ratio` (the lab's emulation of that machine's core, lab.cpu.ratio);
    `path`: the path the row was measured on (its programs)."""
    costs = _there(row, path, ratio)
    MBps = float(row["MBps"])
    return {"machine_pct": machine_cpu(costs, MBps, vcpus),
            **{f"{p}_pct_of_a_core": round(100 * c * MBps / 1e3, 1) for p, c in costs.items()}}


def _there(row, path, ratio: float) -> dict[str, float]:
    """A pull row's server programs' CPU-seconds per GB on the emulated CPU (times `ratio`)."""
    return {p: c * ratio for p, c in cost.servers(cost.from_row(row, path)).items()}


def predict(row, path, ratio: float, settings: dict, pulls: int, cores: int) -> tuple[float, str]:
    """`pulls` pulls' ceiling (MB/s, what sets it) on `cores` cores of the CPU the lab emulated at `ratio`,
    under `settings` (as a dict: its worker counts), from a pull row's costs per byte: the lab's 2 cores
    carried to the operator's machine, the connections spread over the workers."""
    v, by, _ = ceiling({p: c for p, c in _there(row, path, ratio).items() if c > 0}, settings, pulls, cores)
    return v, by


def parallelism(program: str, settings: dict, pulls: int, cores: int, placed: dict[str, float] | None = None) -> float:
    """How many cores `program` can spend on `pulls` pulls at once (settings: the survey's, as a dict).
    `placed`: the processes a program's connections were measured on (see `placed`), where not evenly spread."""
    if program == "nginx":
        workers = settings["nginx"]["worker_processes"]
        most = min(cores if workers == "auto" else workers, pulls, cores)
    elif program == "uwsgi":
        most = min(settings["uwsgi"]["processes"] * settings["uwsgi"]["threads"], pulls, cores)
    else:
        most = min(pulls, cores)
    return min(most, max(1.0, (placed or {}).get(program, most)))


def placed(detail: pd.DataFrame, program: str, point: str, parallel: int) -> pd.Series:
    """Per run of a survey's detail: over how many of `program`'s processes its CPU went while `parallel` pulls
    ran at `point`: all its processes' CPU over its busiest one's, rounded (1: every connection on one worker)."""
    rows = detail[(detail.source == "cpu") & (detail.point == point) & (detail.parallel == parallel)
                  & detail.name.astype(str).str.split("@").str[0].eq(program)]
    busiest = pd.to_numeric(rows.cpu_max_proc, errors="coerce")
    total = pd.to_numeric(rows.cpu_total, errors="coerce")
    ok = busiest > 0
    return (total[ok] / busiest[ok]).round().clip(lower=1).groupby(rows.run[ok]).max().astype(int)


def _model_of(meta: dict) -> tuple[str, float, bool]:
    info = meta.get("cpu_model") or {"model": "host"}
    return info.get("model", "host"), float(info.get("ratio", 1.0)), bool(info.get("emulate", False))


def ceiling(costs: dict[str, float], settings: dict, pulls: int, cores: int,
            link_MBps: float | None = None, placed: dict[str, float] | None = None) -> tuple[float, str, dict[str, float]]:
    """(MB/s, what sets it, every limit) for `pulls` pulls at once with these CPU-seconds per GB."""
    limits = {f"{p}'s CPU ({parallelism(p, settings, pulls, cores, placed):g} core(s), {c:.2f} s/GB)":
              parallelism(p, settings, pulls, cores, placed) * 1e3 / c for p, c in costs.items()}
    limits[f"the machine's {cores} core(s) shared by {', '.join(costs)}"] = cores * 1e3 / sum(costs.values())
    if link_MBps:
        limits["the link"] = link_MBps
    by, v = min(limits.items(), key=lambda kv: kv[1])
    return round(v, 1), by, limits


def scale(survey, cores: int = 8, model: str = "opteron-6174", pulls: int | None = None,
          with_client: bool = False, link_MBps: float | None = None, settings=None,
          placed: dict[str, float] | None = None) -> Scale:
    """One pull's and `pulls` pulls' ceilings on `cores` cores of `model`, from a survey's costs per byte.

    The survey must have run with cpu.model = `model` (its OpenSSL code path and the lab's ratio are the
    model's), or both be `host`. `pulls` defaults to the survey's parallel count. `settings` (LabSettings):
    the processes each program has there, if not the survey's (costs measured with 1 nginx worker, say,
    carried to the seed poster's 32). `placed`: the processes each program's N connections went to, where
    measured (see `placed`); by default they spread evenly.
    """
    table, meta, path = survey.table, survey.meta, survey.path
    settings = survey.settings if settings is None else settings.model_dump(mode="json")
    ran_as, ratio, _ = _model_of(meta)
    if model != ran_as:
        raise ValueError(f"scale to {model}: the survey ran with cpu.model {ran_as}; its OpenSSL code path and CPU "
                         f"are not {model}'s. Survey again with --set cpu.model={model}")
    if not 1 <= cores <= 4096:
        raise ValueError(f"cores {cores} is outside 1..4096")
    pulls = pulls or int(meta.get("parallel", 1))
    full = table[(table.kind == "pull") & (table.point == path.client_vantage.name)]
    if full[full.parallel == 1].empty:
        raise ValueError("the survey has no single pull of the whole path: nothing to scale")
    one_row = full[full.parallel == 1].iloc[0]
    many = full[full.parallel > 1]
    costs_one = cost.from_row(one_row, path)
    costs_many = cost.from_row(many.iloc[-1], path) if len(many) else costs_one

    def there(c: dict[str, float]) -> dict[str, float]:
        out = {p: v * ratio for p, v in cost.servers(c).items() if v > 0}
        if with_client and c.get(CLIENT):
            out[CLIENT] = c[CLIENT]            # the lab: the client shares this machine's cores (not scaled)
        return out
    one, one_by, lim1 = ceiling(there(costs_one), settings, 1, cores, link_MBps)
    many_v, many_by, limn = ceiling(there(costs_many), settings, pulls, cores, link_MBps, placed)
    rows = [{"program": p, "cost_here": round(costs_one.get(p, 0.0), 3), "cost_there": round(c, 3),
             "cores_for_1": parallelism(p, settings, 1, cores), "cores_for_N": parallelism(p, settings, pulls, cores, placed)}
            for p, c in there(costs_one).items()]
    notes = [f"CPU per byte measured here x {ratio:.2f} "
             f"({'the ratio the lab emulated ' + model + ' with' if model != 'host' else 'this machine'})",
             "softirq time is left out: on this kernel it overlaps the programs' own (labkit.records.cost)"]
    if pulls > 1 and placed:
        notes.append("N pulls as placed: " + ", ".join(f"{p} on {n:g} process(es)" for p, n in placed.items()))
    elif pulls > 1:
        notes.append("N pulls: a ceiling that assumes nginx spreads the connections over its workers; nginx "
                     "places each connection on the worker whose accept wins (measured in this lab: 2 pulls "
                     "started together both on one of 2 workers, 5 as 3 + 2); scale(..., placed=...) for a placement")
    client = costs_one.get(CLIENT)
    if client and not with_client:
        notes.append(f"the client (on the compute nodes) costs {client:.2f} s/GB on this machine's cores "
                     f"({1e3 / client:.0f} MB/s per client core): not counted on the server")
    return Scale(cores, model, ratio, pulls, one, one_by, many_v, many_by, pd.DataFrame(rows), notes)
