"""The path verdict: the constraint that binds, read off a survey (pure: tables in, words out).

    v = verdict(survey)                 # judged on the path the survey carries
    v = verdict(survey.table, path=lab.path)    # a table alone: give its path (fewer clues)
    v.hop, v.cause, v.at_capacity, v.next, v.to_dict()

Only stages that carry the image under the survey's settings count (with X-Accel-Redirect the
nginx→uwsgi hop carries a header). The binding stage is the one after which throughput stops
falling: the first, in byte order, whose pulls are within noise of what the client gets. What
binds in it comes from its evidence (see labkit.analyze.causes). When the client gets, within
noise, the capacity of the slowest hop that carries the image, the path is at capacity and that
hop is named. The next constraint is the lowest other ceiling above the binding one, named when
it is within CLOSE of it. Every line cites its numbers; a difference within the runs' spread is
never a finding.

When the stage rules point at a program's CPU or at the client, and the path's programs together
fill the machine's CPUs (labkit.analyze.machine), which program looks pegged in one run follows the
noise: the verdict then says the machine's CPUs are shared, first, and names the program that
costs the most per byte. Where the runs allow two answers, both are given (`alternative`) with
the measurement that would separate them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..path import CLIENT, ServingPath
from .causes import CAUSES, PEGGED, Finding, cpu_lines, own_link_busy, pipeline, small_windows, stage_cause
from .evidence import PathView, StageView, disk_evidence, path_view
from .machine import SharedCpu, cost_text, ratio_text, shared_cpu
from .noise import Rate, above, reaches, within_noise
from .remedies import Remedy, candidates, nothing_to_change
from .words import headline, verdict_text
from ..config import cpu_models
from ..config.settings import parse_settings

CLOSE = 2.0          # a second constraint whose ceiling is within 2x of the binding rate is "next"


@dataclass
class Next:
    hop: str
    cause: str
    ceiling: float
    evidence: list[str]

    def to_dict(self) -> dict:
        return {"hop": self.hop, "cause": self.cause, "ceiling_MBps": round(self.ceiling, 1), "evidence": self.evidence}


@dataclass
class Alternative:
    """A second answer the runs' spread allows, and the measurement that would tell the two apart."""
    hop: str
    cause: str
    why: str
    separate: str

    def to_dict(self) -> dict:
        return {"hop": self.hop, "cause": self.cause, "why": self.why, "separate": self.separate}


SHARED_READINGS = ("cpu", "client", "app")   # stage readings that a full machine makes a matter of noise
SEPARATE = ("more repeats, e.g. --repeats 10, narrow each program's cost per byte; a larger image, e.g. "
            "--image-mib 512, makes each pull long enough that start-up work weighs less")


