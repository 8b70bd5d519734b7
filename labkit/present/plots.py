"""bokeh figures over labkit's tables (no server needed: they show in Jupyter and in HTML files)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from bokeh.layouts import column
from bokeh.models import Arrow, ColumnDataSource, HoverTool, LabelSet, NormalHead
from bokeh.palettes import Category10
from bokeh.plotting import figure
from bokeh.transform import dodge

from ..analyze.tcpflow import FlowDirection
from ..path import CLIENT

EVENT_STYLE = {"retransmission": ("red", "x"), "zero window": ("black", "square"),
               "window full": ("orange", "triangle"), "duplicate ack": ("purple", "diamond"),
               "out of order": ("gray", "circle"), "reset": ("red", "asterisk")}


LEGEND_WIDTH = 200      # px a legend beside the plot takes: the figure grows by it, the plot keeps its size


def legend_outside(p) -> None:
    """The figure's legend to the right of the plot, off the data (the figure widened to hold it)."""
    if p.legend:
        p.add_layout(p.legend[0], "right")
        p.width += LEGEND_WIDTH


ON_THE_LINE = 50        # events of one kind drawn on the line they mark; more go in a strip along the bottom


def event_marks(p, events: pd.DataFrame, t, y) -> list:
    """The capture's events on figure `p`: a few of a kind as hollow markers on the line (t, y) at their time;
    many (a zero window held for 683 segments) as thin ticks in a strip along the plot's bottom, so the
    line they mark stays visible. Each kind's legend entry says how many and where. The renderers."""
    out = []
    if events.empty:
        return out
    strip = 0.0
    for kind, rows in events.groupby("kind"):
        color, marker = EVENT_STYLE.get(kind, ("gray", "circle"))
        if len(rows) <= ON_THE_LINE:
            out.append(p.scatter(rows.t, np.interp(rows.t, t, y), color=color, marker=marker, size=7, fill_alpha=0,
                                 line_width=1.5, legend_label=f"{kind} ({len(rows)})"))
        else:
            out.append(p.scatter(rows.t, np.full(len(rows), strip), color=color, marker="dash", angle=np.pi / 2,
                                 size=9, line_alpha=0.5, legend_label=f"{kind} ({len(rows)}, ticks along the bottom)"))
    return out


def flow_figures(f: FlowDirection, width: int = 680, max_events: int = 2000, hop: str | None = None):
    """Time–sequence graph with the window edge, window vs in flight, throughput; events marked. `hop`: the
    connection's name in the path drawing (the capture point), put first in every title."""
    s = f.series.copy()
    if s.empty:
        p = figure(title=f"{hop + ': ' if hop else ''}{f.sender} → {f.receiver}: no data", width=width, height=120)
        return column(p)
    mb = 1e6
    src = ColumnDataSource({"t": s.t, "seq": s.seq / mb, "ack": s.ack / mb,
                            "edge": s.get("window_edge", s.ack) / mb, "window": s.window / 1e3,
                            "in_flight": s.in_flight / 1e3,
                            "MBps": s.MBps.rolling(10, min_periods=1).mean()})
    title = f"{hop + ': ' if hop else ''}{f.sender} → {f.receiver}"
    seq = figure(title=f"{title}: bytes sent and acknowledged", width=width, height=320,
                 x_axis_label="time since the connection opened (s)", y_axis_label="bytes into the transfer (MB)", tools="xpan,xwheel_zoom,box_zoom,reset,save")
    event_marks(seq, f.events.head(max_events), s.t, s.ack / mb)      # first: the lines are drawn over them
    seq.line("t", "seq", source=src, color="navy", legend_label="highest sequence sent")
    seq.line("t", "ack", source=src, color="green", legend_label="acknowledged")
    if f.handshake_seen:
        seq.line("t", "edge", source=src, color="orange", line_dash="dashed", legend_label="window edge (ack + window)")
    seq.legend.click_policy = "hide"
    win = figure(title=f"{hop or title}: receive window against bytes in flight", width=width, height=220,
                 x_range=seq.x_range, x_axis_label="time since the connection opened (s)", y_axis_label="kB", tools="xpan,xwheel_zoom,box_zoom,reset,save")
    if f.handshake_seen:
        win.line("t", "window", source=src, color="orange", legend_label="advertised window")
    win.line("t", "in_flight", source=src, color="navy", legend_label="in flight (max per bin)")
    thr = figure(title=f"{hop or title}: throughput (acknowledged bytes, 10-bin mean)", width=width, height=200,
                 x_range=seq.x_range, x_axis_label="time since the connection opened (s)", y_axis_label="MB/s", tools="xpan,xwheel_zoom,box_zoom,reset,save")
    thr.line("t", "MBps", source=src, color="teal", legend_label="acknowledged (MB/s)")   # a legend too: frames align
    for p in (seq, win, thr):
        legend_outside(p)
        p.add_tools(HoverTool(tooltips=[("t", "@t{0.000} s"), ("in flight", "@in_flight{0,0} kB"),
                                        ("window", "@window{0,0} kB"), ("MB/s", "@MBps{0}")]))
    return column(seq, win, thr)


