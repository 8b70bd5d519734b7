"""A standalone HTML report (bokeh inlined: no server, no network) to attach to a mailing-list post."""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from bokeh.embed import components
from bokeh.resources import INLINE
from markupsafe import Markup

from .plots import compare_bars, flow_figures, path_figure, path_nodes, receive_figure, storm_figure, survey_bars
from ..config.render import templates
from ..records import Survey
from ..units import format_size
from ..analyze.tcpflow import FlowDirection
from ..analyze.windows import FlowVerdict
from ..analyze.causes import CAUSES
from ..analyze.verdict import verdict
from ..analyze.words import headline, verdict_text
from ..path import plan


@dataclass
class Section:
    heading: str
    text: str = ""
    verdict: str = ""
    tables: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    pre: str = ""
    divs: list = field(default_factory=list)


def _table(df: pd.DataFrame) -> Markup:
    """A table in a box that scrolls sideways when the table is wider than the page (nothing is cut off)."""
    df = df.rename(columns=lambda c: str(c).replace("_", "_\u200b"))    # headers may wrap after an underscore
    html = df.to_html(index=False, na_rep="", float_format=lambda x: f"{x:,.1f}", border=0)
    return Markup(f'<div class="table-wrap">{html}</div>')


THROUGHPUT = ["kind", "point", "parallel", "MBps", "MBps_lo", "MBps_hi", "runs", "spread_pct", "per_pull_min",
              "per_pull_max", "ttfb_ms", "failures", "retransmits", "error"]


def survey_tables(table: pd.DataFrame) -> list[pd.DataFrame]:
    """The survey table as two that fit a page: throughput per hop, then per pull what the programs spent."""
    first = table[[c for c in THROUGHPUT if c in table]].dropna(axis=1, how="all")
    rest = [c for c in table if c not in THROUGHPUT and c != "through"]
    pulls = table[table.kind == "pull"][["point", "parallel", *rest]].dropna(axis=1, how="all")
    pulls = pulls.rename(columns={c: c.replace("cpu_s_per_GB_", "") + " s/GB" for c in pulls if c.startswith("cpu_s_per_GB_")})
    return [first, pulls]


def survey_section(s: Survey, heading: str = "Per hop: iperf3 and pulls", v=None, fix=None) -> Section:
    """The survey's tables and bars, with the verdict in the same words as the CLI (and the fix, when tried)."""
    runs = s.meta.get("repeats", 1)
    return Section(heading,
                   f"Image {format_size(s.meta['image_bytes'])}, {s.meta['parallel']} parallel pulls, each vantage "
                   f"point pulled {runs} times: MBps is the median, MBps_lo and MBps_hi the slowest and fastest run; "
                   "the second table has what each pull cost: the busiest program, the client's CPU in % of a core, "
                   "each program's CPU-seconds per GB moved, disk MB. " + " ".join(f"{n}." for n in s.notes),
                   verdict_text(v if v is not None else verdict(s), fix), [_table(t) for t in survey_tables(s.table)],
                   [survey_bars(s.table)])


def opening(s: Survey, v=None, fix=None, width: int = 960):
    """What a report opens with: the path drawn with the binding stage marked, and the one-sentence headline."""
    v = v if v is not None else verdict(s)
    placed = plan(s.meta.get("lab", "report"), bool(s.meta.get("namespaced", True)), path=s.path)
    what = "CPU, the machine full" if v.machine_bound and v.cause == "cpu" else CAUSES.get(v.cause, v.cause)
    fig = path_figure(path_nodes(placed), placed.path, width, binds=(v.hop, what) if v.hop else None)
    return fig, headline(v, fix)


def trials_headline(trials: pd.DataFrame, before: str | None = None, after: str | None = None) -> str:
    """'before → after' per parallel count, from a presets table (the first preset and the last by default)."""
    names = list(dict.fromkeys(trials.preset if "preset" in trials else trials.label))
    key = "preset" if "preset" in trials else "label"
    before, after = before or names[0], after or names[-1]
    lines = [f"{before} → {after}, the client's pulls, all together (each ratio: {after} ÷ {before}):"]
    for n, rows in sorted(trials.groupby("parallel"), key=lambda kv: kv[0]):
        a, b = rows[rows[key] == before], rows[rows[key] == after]
        if len(a) and len(b):
            x, y = float(a.parallel_MBps.iloc[0]), float(b.parallel_MBps.iloc[0])
            fail = f", failed pulls {int(a.failures.iloc[0])} → {int(b.failures.iloc[0])}" if a.failures.iloc[0] or b.failures.iloc[0] else ""
            lines.append(f"{n} pull{'s' if n > 1 else ''} at once: {x:.0f} → {y:.0f} MB/s"
                         + (f" ({y / x:.1f}x)" if x > 0 else "") + fail)
    return "\n".join(lines)


def surveys_headline(before: Survey, after: Survey, names: tuple[str, str] = ("before", "after")) -> str:
    """What the client gets, and what binds, before and after a change of settings."""
    vb, va = verdict(before), verdict(after)
    rate = (f"one pull through the whole path, in the per-hop survey: the client gets {vb.rate:.0f} → {va.rate:.0f} MB/s"
            + (f" ({va.rate / vb.rate:.1f}x: {names[1]} ÷ {names[0]})" if vb.rate else "")
            if vb.rate is not None and va.rate is not None else "")
    return f"{names[0]} → {names[1]}: {rate}\n{names[0]}: {headline(vb)}\n{names[1]}: {headline(va)}"