@dataclass
class Verdict:
    hop: str                      # the binding stage ('' when nothing was measured)
    summary: str
    evidence: list[str]
    stages: pd.DataFrame
    cause: str = ""               # a key of labkit.analyze.causes.CAUSES
    at_capacity: bool = False
    capacity_hop: str = ""        # the iperf3 hop the path runs at, when at capacity
    rate: float | None = None     # what the client gets (median MB/s)
    next: Next | None = None
    notes: list[str] = field(default_factory=list)
    shared: SharedCpu | None = None            # the machine's CPUs, when the path's programs fill them
    alternative: Alternative | None = None     # a second answer inside the runs' spread
    machine_bound: bool = False                # the path's programs fill the machine's CPUs: the shared-CPU verdict
    what: str = ""                             # what binds, in words
    remedies: list[Remedy] = field(default_factory=list)   # what to try (labkit.analyze.remedies), untried
    no_remedy: str = ""                        # why there is nothing to try, when there is not
    program: str = ""                          # on a full machine: the program named for its cost per byte

    def __str__(self) -> str:
        return verdict_text(self)

    def to_dict(self) -> dict:
        sh = self.shared
        return {"hop": self.hop, "cause": self.cause, "cause_text": CAUSES.get(self.cause, ""),
                "at_capacity": self.at_capacity, "capacity_hop": self.capacity_hop,
                "rate_MBps": self.rate, "headline": headline(self), "summary": self.summary,
                "evidence": self.evidence, "next": self.next.to_dict() if self.next else None,
                "alternative": self.alternative.to_dict() if self.alternative else None,
                "remedies": [{"name": r.name, "set": list(r.set), "why": r.why} for r in self.remedies],
                "no_remedy": self.no_remedy,
                "shared_cpu": None if sh is None else {
                    "cpus": sh.cpus, "point": sh.point, "saturated": sh.saturated, "machine_bound": self.machine_bound,
                    "demand_pct": round(sh.demand.median, 1), "ran_pct": round(sh.ran, 1),
                    "machine_busy_pct": sh.machine_busy, "client_limit": sh.client_limit,
                    "programs": [{"program": p.name, "ran_pct": round(p.ran, 1), "waited_pct": round(p.waited, 1),
                                  "cpu_s_per_GB": round(p.cost.median, 3), "cpu_s_per_GB_lo": round(p.cost.lo, 3),
                                  "cpu_s_per_GB_hi": round(p.cost.hi, 3), "runs": p.cost.runs}
                                 for p in sh.programs]},
                "notes": self.notes}


def _inputs(data, settings, detail, meta, path):
    """A Survey (with the path it was measured on), or its table with whatever else the caller has."""
    if isinstance(data, pd.DataFrame):
        table = data
    else:
        table, detail = data.table, detail if detail is not None else data.detail
        settings = settings if settings is not None else data.settings
        meta = meta if meta is not None else data.meta
        path = path if path is not None else data.path
    if path is None:
        raise TypeError("verdict: a survey's table needs the path it was measured on: "
                        "verdict(table, path=lab.path), or verdict(survey)")
    if isinstance(settings, dict):
        settings = parse_settings(settings)
    return table, detail, settings, meta, path


def binding(stages: list[StageView], pipe: Finding | None = None) -> StageView:
    """The first stage, in byte order, whose pulls are not above the client's by more than the noise.

    When the pulls cannot tell it from another stage (every stage between the two is within noise
    of the client's rate) and the kernel's view of the client's pull (`pipe`) points at that other
    stage, that stage is the one: pulls alone would name the first by default.
    """
    final = stages[-1].pull
    b = next(sv for sv in stages if not above(sv.pull, final))
    names = [sv.name for sv in stages]
    if any(share >= PEGGED for share in b.limited.values()):
        return b          # a program at its own quota or cpuset where throughput falls: the kernel's view cannot move it
    if pipe and pipe.stage in names:
        lo, hi = sorted((names.index(b.name), names.index(pipe.stage)))
        if not any(above(sv.pull, final) for sv in stages[lo:hi + 1]):
            return stages[names.index(pipe.stage)]
    return b


def at_capacity(view: PathView, b: StageView) -> tuple[StageView, str]:
    """The stage to name and the hop the path runs at ('' when it is not at capacity).

    Only the hops of the binding stage and those after it count: a hop measured from the client
    (compute→published port→nginx) also crosses the stages after its own, so upstream of the
    binding stage it can be slow for their reasons. The path is at capacity when the client gets,
    within noise, the slowest of them; that hop's stage is named (the binding stage when its own
    hop is that slow). Hops within noise of each other (one measured from the client crosses the
    other's link too) go to the stage whose own link is seen busy in tcp_info, else the binding one.
    """
    final, after = view.final.pull, view.stages[view.stages.index(b):]
    hops = [sv for sv in after if sv.hop]
    if not hops:
        return b, ""
    slowest = min(hops, key=lambda sv: sv.hop.median)
    if not reaches(final, slowest.hop):
        return b, ""
    tied = [sv for sv in hops if within_noise(sv.hop, slowest.hop) and reaches(final, sv.hop)]
    busy = [sv for sv in tied if own_link_busy(sv, view)]
    pick = busy[0] if busy else b if b in tied else tied[0]
    return pick, pick.stage.hop


