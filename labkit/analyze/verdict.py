"""The path verdict: the constraint that binds, read off a survey (pure: tables in, words out).

    v = verdict(survey)                 # judged on the path the survey carries
    v = verdict(survey.table, path=lab.plan.path)    # a table alone: give its path (fewer clues)
    v.hop, v.cause, v.at_capacity, v.next, v.to_dict()

Only stages that carry the image under the survey's settings count (with X-Accel-Redirect the
nginx→uwsgi hop carries a header). The binding stage is the one after which throughput stops
falling: the first, in byte order, whose pulls are within noise of what the client gets. What
binds in it comes from its evidence (see labkit.analyze.causes). When the client gets, within
noise, the capacity of the slowest hop that carries the image, the path is at capacity and that
hop is named. The next constraint is the lowest other ceiling above the binding one, named when
it is within CLOSE of it. Every line cites its numbers; a difference within the runs' spread is
never a finding.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..path import ServingPath
from .causes import CAUSES, Finding, cpu_lines, own_link_busy, pipeline, stage_cause
from .evidence import PathView, StageView, disk_evidence, path_view
from .noise import Rate, above, reaches, within_noise

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

    def __str__(self) -> str:
        lines = [self.summary, *[f"  - {e}" for e in self.evidence]]
        if self.next:
            lines.append(f"  next: {self.next.hop} ({CAUSES.get(self.next.cause, self.next.cause)}), "
                         + "; ".join(self.next.evidence))
        return "\n".join(lines + [f"  ({n})" for n in self.notes])

    def to_dict(self) -> dict:
        return {"hop": self.hop, "cause": self.cause, "cause_text": CAUSES.get(self.cause, ""),
                "at_capacity": self.at_capacity, "capacity_hop": self.capacity_hop,
                "rate_MBps": self.rate, "summary": self.summary, "evidence": self.evidence,
                "next": self.next.to_dict() if self.next else None, "notes": self.notes}


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
                        "verdict(table, path=lab.plan.path), or verdict(survey)")
    if isinstance(settings, dict):
        from ..config.settings import parse_settings
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
        return _done(view, failed, None, False, "")
    pipe = pipeline(view)
    b = binding(view.stages, pipe)
    b, hop = at_capacity(view, b)
    f = stage_cause(b, view, pipe, at_hop=bool(hop))
    if pipe and not hop:
        f.evidence.append(f"tcp_info of the client's pull {'agrees' if pipe.stage == b.name else 'points at ' + pipe.stage}"
                          f": it backs up at {pipe.what}")
    f.evidence += _flows(b, flows)
    nxt = _next(view, b, f)
    if f.kind == "upstream":           # the stage where throughput fell adds CPU work: it comes next
        nxt = Next(b.name, "cpu", b.pull.median, [f"pulls fall to {b.pull} at {b.stage.vantage}: {cpu_lines(b)[0]}"])
    return _done(view, f, nxt, bool(hop), hop)


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


def _done(view: PathView, f: Finding, nxt: Next | None, at_cap: bool, hop: str) -> Verdict:
    final = view.final.pull
    rates = ", ".join(f"{sv.stage.vantage} {sv.pull}" for sv in view.stages)
    ev = [f"pulls ({view.judged} at a time), in byte order: {rates}"]
    if f.cause == "down":
        where = f"ulls fail at {view.path.stage(f.stage).vantage}"
        summary = f"{f.what}: p{where}." if view.down else f"P{where}."
    elif at_cap:
        cap = next(sv.hop for sv in view.stages if sv.stage.hop == hop)
        summary = (f"At capacity: the client gets {final}, within noise of the {hop} hop's iperf3 {cap}, "
                   f"the slowest hop that carries the image; what binds there: {f.what} ({CAUSES[f.cause]}).")
    else:
        summary = (f"{f.stage} binds: {f.what} ({CAUSES[f.cause]}); the client gets {final}.")
        b = next(sv for sv in view.stages if sv.name == f.stage)
        i = view.stages.index(b)
        if i:
            prev = view.stages[i - 1]
            ev.append(f"throughput falls from {prev.pull} at {prev.stage.vantage} to {b.pull} at "
                      f"{b.stage.vantage} and stops falling there (what follows is within noise of it)")
        elif b.hop:
            ev.append(f"pulls at {b.stage.vantage} already get {b.pull} against the {b.stage.hop} hop's iperf3 {b.hop}")
    ev += f.evidence
    ev += [e for e in disk_evidence(view.table, view.path) if e not in ev] if view.table is not None else []
    last = view.final
    if last.parallel and last.pull and last.pull.median > 0:
        ratio = last.parallel.median / last.pull.median
        ev.append(f"{last.parallel_n} pulls at once at {last.stage.vantage} together get {last.parallel} "
                  f"({ratio:.1f}x one pull)" + (": each connection is limited, not the path" if ratio > 1.5 else ""))
    return Verdict(f.stage, summary, ev, _stage_table(view, f.stage), f.cause, at_cap, hop,
                   final.median if final else None, nxt, view.notes)


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