def survey_bars(table: pd.DataFrame, title: str = "throughput per hop", width: int = 660):
    """One bar per iperf3 hop and per pull (one, and several at once), in MB/s; the legend says which is which."""
    t = table.copy()
    t["label"] = np.where(t.kind == "iperf3", "iperf3 " + t.point,
                          "pull " + t.point + np.where(t.parallel > 1, " ×" + t.parallel.astype(str), ""))
    t["what"] = np.where(t.kind == "iperf3", "iperf3: the hop's TCP rate",
                         np.where(t.parallel > 1, "pulls at once (all together)", "one pull"))
    colors = {"iperf3: the hop's TCP rate": "#9ecae1", "one pull": "#e6550d", "pulls at once (all together)": "#fdae6b"}
    p = figure(y_range=list(reversed(t.label.tolist())), width=width, height=60 + 26 * len(t), title=title,
               x_axis_label="MB/s (iperf3: bytes of TCP; pulls: bytes of the image, per second)", tools="save")
    for what, color in colors.items():
        rows = t[t.what == what]
        if len(rows):
            p.hbar(y="label", right="MBps", height=0.7, color=color, legend_label=what,
                   source=ColumnDataSource({c: rows[c].tolist() for c in ("label", "MBps", "failures")}))
    legend_outside(p)
    p.add_tools(HoverTool(tooltips=[("", "@label"), ("MB/s", "@MBps{0}"), ("failures", "@failures")]))
    return p


