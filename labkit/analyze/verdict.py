"""Which hop loses the throughput, read off a survey table (pure: a DataFrame in, words out).

The pulls are ordered along the path a byte travels, from uwsgi out to the compute node.
Each stage is compared with the one before it (the first with the network's capacity
into uwsgi, from iperf3): the stage with the largest drop is named, with its numbers and
the busiest process while it ran.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..path import PATH

PEGGED = 90.0          # % of one core: the process has no time to spare
SIGNIFICANT = 0.15     # a drop smaller than this is within run-to-run noise


@dataclass
class Verdict:
    hop: str
    summary: str
    evidence: list[str]
    stages: pd.DataFrame

    def __str__(self) -> str:
        return "\n".join([self.summary, *[f"  - {e}" for e in self.evidence]])


def _value(df: pd.DataFrame, kind: str, point: str, parallel: int = 1) -> pd.Series | None:
    rows = df[(df.kind == kind) & (df.point == point) & (df.parallel == parallel)]
    return rows.iloc[0] if len(rows) else None


def stage_table(df: pd.DataFrame) -> pd.DataFrame:
    pulls = df[df.kind == "pull"]
    n_par = int(pulls.parallel.max()) if len(pulls) else 1
    out, before, before_name = [], None, None
    for stage in PATH.stages:
        point, what, hop = stage.vantage, stage.adds, stage.hop
        single = _value(df, "pull", point)
        if single is None:
            continue
        cap = _value(df, "iperf3", hop)
        if before is None:  # the first stage measured: compare with the network into it
            before, before_name = (cap.MBps, f"iperf3 {hop}") if cap is not None else (None, None)
        par = _value(df, "pull", point, n_par) if n_par > 1 else None
        out.append({"stage": stage.name, "point": point, "adds": what, "before": before_name, "before_MBps": before,
                    "MBps": single.MBps, "kept": (single.MBps / before) if before else None,
                    "capacity_MBps": cap.MBps if cap is not None else None,
                    "parallel": n_par if par is not None else None,
                    "parallel_MBps": par.MBps if par is not None else None,
                    "failures": int(single.failures) + (int(par.failures) if par is not None else 0),
                    "error": single.get("error") or (par.get("error") if par is not None else "") or "",
                    "busiest": single.busiest, "busiest_cpu": single.busiest_cpu})
        before, before_name = single.MBps, f"pull at {point}"
    return pd.DataFrame(out)


def disk_evidence(df: pd.DataFrame) -> list[str]:
    """One line per disk stage the survey counted: the MB its disk moved during the client's pulls."""
    point = PATH.client_vantage.name
    pulls = df[(df.kind == "pull") & (df.point == point)] if "kind" in df else df.iloc[0:0]
    out = []
    for d in PATH.disk_stages:
        if d.column not in pulls or pulls[d.column].isna().all():
            continue
        per = ", ".join(f"{r[d.column]:.0f} MB with {int(r.parallel)} pull(s)" for _, r in pulls.iterrows()
                        if pd.notna(r[d.column]))
        out.append(f"{d.name} ({d.adds}): {per} at {point}, from the disk's device counters")
    return out


def verdict(df: pd.DataFrame) -> Verdict:
    st = stage_table(df)
    if st.empty:
        return Verdict("", "no pulls in this survey: nothing to judge", [], st)
    broken = st[st.MBps <= 0]
    if len(broken):  # a stage that delivers nothing: that is the finding, not a throughput ratio
        b = broken.iloc[0]
        return Verdict(str(b.stage), f"Pulls fail at {b.point}: {b.adds}.",
                       [f"pull at {b.point}: {b.error or 'no data'}",
                        f"{int(st.failures.sum())} pull(s) failed in all; see the survey table's error column"], st)
    judged = st.dropna(subset=["kept"])
    worst = judged.loc[judged.kept.idxmin()] if len(judged) else st.iloc[0]
    last = st.iloc[-1]
    caps = df[(df.kind == "iperf3") & (df.MBps > 0)].MBps
    capacity = caps.min() if len(caps) else None
    ev = []
    judged_worst = pd.notna(worst.kept)
    if judged_worst:
        ev.append(f"pull at {worst.point}: {worst.MBps:.0f} MB/s against {worst.before_MBps:.0f} MB/s "
                  f"({worst.before}): {100 * (1 - worst.kept):.0f}% lost at this stage")
    if worst.busiest and worst.busiest_cpu >= PEGGED:
        ev.append(f"{worst.busiest} ran at {worst.busiest_cpu:.0f}% of a core during that pull: it is CPU-bound")
    elif worst.busiest:
        ev.append(f"busiest process during that pull: {worst.busiest} at {worst.busiest_cpu:.0f}% of a core "
                  "(not pegged: the time goes to waiting, e.g. small reads/writes or buffering)")
    if capacity:
        ev.append(f"end to end the pull reaches {last.MBps:.0f} MB/s, {100 * last.MBps / capacity:.0f}% of "
                  f"the slowest iperf3 hop ({capacity:.0f} MB/s)")
    if pd.notna(last.parallel_MBps) and last.MBps > 0:
        ratio = last.parallel_MBps / last.MBps if last.MBps else float("inf")
        ev.append(f"{int(last.parallel)} parallel pulls together reach {last.parallel_MBps:.0f} MB/s "
                  f"({ratio:.1f}x one pull)" + (": each connection is limited, not the path's capacity"
                                                if ratio > 1.5 else ""))
    ev += disk_evidence(df)
    failures = int(st.failures.sum())
    if failures:
        ev.append(f"{failures} pull(s) failed; see the survey table's error column")
    if not judged_worst or worst.kept > 1 - SIGNIFICANT:
        summary = (f"No hop loses more than {100 * SIGNIFICANT:.0f}%: the path delivers "
                   f"{last.MBps:.0f} MB/s end to end")
        return Verdict("", summary, ev, st)
    summary = f"Throughput is lost at {worst.point}: {worst.adds}."
    return Verdict(str(worst.stage), summary, ev, st)