def probe_section(p) -> Section:
    """A probe of a registry from the client's side (labkit.records.Probe): table, verdict, the socket."""
    text = f"{p.uri} from {p.target}" + (f" (inside namespace {p.ns})" if p.ns else "") + ". " + " ".join(p.notes)
    if p.capture.get("windows_verdict"):
        text += f" Headers-only capture of the single pull: {p.capture['windows_verdict']}."
    return Section(f"Probe from the client: {p.target}", text, str(p.verdict),
                   [_table(p.table.dropna(axis=1, how="all"))], [receive_figure(p.samples)])


def flows_table(flows: list[tuple[str, FlowDirection, FlowVerdict]], brief: bool = False) -> pd.DataFrame:
    """One row per captured connection: its capture point (as the path drawing names the hop), what it carried,
    its windows and events, and what limits it. `brief`: the columns a notebook's width holds, in words with
    units (every column stays in each flow's `summary()`)."""
    keep = ("sender", "receiver", "bytes", "seconds", "MBps", "rtt_ms_median", "retransmissions", "zero_windows",
            "window_full", "median_window", "median_in_flight")           # the rest is in the figures
    rows = pd.DataFrame([{"capture point": p, **{k: v for k, v in f.summary().items() if k in keep},
                          "verdict": v.kind} for p, f, v in flows])
    if not brief:
        return rows
    return pd.DataFrame({"capture point": rows["capture point"], "MB/s": rows.MBps.round(0),
                         "RTT median (ms)": rows.rtt_ms_median.round(3), "retransmissions": rows.retransmissions,
                         "zero windows": rows.zero_windows, "window median (kB)": (rows.median_window / 1e3).round(0),
                         "in flight median (kB)": (rows.median_in_flight / 1e3).round(0), "verdict": rows.verdict})


def flows_section(flows: list[tuple[str, FlowDirection, FlowVerdict]]) -> Section:
    text = "\n\n".join(f"[{p}] {v}" for p, f, v in flows)
    return Section("TCP windows of one pull, per hop", "Headers-only capture of one pull at each hop it crosses.",
                   text, [_table(flows_table(flows))], [flow_figures(f, hop=p) for p, f, _ in flows])


def trials_section(trials: pd.DataFrame, heading: str = "Settings compared") -> Section:
    cols = [c for c in ["preset", "label", "parallel", "single_MBps", "parallel_MBps", "per_pull_min", "failures",
                        "busiest", "busiest_cpu"] if c in trials]
    fig = compare_bars(trials.assign(run=trials["parallel"].astype(str) + " parallel"),
                       x="label", y="parallel_MBps", group="run", title="aggregate MB/s by settings and parallel pulls")
    return Section(heading, "One pull and N at once through the full path, per settings.",
                   tables=[_table(trials[cols])], figures=[fig])


def storm_section(storm, compare: pd.DataFrame | None = None) -> Section:
    """A pull storm: the storm's row (beside other rows in `compare`, e.g. the native parallel pull),
    per compute node, failures by kind, and each pull's MB/s over time."""
    row = storm.table()
    table = pd.concat([compare, row], ignore_index=True) if compare is not None else row
    fails = storm.failures()
    spec = storm.spec
    bound = f"{spec.pulls} pulls" if spec.pulls else f"{spec.run_s:g} s"
    text = (f"Locust: {spec.users} users on {row.nodes[0]} compute node(s), one worker each, {bound}; every pull "
            f"is a manifest then the image, checked ({spec.verify}). Fairness over the good pulls' own MB/s: "
            "min / median / max and Jain's index (1 = all equal).")
    wide = table.set_index("engine").T.rename_axis(index="measure", columns=None).reset_index()
    tables = [_table(wide.astype(str)), _table(storm.nodes().astype({"jain": str}))]  # Jain's index: 3 decimals
    return Section("Pull storm from many compute nodes", text,
                   "no failed pull" if fails.empty else "failures by kind: " + ", ".join(
                       f"{r.kind} {r.count}" for r in fails.itertuples()),
                   tables + ([_table(fails)] if not fails.empty else []), [storm_figure(storm.pulls)])


def bundle_section(bundle: Path) -> Section:
    files = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    return Section("The deployable bundle", f"{bundle} (and {bundle.name}.tar.gz): " + ", ".join(files),
                   pre=(bundle / "README.md").read_text())


def write_report(path: Path, sections: list[Section], title: str = "servelab: why pulls are slow",
                 lead: list[str] | None = None, top=None, headline_text: str = "") -> Path:
    """The sections as one HTML file. What opens it: `top`, a figure (the path, the binding stage marked),
    then `headline_text` (the verdict's one sentence), then `lead` (e.g. a before → after headline)."""
    figs = ([top] if top is not None else []) + [f for sec in sections for f in sec.figures]
    script, divs = components(figs) if figs else ("", [])
    it = iter(divs)
    top_div = Markup(next(it)) if top is not None else ""
    for sec in sections:
        sec.divs = [Markup(next(it)) for _ in sec.figures]
    html = templates().get_template("report.html.j2").render(
        title=title, resources=Markup(INLINE.render()), script=Markup(script), sections=sections, lead=lead or [],
        top=top_div, headline=headline_text,
        meta=f"written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()}, Linux {platform.release()}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)
    return path