def verdict(data, settings=None, detail: pd.DataFrame | None = None, meta: dict | None = None,
            flows: list | None = None, judge: int | None = None, path: ServingPath | None = None) -> Verdict:
    """The binding constraint of a survey (a Survey, or its table and `path`, the path it was measured
    on). `flows`: look_inside() results to cite."""
    table, detail, settings, meta, path = _inputs(data, settings, detail, meta, path)
    view = path_view(table, path, detail, settings, meta, judge)
    if not view.stages:
        return Verdict("", "no pulls in this survey: nothing to judge", [], pd.DataFrame(), notes=view.notes)
    if failed := _failure(view):
        return _done(view, failed, None, False, "", settings=settings)
    pipe = pipeline(view)
    b = binding(view.stages, pipe)
    b, hop = at_capacity(view, b)
    f = stage_cause(b, view, pipe, at_hop=bool(hop))
    if pipe and not hop:
        f.evidence.append(f"tcp_info of the client's pull {'agrees' if pipe.stage == b.name else 'points at ' + pipe.stage}"
                          f": it backs up at {pipe.what}")
    f.evidence += _flows(b, flows)
    if f.cause == "app" and (same := _same_client_everywhere(view, b)):
        f = same
    nxt = _next(view, b, f)
    if f.kind == "upstream":           # the stage where throughput fell adds CPU work: it comes next
        nxt = Next(b.name, "cpu", b.pull.median, [f"pulls fall to {b.pull} at {b.stage.vantage}: {cpu_lines(b)[0]}"])
    shared = _shared(view, settings, meta)
    if f.cause in SHARED_READINGS and (w := small_windows(view)):       # windows too small: they cost CPU too
        return _done(view, w, None, False, "", shared, settings=settings)
    if (shared and shared.saturated and f.cause in SHARED_READINGS
            and not any(s >= PEGGED for sv in view.stages for s in sv.limited.values())):
        f, nxt, alt = _machine_finding(view, shared, f)
        return _done(view, f, nxt, False, "", shared, alt, settings)
    return _done(view, f, nxt, bool(hop), hop, shared, settings=settings)


def _same_client_everywhere(view: PathView, b: StageView) -> Finding | None:
    """Nothing falls along the path (the first stage already gets what the client gets), nothing there is
    CPU-bound, and the pulling client is the busiest program at that first vantage point: the same client
    gets the same rate everywhere, so the client's own connection is what binds, the lab's own limit."""
    if b is not view.stages[0] or not b.client[1]:
        return None
    prog, share = b.busiest
    if b.client[0] < share:
        return None
    where = _stage_of(view, CLIENT)
    return Finding(where, "client", "the lab's own client: the same client gets about the same rate at every vantage "
                   "point and is the busiest program there", [
                       f"at {b.stage.vantage}: {b.client[1]}, more than {b.cpu_text.get(prog, 'any program of the stage')}",
                       f"pulls at {b.stage.vantage} already get {b.pull}, within noise of the client's {view.final.pull}"],
                   "lab")


def _shared(view: PathView, settings, meta: dict | None) -> SharedCpu | None:
    """The machine's CPUs during the client's pulls: each program of a carrying stage, costed over the pulls crossing it."""
    crossing: dict[str, list[str]] = {}
    for i, sv in enumerate(view.stages):
        for prog in sv.stage.programs:
            crossing[prog] = [view.final.stage.vantage] if prog == CLIENT else [s.stage.vantage for s in view.stages[i:]]
    cpus = (meta or {}).get("cpus")
    return shared_cpu(view.detail, view.final.stage.vantage, view.judged, crossing, view.path, settings, cpus)


