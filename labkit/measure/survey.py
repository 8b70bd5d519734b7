"""The per-hop survey: iperf3 on every hop, then pulls at every vantage point, into one tidy table."""
from __future__ import annotations

import logging
import platform
import statistics
import time

import pandas as pd
from ..progress import bar as tqdm

from . import iperf
from .cpu import machine_cpus
from .dilated import read_back
from ..config.settings import LabSettings
from ..errors import ServiceDown
from ..lab.lab import Lab
from ..path import CLIENT
from ..records import Survey, survey_columns
from .pull_at import PullRun, pull_at

log = logging.getLogger("labkit.measure")


def run_survey(lab: Lab, parallel: int = 5, iperf_seconds: int = 2, pull_deadline: float = 300,
               hops: list[str] | None = None, vantages: list[str] | None = None,
               progress: bool = True, verify: str = "sha256", repeats: int = 3,
               parallel_at: list[str] | None = None, tcp: bool = True,
               parallel_rounds: int | None = None) -> Survey:
    """iperf3 per hop, then at each vantage point `repeats` rounds of one pull and `parallel` pulls at once.

    Each vantage point is pulled `repeats` times (at least 3 give a spread), round by round so a
    slow moment of the machine falls on every vantage point alike; a row holds the median MB/s,
    the slowest and fastest run (MBps_lo, MBps_hi) and the spread in % of the median. Every pull is
    bounded by `pull_deadline`. `parallel_at`: the vantage points that also get `parallel` pulls at
    once (None: every one), in the first `parallel_rounds` rounds (None: every round). `tcp`: each connection's tcp_info during every pull, in `detail`.
    Vantage points behind a stage that carries no image under the lab's settings are left out
    (with X-Accel-Redirect uwsgi only sends a header). verify="length" skips the client's sha256.
    A service that is down is recorded (meta "down") and the pulls show where the path fails.
    A time-dilated lab (machine.dilation k > 1) stretches `pull_deadline` x k (pull_at does, once) and reads the
    table back into real time (labkit.measure.dilated: rates x k, times / k), summarized from the runs' measured
    values so nothing is read back twice; every table has its `k` column, and what a run says of its clients'
    CPU cap (a client that bound) is in the notes.
    """
    if not 1 <= repeats <= 20:
        raise ValueError(f"repeats {repeats}: 1..20 (3 or more give a spread)")
    p = lab.plan
    down = _down(lab)
    chosen_hops = [h for h in p.path.hops if hops is None or h.name in hops]
    chosen_vps = [v for v in p.path.vantages_for(lab.settings) if vantages is None or v.name in vantages]
    plan_ = [(v, n) for v in chosen_vps
             for n in ([1, parallel] if parallel > 1 and (parallel_at is None or v.name in parallel_at) else [1])]
    rows, details, runs = [], [], {}
    t0 = time.perf_counter()
    rounds = [[(v, n) for v, n in plan_ if n == 1 or i < (parallel_rounds or repeats)] for i in range(repeats)]
    with tqdm(total=len(chosen_hops) + sum(map(len, rounds)), desc="survey", unit="step",
              disable=not progress, leave=False) as bar:
        for h in chosen_hops:
            bar.set_postfix_str(f"iperf3 {h.name}")
            r = iperf.run(*p.endpoint(h), iperf_seconds)
            rows.append({"kind": "iperf3", "point": h.name, "through": "TCP only", "parallel": 1,
                         "MBps": round(r.MBps, 1), "MBps_lo": r.lo_MBps and round(r.lo_MBps, 1),
                         "MBps_hi": r.hi_MBps and round(r.hi_MBps, 1), "runs": 1,
                         "failures": int(not r.ok), "retransmits": r.retransmits, "error": r.error})
            bar.update()
        for i, this_round in enumerate(rounds):
            for v, n in this_round:
                bar.set_postfix_str(f"pull {v.name} x{n} ({i + 1}/{repeats})")
                run = pull_at(lab, v.name, n, verify=verify, deadline=pull_deadline, tcp=tcp, allow_down=bool(down))
                runs.setdefault((v.name, n), []).append(run)
                details += _details(run, i)
                bar.update()
    cpu_all = {}
    for (name, n), rs in runs.items():
        row, cpu_all[f"{name} x{n}"] = summarize_runs(rs)
        rows.append({"kind": "pull", "through": " → ".join(p.path.vantage(name).crosses), **row})
    for st in [s for s in p.path.stages if not s.carries(lab.settings)]:
        why = ", ".join(f"{k} = {' or '.join(map(str, v))}" for k, v in st.idle_when.items())
        # a note the reader must see when these settings took the stage off the path (X-Accel-Redirect: uwsgi
        # sends a header only); routine when it is off by default too (TLS not enabled)
        level = logging.INFO if not st.carries(LabSettings()) else logging.WARNING
        log.log(level, f"stage {st.name!r} carries no image under these settings ({why}): {st.vantage!r} is not "
                       "pulled, and this survey has no row for it")
    table, dilated = read_back(pd.DataFrame(rows).reindex(columns=survey_columns(p.path)), lab.k, p.path,
                               lab.cpu.model.ratio)
    meta = {"lab": lab.name, "namespaced": p.namespaced, "image_bytes": lab.image.size,
            "disk_stages": [d.name for d in p.path.disk_stages if d.carries(lab.settings)], "parallel": parallel,
            "compute_nodes": len(p.path.compute), "repeats": repeats, "iperf_seconds": iperf_seconds, "verify": verify,
            "pull_deadline_s": pull_deadline, "k": lab.k,
            "machine": {"vcpus": lab.settings.machine.vcpus, "k": lab.k, "ratio": lab.cpu.ratio,
                        "changed": lab.machine.changed()},
            "wall_s": round(time.perf_counter() - t0, 1), "down": down,
            "cpus": machine_cpus(), "host": platform.node(), "cpu_model": lab.cpu.info(),
            "kernel": platform.release(), "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    said = [n for rs in runs.values() for r in rs for n in r.notes() if n.startswith("client binds")]
    return Survey(table, lab.settings.model_dump(mode="json"), p.path, [*lab.notes, *dilated, *dict.fromkeys(said)],
                  meta, cpu_all,
                  pd.DataFrame(details))


def _down(lab: Lab) -> dict[str, str]:
    """The services that are not running ({} when all are), or a LabError when the lab is not up."""
    try:
        lab.require_running()
        return {}
    except ServiceDown:
        return {n: st for n, st in lab.status().items() if not st.startswith(("ok", "running"))}


def summarize_runs(runs: list[PullRun]) -> tuple[dict, dict]:
    """One table row from repeated pulls at one vantage point (median, slowest, fastest) and the median CPU."""
    rates = [r.measured_mbps for r in runs]          # as measured: read back once, with the whole table
    med = statistics.median(rates)
    every = [x for r in runs for x in r.results]
    cpu = {}
    for svc in dict.fromkeys(k for r in runs for k in r.cpu):
        vals = [r.cpu[svc] for r in runs if svc in r.cpu]
        cpu[svc] = {k: round(statistics.median(v[k] for v in vals), 1) for k in ("cpu_max_proc", "cpu_total")}
    busiest = max(cpu, key=lambda k: cpu[k]["cpu_max_proc"]) if cpu else ""
    good = [x for x in every if x.ok]
    row = {"point": runs[0].vantage, "parallel": runs[0].parallel, "MBps": round(med, 1),
           "MBps_lo": round(min(rates), 1), "MBps_hi": round(max(rates), 1), "runs": len(runs),
           "spread_pct": round(100 * (max(rates) - min(rates)) / med, 1) if med > 0 else None,
           "per_pull_min": round(min(x.mbps for x in every), 1), "per_pull_max": round(max(x.mbps for x in every), 1),
           "ttfb_ms": round(statistics.median(x.ttfb_ms for x in good), 1) if good else None,
           "failures": sum(r.failures for r in runs),
           "sha256_ok": all(x.sha256_ok for x in every) if runs[0].verify == "sha256" else None,
           "busiest": busiest, "busiest_cpu": cpu[busiest]["cpu_max_proc"] if busiest else 0.0,
           "client": runs[0].client, "client_cpu": round(statistics.median(r.client_cpu for r in runs), 1),
           **_median_disk(runs), **_median_cost(runs),
           "error": "; ".join(sorted({r.errors for r in runs if r.errors}))}
    return row, cpu


def _median_disk(runs: list[PullRun]) -> dict:
    """Each disk stage's MB per pull, the median over the runs (None where the disk is not the lab's)."""
    return _medians([r.disk_mb() for r in runs], 1)


def _median_cost(runs: list[PullRun]) -> dict:
    """Each program's CPU-seconds per GB moved, the median over the runs (None where never measured)."""
    return _medians([r.cost() for r in runs], 4)


def _medians(per_run: list[dict], digits: int) -> dict:
    out = {}
    for col in per_run[0]:
        vals = [d[col] for d in per_run if d[col] is not None]
        out[col] = round(statistics.median(vals), digits) if vals else None
    return out


def _details(run: PullRun, i: int) -> list[dict]:
    """The run's evidence as long rows: each service's CPU, the client's, each connection's tcp_info."""
    key = {"point": run.vantage, "parallel": run.parallel, "run": i, "MBps": round(run.measured_mbps, 1), "k": run.k,
           "pulled_bytes": sum(r.bytes for r in run.results)}
    out = [{**key, "source": "cpu", "name": svc, "side": "", **v,
            **({"cpu_s": round(run.cpu_s[svc], 4)} if svc in run.cpu_s else {})} for svc, v in run.cpu.items()]
    out.append({**key, "source": "cpu", "name": CLIENT, "side": "", "cpu_max_proc": run.client_cpu,
                "cpu_total": run.client_cpu, "wait_max_proc": run.client_wait,
                "cpu_s": round(sum(r.cpu_s for r in run.results), 4)})
    if run.machine:        # the whole machine, whoever ran: the path's programs and any other work
        out.append({**key, "source": "machine", "name": "machine", "side": "", "cpu_total": run.machine["busy"],
                    "cpus": run.machine["cpus"]})
    out += [{**key, "source": "tcp", "name": t["connection"], **{k: v for k, v in t.items() if k != "connection"}}
            for t in run.tcp]
    return out