def natural(value) -> tuple:
    """A sort key that orders the numbers inside labels as numbers: '5 parallel' before '40 parallel'."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", str(value)) if part)


def compare_bars(table: pd.DataFrame, x: str, y: str = "MBps", group: str | None = None,
                 title: str = "", width: int = 660, y_label: str | None = None, legend_title: str | None = None):
    """Bars of `y` per `x` (one colour per `group`, the legend beside the plot), for sweeps and before/after
    tables. `y_label`: the axis in words, with its unit (default: the column's name)."""
    groups = sorted(table[group].unique(), key=natural) if group else [None]
    cats = list(dict.fromkeys(table[x].astype(str)))
    p = figure(x_range=cats, width=width, height=340, title=title, y_axis_label=y_label or y, tools="save")
    w = 0.8 / len(groups)
    for i, g in enumerate(groups):
        rows = table if g is None else table[table[group] == g]
        src = ColumnDataSource({"x": rows[x].astype(str), "y": rows[y]})
        p.vbar(x=dodge("x", -0.4 + w * (i + 0.5), range=p.x_range), top="y", width=w * 0.95, source=src,
               color=Category10[10][i % 10], legend_label=str(g) if g is not None else y)
    p.y_range.start = 0                     # bars are read against zero
    p.xaxis.major_label_orientation = 0.6
    p.legend.click_policy = "hide"
    if legend_title:
        p.legend.title = legend_title
    legend_outside(p)
    return p


def trials_bars(trials: pd.DataFrame, title: str = "trials"):
    """Single-pull and N-parallel aggregate MB/s per trial label (sweeps, the tuning panel)."""
    long = trials.melt(id_vars="label", value_vars=["single_MBps", "parallel_MBps"],
                       var_name="measure", value_name="MBps")
    long["measure"] = long.measure.map({"single_MBps": "one pull", "parallel_MBps": "pulls at once, all together"})
    return compare_bars(long, x="label", y="MBps", group="measure", title=title,
                        y_label="MB/s at the client", legend_title="measured")


def preset_bars(trials: pd.DataFrame, title: str = "the client's pulls per setting: MB/s of all pulls together"):
    """Aggregate MB/s per preset, one bar per parallel count (in numeric order)."""
    t = trials.sort_values("parallel", kind="stable")
    return compare_bars(t.assign(run=t.parallel.map(lambda n: f"{n} pull{'s' if n > 1 else ''} at once")),
                        x="preset", y="parallel_MBps", group="run", title=title,
                        y_label="MB/s, all pulls together", legend_title="pulls at once")


def _joins(path) -> list[str]:
    """What joins each node to the next in the declared path: a link, or a bridge both sit on."""
    out = []
    for a, b in zip(path.nodes, path.nodes[1:]):
        direct = [lk for lk in path.links if {lk.a, lk.b} == {a.name, b.name}]
        shared = {lk.bridge for lk in path.links
                  if lk.bridge and lk.end("a" if lk.bridge_end == "b" else "b")[0] in (a.name, b.name)}
        out.append(f"{direct[0].name} link" if direct else f"{next(iter(shared))} bridge" if shared else "")
    return out


def path_nodes(plan) -> list[dict]:
    """The nodes as path_figure draws them, from a placed path alone (no lab: no pids)."""
    return [{"node": n.name, "role": n.role, "namespace": plan.ns(n.name) or "(host)", "address": plan.ip(n.name) or "",
             "services": ", ".join(s.name for s in plan.path.services if s.node == n.name)}
            for n in plan.path.nodes]


def stage_place(path, stage: str) -> str:
    """The node where a stage's work runs: its service's node, the published port's node, or the client's node."""
    st = path.stage(stage)
    for prog in st.programs:
        if prog == CLIENT:
            return path.client_vantage.client
        node = next((s.node for s in path.services if s.program == prog), None)
        if node:
            return node
    return next((p.node for p in path.published), path.vantage(st.vantage).server)


def path_figure(nodes: list[dict], path, width: int = 900, binds: tuple[str, str] | None = None):
    """The serving path (the lab's `lab.path`) as boxes (node, namespace, address, services, from
    `lab.describe()` or `path_nodes(plan)`) joined by what joins them.

    `binds`: (stage, what) to mark: that stage's node drawn in red with `what` under it.
    """

    links = _joins(path)
    n = len(nodes)
    xs = [i * 4.4 for i in range(n)]         # room between the boxes for what joins them
    marked = stage_place(path, binds[0]) if binds else None
    p = figure(width=width, height=260 if binds else 230, x_range=(-1.8, xs[-1] + 1.8),
               y_range=(-2.0 if binds else -1.6, 1.6), tools="save",
               title="the serving path: data flows right to left, the pull is made from the left")
    p.axis.visible = p.grid.visible = False
    hot = [r["node"] == marked for r in nodes]
    p.rect(xs, [0] * n, width=2.8, height=2.4, fill_color=["#fde0dc" if h else "#eef4fb" for h in hot],
           line_color=["#c0392b" if h else "#4a78a8" for h in hot], line_width=[3 if h else 1 for h in hot])
    text = [f"{r.get('role', r['node'])}\n{r['namespace']}\n{r['address']}" for r in nodes]
    svc = [r["services"].replace(", ", "\n") + (f"\nstages: {r['stages']}" if r.get("stages") else "") for r in nodes]
    src = ColumnDataSource({"x": xs, "y": [0.55] * n, "t": text, "s": svc, "y2": [-0.35] * n})
    p.add_layout(LabelSet(x="x", y="y", text="t", source=src, text_align="center", text_baseline="middle",
                          text_font_size="10pt", text_font_style="bold"))
    p.add_layout(LabelSet(x="x", y="y2", text="s", source=src, text_align="center", text_baseline="middle",
                          text_font_size="8pt"))
    for i, name in enumerate(links[: n - 1]):
        p.add_layout(Arrow(end=NormalHead(size=10), x_start=xs[i + 1] - 1.45, x_end=xs[i] + 1.45,
                           y_start=0, y_end=0, line_width=2))
        p.text([(xs[i] + xs[i + 1]) / 2], [0.15], text=[name], text_align="center", text_font_size="8pt")
    if binds and marked in [r["node"] for r in nodes]:
        x = xs[[r["node"] for r in nodes].index(marked)]
        p.text([x], [-1.55], text=[f"binds: {binds[1]}"], text_align="center", text_font_size="10pt",
               text_color="#c0392b", text_font_style="bold")
    return p


def receive_figure(samples: list[dict], title: str = "the client's socket during one pull", width: int = 800):
    """Receive rate (from tcp_info's bytes_received) and the unread receive queue, over the pull."""
    s = pd.DataFrame(samples)
    p = figure(title=title, width=width, height=260, x_axis_label="s", y_axis_label="MB/s",
               tools="xpan,xwheel_zoom,box_zoom,reset,save")
    if len(s) < 2 or "bytes_received" not in s:
        return p
    dt = s.t.diff().replace(0, np.nan)
    src = ColumnDataSource({"t": s.t, "MBps": (s.bytes_received.diff() / dt / 1e6).fillna(0),
                            "unread": s.unread / 1e6, "rcvbuf": s.rcvbuf / 1e6})
    p.line("t", "MBps", source=src, color="teal", legend_label="received (MB/s)")
    p.line("t", "unread", source=src, color="firebrick", legend_label="unread in the receive queue (MB)")
    p.line("t", "rcvbuf", source=src, color="gray", line_dash="dashed", legend_label="receive buffer (MB)")
    p.legend.location = "top_left"
    p.legend.click_policy = "hide"
    p.add_tools(HoverTool(tooltips=[("t", "@t{0.000} s"), ("MB/s", "@MBps{0.0}"), ("unread", "@unread{0.00} MB")]))
    return p


def storm_figure(pulls: pd.DataFrame, title: str = "a pull storm: each pull's MB/s when it started",
                 width: int = 800):
    """One dot per pull at its start (s after the first) and its own MB/s, coloured by compute node;
    failed pulls as red crosses on the axis."""
    p = figure(width=width, height=300, title=title, x_axis_label="s after the first pull started",
               y_axis_label="MB/s of this pull", tools="xpan,xwheel_zoom,box_zoom,reset,save")
    if pulls.empty:
        return p
    t = pulls.assign(t=pulls.start - pulls.start.min(), kind=pulls.kind.replace("", "ok"))
    for i, (node, rows) in enumerate(t[t.ok.astype(bool)].groupby("node", sort=True)):
        p.scatter("t", "MBps", source=ColumnDataSource(rows[["t", "MBps", "ttfb_ms", "node", "kind"]]), size=7,
                  color=Category10[10][i % 10], legend_label=str(node))
    bad = t[~t.ok.astype(bool)]
    if len(bad):
        p.scatter("t", "MBps", source=ColumnDataSource(bad[["t", "MBps", "ttfb_ms", "node", "kind"]]),
                  marker="x", size=10, color="red", legend_label=f"failed ({len(bad)})")
    p.add_tools(HoverTool(tooltips=[("node", "@node"), ("MB/s", "@MBps{0.0}"), ("TTFB", "@ttfb_ms{0} ms"),
                                    ("", "@kind")]))
    p.legend.click_policy = "hide"
    p.legend.location = "top_right"
    return p