SHARED_LEAD = "The machine's CPUs are full"
SHARED_NEAR = "The machine's CPUs are near full"     # its runs straddle the line (SharedCpu.near_full)


def possessive(name: str) -> str:
    return name + "'s"


def _stage_of(view: PathView, program: str) -> str:
    return next(sv.name for sv in view.stages if program in sv.stage.programs)



def _machine_finding(view: PathView, sh: SharedCpu, stage_reading: Finding) -> tuple[Finding, Next | None, Alternative | None]:
    """What binds when the path's programs fill the machine: the costliest per byte, or the client (the lab's own limit)."""
    ev = [sh.demand_text(), *([sh.near_text()] if sh.near_full else []), *[p.text() for p in sh.programs]]
    top, rival, client = sh.costliest, sh.rival, sh.client
    alt, nxt = None, None
    cr = sh.client_ratio
    if client and cr:
        together = "the CPU per byte of the server's programs together"
        ev.append(f"the client needs {ratio_text(cr, together)}"
                  + (": the lab's own limit, since a real client runs on its own node" if sh.client_limit else ""))
    lead = sh.full_text()
    if sh.client_limit or top is None:
        how = "about as much CPU per byte as" if sh.client_close else "more CPU per byte than"
        f = Finding(_stage_of(view, CLIENT), "client", f"{lead}; the client needs {how} the server's programs "
                    "together: the lab's own limit", ev, "machine")
        if top and sh.client_close:
            alt = Alternative(_stage_of(view, top.name), "cpu", f"on the server, {top.name} costs the most per byte: "
                              f"{cost_text(top.cost)}", SEPARATE + "; a lighter client, e.g. --verify length, "
                              "shows the server's own ceiling")
        elif top:
            nxt = Next(_stage_of(view, top.name), "cpu", 1000 / top.cost.median,
                       [f"on the server, {top.name} costs the most per byte: {cost_text(top.cost)}"])
        return f, nxt, alt
    named = top
    if rival:
        r = sh.ratio(top.name, rival.name)
        first, second = sorted((top, rival), key=lambda p: [sv.name for sv in view.stages].index(_stage_of(view, p.name)))
        named = first                 # the one the other waits on when both cost about the same: upstream in byte order
        ev.append(f"{top.name} and {rival.name} cost about the same per byte: {top.name} "
                  f"{ratio_text(r, possessive(rival.name))}" if r else f"{rival.name}'s cost per byte is within the runs' spread of {top.name}'s")
        alt = Alternative(_stage_of(view, second.name), "cpu", f"{second.name}: {cost_text(second.cost)}", SEPARATE)
    else:
        r = sh.ratio(top.name, sh.server[1].name) if len(sh.server) > 1 else None
        if r:
            ev.append(f"{top.name} costs the most per byte: {ratio_text(r, possessive(sh.server[1].name))}")
    if text := sh.ceilings_text():
        ev.append(text)
    if stage_reading.stage != _stage_of(view, named.name) or stage_reading.cause != "cpu":
        ev.append(f"the rules for one stage alone would name {stage_reading.stage}: {stage_reading.what}; "
                  "on a full machine that pick follows the noise")
    also = f", about as much as {alt.hop}" if alt and alt.cause == "cpu" else ""
    f = Finding(_stage_of(view, named.name), "cpu", f"{lead}; {named.name} costs the most per byte, "
                f"{cost_text(named.cost)}{also}, so {_stage_of(view, named.name)} binds on a machine like this", ev, "machine",
                named.name)
    others = [p for p in sh.server if p is not top and p is not rival]
    if others and others[0].cost.median > 0:
        o = others[0]
        nxt = Next(_stage_of(view, o.name), "cpu", 1000 / o.cost.median, [f"then {o.text()}"])
    return f, nxt, alt


def _failure(view: PathView) -> Finding | None:
    bad = next((sv for sv in view.stages if sv.failures or sv.pull.median <= 0), None)
    if bad is None and not view.down:
        return None
    where = bad or view.final
    ev = [f"pull at {where.stage.vantage}: {where.error or 'no data'} ({where.failures} failed)"] if bad else []
    ev += [f"{svc}: {st}" for svc, st in view.down.items()]
    what = f"{', '.join(view.down)} down" if view.down else "pulls fail"
    return Finding(where.name, "down", what, ev)


def _flows(b: StageView, flows) -> list[str]:
    return [f"capture at {point}: {fv.kind}: {fv.tune}" for point, _, fv in flows or []
            if point in b.stage.capture]


def _next(view: PathView, b: StageView, f: Finding) -> Next | None:
    """The lowest ceiling above the binding rate among the other constraints, if within CLOSE of it."""
    final, idx = view.final.pull, view.stages.index(b)
    cands: list[Next] = []
    if idx > 0 and above(view.stages[idx - 1].pull, b.pull):
        prefix = view.stages[:idx]
        b2 = binding(prefix)
        f2 = stage_cause(b2, PathView(view.path, prefix, view.idle, view.hops, view.judged), None)
        cands.append(Next(b2.name, f2.cause, prefix[-1].pull.median,
                          [f"without {b.name}, pulls at {prefix[-1].stage.vantage} reach {prefix[-1].pull}: "
                           f"{f2.what}"] + f2.evidence[:1]))
    for sv in view.stages[idx + 1:]:      # upstream, the pulls say it; a hop measured from the client crosses b too
        if sv.hop and sv.stage.hop != b.stage.hop and above(sv.hop, final):
            cands.append(Next(sv.name, "link", sv.hop.median, [f"the {sv.stage.hop} hop's iperf3 is {sv.hop}"]))
    for sv in view.stages[idx + 1:]:
        for prog, share in sv.cpu.items():
            if share >= 0.2 and sv.pull:
                cands.append(Next(sv.name, "cpu", sv.pull.median / share,
                                  [f"{sv.cpu_text[prog]} at {sv.pull.median:.0f} MB/s: out of CPU near "
                                   f"{sv.pull.median / share:.0f} MB/s (estimated)"]))
    cands = [c for c in cands if c.ceiling <= CLOSE * final.median and above(Rate(c.ceiling, c.ceiling, c.ceiling), final)]
    return min(cands, key=lambda c: c.ceiling, default=None)


def _done(view: PathView, f: Finding, nxt: Next | None, at_cap: bool, hop: str,
          shared: SharedCpu | None = None, alt: Alternative | None = None, settings=None) -> Verdict:
    final = view.final.pull
    rates = ", ".join(f"{sv.stage.vantage} {sv.pull}" for sv in view.stages)
    ev = [f"pulls, {view.judged} at a time, in byte order: {rates}"]
    if f.kind == "machine":
        lead = SHARED_NEAR if shared is not None and shared.near_full else SHARED_LEAD
        summary = f"{lead}: {f.what}; the client gets {final}."
    elif f.cause == "down":
        where = f"ulls fail at {view.path.stage(f.stage).vantage}"
        summary = f"{f.what}: p{where}." if view.down else f"P{where}."
    elif at_cap:
        cap = next(sv.hop for sv in view.stages if sv.stage.hop == hop)
        summary = (f"At capacity: the client gets {final}, within noise of the {hop} hop's iperf3 {cap}, "
                   f"the slowest hop that carries the image; what binds there: {_what(f)}.")
    else:
        summary = f"{f.stage} binds: {_what(f)}{_in_software(f, settings)}; the client gets {final}."
        b = next(sv for sv in view.stages if sv.name == f.stage)
        i = view.stages.index(b)
        if i and above(view.stages[i - 1].pull, b.pull):
            prev = view.stages[i - 1]
            ev.append(f"throughput falls from {prev.pull} at {prev.stage.vantage} to {b.pull} at "
                      f"{b.stage.vantage} and stops falling there: what follows is within noise of it")
        elif b.hop:
            ev.append(f"pulls at {b.stage.vantage} already get {b.pull} against the {b.stage.hop} hop's iperf3 {b.hop}")
    ev += f.evidence
    if shared and shared.saturated and f.kind != "machine":
        ev.append(f"the machine's CPUs were {'near ' if shared.near_full else ''}full too: {shared.demand_text()}")
    ev += [e for e in disk_evidence(view.table, view.path) if e not in ev] if view.table is not None else []
    last = view.final
    if last.parallel and last.pull and last.pull.median > 0:
        ratio = last.parallel.median / last.pull.median
        ev.append(f"{last.parallel_n} pulls at once at {last.stage.vantage} together get {last.parallel}, "
                  f"{ratio:.1f}x one pull" + (": each connection is limited, not the path" if ratio > 1.5 else ""))
    machine = f.kind == "machine"
    lab_limit = (machine and f.cause == "client") or f.kind == "lab"
    remedies = [] if lab_limit else candidates(f.stage, f.cause, settings, view.path)
    none = NOTHING_LAB if lab_limit else nothing_to_change(f.stage, f.cause, settings, view.path)
    return Verdict(f.stage, summary, ev, _stage_table(view, f.stage), f.cause, at_cap, hop,
                   final.median if final else None, nxt, view.notes, shared, alt, machine,
                   _what(f) + _in_software(f, settings), remedies, none, f.program)


NOTHING_LAB = "nothing on the server to change: a lighter client, e.g. --verify length, shows the server's own ceiling"


SAID = {"link": "link", "cpu": "cpu", "window": "window", "client": "client", "disk": "disk", "down": "down",
        "app": "application"}     # a word that, in what binds, already says the kind of cause


def _in_software(f: Finding, settings) -> str:
    """Where nginx's TLS binds on an emulated CPU model, which model and what it lacks ('' elsewhere)."""
    m = cpu_models.resolve(settings.cpu.model) if settings is not None and f.cause == "cpu" and f.stage == "tls" \
        and settings.tls.enabled else None
    if m is None:
        return ""
    lacks = [x for x in ("aes", "pclmulqdq") if x not in m.features]
    machine = settings.machine
    cores = f", {machine.vcpus} vCPUs" if machine.vcpus else ""
    k = f", time-dilated k = {machine.dilation:g}" if machine.dilation > 1 else ""
    return (f" (TLS in software on {m.name}{cores}{k}"
            + (f": no {' or '.join(x.upper() if x == 'pclmulqdq' else 'AES-NI' for x in lacks)})" if lacks else ")"))


def _what(f: Finding) -> str:
    """What binds, with the kind of cause unless the words already say it."""
    kind = CAUSES.get(f.cause, "")
    return f.what if not kind or SAID.get(f.cause, kind).lower() in f.what.lower() else f"{f.what}, {kind}"


def _stage_table(view: PathView, named: str) -> pd.DataFrame:
    rows, before, before_name = [], None, None
    for sv in view.stages:
        if before is None and sv.hop:
            before, before_name = sv.hop.median, f"iperf3 {sv.stage.hop}"
        prog, share = sv.busiest
        rows.append({"stage": sv.name, "point": sv.stage.vantage, "adds": sv.stage.adds, "before": before_name,
                     "before_MBps": before, "MBps": sv.pull.median, "MBps_lo": sv.pull.lo, "MBps_hi": sv.pull.hi,
                     "runs": sv.pull.runs, "kept": sv.pull.median / before if before else None,
                     "capacity_MBps": sv.hop.median if sv.hop else None, "parallel": sv.parallel_n or None,
                     "parallel_MBps": sv.parallel.median if sv.parallel else None, "failures": sv.failures,
                     "error": sv.error, "busiest": prog, "busiest_cpu": round(100 * share, 1), "binds": sv.name == named})
        before, before_name = sv.pull.median, f"pull at {sv.stage.vantage}"
    return pd.DataFrame(rows)
