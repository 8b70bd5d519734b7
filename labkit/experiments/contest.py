"""The contest at the seed's scale (issue 25): every hypothesis runs exactly the rulebook's experiment on the seed's
machine (8 vCPUs of opteron-6174, time-dilated by one k for the whole run), its 6 Gbit link and one image, and every
check is computed the same way for all (labkit.analyze.hypotheses.judge_results).

For each hypothesis, one lab (8 compute nodes behind one switch, the VM's disk a loop device so its bytes are
counted) and the runs of labkit.analyze.contest.plan_runs, each under the settings in force when the seed made its
observation: released (one pull, iperf3 VM -> node and from uwsgi's namespace, the disk's bytes), poster and
poster-8-workers (40 pulls from 8 compute nodes), original (5 pulls: failures attributed to the seed's mechanisms).
Rates are read back x k (labkit.measure.dilated), the deadline and the client's idle timeout stretched x k, and
lk.scale's prediction for each run is recorded beside it (source "predicted"), never in its place.

    outcome = run(CONTEST)                                  # labkit run contest
    outcome = run(CONTEST.with_(options={"only": ("TLS",)}))   # labkit contest --only TLS (merged into the record)
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from pathlib import Path

import pandas as pd

from ..analyze import contest as pure
from ..analyze.hypotheses import (DEADLINE_S, HYPOTHESES, RESULT_COLUMNS, SEED_LINK, attribute, judge_results,
                                  observations, verdicts)
from ..analyze.scale import machine_view, predict
from ..config.dilation import machine_problems
from ..config.overrides import apply_overrides
from ..errors import SettingsError
from ..lab.conditions.machine import host
from ..lab.lab import DATA, Lab
from ..measure import iperf
from ..measure.pull_at import PullRun, pull_at
from ..units import MiB, mib
from .declare import Experiment, Outcome, Progress

IMAGE_MIB = 128        # 2x the largest image a hypothesis needs to show (59 MiB, the shared file system's second at
                       # its ceiling) and 250+ CFS periods of the emulated core per TLS pull: a steady rate
NODES = 8              # compute nodes: the most any check asks
IDLE_TIMEOUT_S = 600   # labkit's client gives up a read after this much silence (the lab's own: x k): above every
                       # server timeout in force (the longest, uwsgi's socket-timeout 120 s in 2018-10's uwsgi.ini),
                       # so the seed's own mechanisms act first, as with Singularity 2.6.1, which has none at all
IPERF_S = 3
CONTEST_SETTINGS = ("storage.disk=loop",)     # every hypothesis's VM disk a loop device: its reads are counted


def chosen(hypotheses) -> list:
    """The hypotheses whose name contains any of `hypotheses` (case-insensitive; None or empty: all), refused by name."""
    if not hypotheses:
        return list(HYPOTHESES)
    out = [h for h in HYPOTHESES if any(w.lower() in h.name.lower() for w in hypotheses)]
    if not out:
        raise ValueError(f"--only {', '.join(hypotheses)}: no such hypothesis; "
                         f"known: {'; '.join(h.name for h in HYPOTHESES)}")
    return out


def named(name: str):
    """The hypothesis called exactly `name` (a record's own name), or ValueError naming the known ones."""
    for h in HYPOTHESES:
        if h.name == name:
            return h
    raise ValueError(f"hypothesis {name!r}: no such name; known: {'; '.join(h.name for h in HYPOTHESES)}")


def machine_of(obs: dict | None = None) -> dict:
    return (obs or observations())["experiment"]["machine"]


def runs_of(h, options) -> list[pure.Run]:
    """The runs one lab of hypothesis `h` makes: its plan, filtered to option `checks` (the checks asked; none:
    all) and to the images option `images` names (the lab's image sizes; none: the contest's)."""
    return [r for r in pure.plan_runs([h], checks=options.get("checks"))
            if r.image in (options.get("images") or ("contest",))]


def dilation(exp: Experiment) -> tuple[float, str, float]:
    """(k, why, the CPU ratio) for the contest: the option's k, or choose_k for the seed's vCPUs at the CPU model's
    ratio measured on this machine at the run's start (labkit.lab.conditions.machine.host: one figure per run,
    labkit.lab.conditions.speed_meter, flagged when the machine is busy)."""
    m = machine_of()
    probe = HYPOTHESES[-1].settings_at("released")
    h = host(probe)
    k, why = pure.choose_k(m["vcpus"], h.ratio, h.cores)
    if exp.options.get("k"):
        k, why = float(exp.options["k"]), f"k = {exp.options['k']:g} as asked (chosen: {why})"
        if problems := machine_problems(m["vcpus"], k, h):      # refused before any lab starts
            raise SettingsError(f"--k {k:g}: " + "; ".join(problems))
    return k, why, h.ratio


def settings_for(h, key: str, k: float, link: str):
    """What hypothesis `h` runs for the rulebook's settings `key`: the seed's machine at dilation k, the contest's
    loop disk, the seed's link on the one shaped uplink of the switched path, then its own overrides."""
    return h.settings_at(key, f"machine.dilation={k:g}", *CONTEST_SETTINGS, f"links.wan={link}")


def _labs(exp: Experiment) -> list[Experiment]:
    """A lab per hypothesis and image size (the contest's, then the seed's own where a run asks for it), in turn,
    each only for the runs of option `checks` (none: all); option `seed_image` (bytes) stands in for the seed's
    1.5 GiB (a test's; equal sizes share one lab)."""
    k, why, ratio = dilation(exp)
    hs = chosen(exp.options.get("only"))
    sizes = pure.image_sizes(exp.image_size, exp.options.get("seed_image"))
    labs = []
    for h in hs:
        by_size: dict[int, list[str]] = {}
        for image in dict.fromkeys(r.image for r in pure.plan_runs([h], checks=exp.options.get("checks"))):
            by_size.setdefault(sizes[image], []).append(image)
        labs += [exp.with_(settings=settings_for(h, "released", k, exp.options["link"]), lab_name=exp.lab_name,
                           image_size=size, options={"hypothesis": h, "images": tuple(images), "k": k, "k_why": why,
                                                     "ratio": ratio, "contest_image": exp.image_size,
                                                     "seed_image": sizes["seed"]})
                 for size, images in by_size.items()]
    return labs


def _log_marks(lab: Lab) -> dict[Path, int]:
    return {f: f.stat().st_size if f.exists() else 0 for svc in lab.services.values()
            for f in (svc.logs() if hasattr(svc, "logs") else [])}


def _log_since(marks: dict[Path, int]) -> list[str]:
    lines = []
    for f, at in marks.items():
        if f.exists():
            with open(f, "rb") as fh:
                fh.seek(at)
                lines += fh.read().decode(errors="replace").splitlines()
    return lines


def ended_by_lab(r, deadline: float, client: str) -> str:
    """Which of the lab's own limits ended a failed pull ('' when none did): its deadline, or labkit's idle timeout."""
    if r.kind != "timeout":
        return ""
    return "pull-deadline" if r.seconds >= 0.98 * deadline or client != "labkit" else "client-idle-timeout"


def real_row(pr: PullRun) -> tuple[dict, list[str]]:
    """A run's row in the seed's time (the PullRun knows its k: rates x k, times / k, `k` said) and its notes (k,
    each compute node's clients against their CPU cap, the kernel's undilated share)."""
    return pr.row(), pr.notes()


def run_records(h_name: str, run: pure.Run, pr: PullRun, settings: dict, vcpus: int, logs: list[str] = (),
                iperf_MBps: dict[str, float] | None = None) -> tuple[list[dict], list[str]]:
    """The long records (RESULT_COLUMNS) one run gives, in the seed's time, and its notes. `pr`: the pulls (it knows
    its k and CPU ratio); `settings`: the user's settings in force (a dict, its worker counts for the prediction);
    `logs`: the server's log lines written meanwhile (each failure attributed by them); `iperf_MBps`: iperf3 per
    hop as measured (dilated: read back x k here). Pure: no lab."""
    back, notes = real_row(pr)
    k, ratio, deadline = pr.k, pr.ratio, DEADLINE_S * pr.k
    out = []

    def add(quantity, value, source="measured", mechanism="", nodes=run.nodes):
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            out.append({"hypothesis": h_name, "quantity": quantity, "settings": run.settings, "pulls": run.pulls,
                        "nodes": nodes, "value": round(float(value), 3), "source": source, "mechanism": mechanism})
    add("MBps", back["MBps"])
    v, by = predict(back, pr.path, ratio, settings, run.pulls, vcpus)
    add("MBps", v, "predicted", nodes=math.nan)
    notes.append(f"{run.settings} x{run.pulls}: measured {back['MBps']:.1f} MB/s, lk.scale predicts {v:.1f} ({by})")
    add("machine_pct", machine_view(back, pr.path, ratio, vcpus)["machine_pct"])
    if "disk_read_MB" in run.quantities:
        add("disk_read_MB", back.get("disk_read_MB"))
        add("served_MB", sum(r.bytes for r in pr.results) / 1e6)
    by_mech: dict[str, int] = {}
    for r in pr.results:
        if not r.ok:
            m = attribute([*logs, r.error], ended_by_lab(r, deadline, pr.client))
            by_mech[m] = by_mech.get(m, 0) + 1
    for m, n in by_mech.items():
        add("failures", n, mechanism=m)
    if not by_mech:
        add("failures", 0)
    for hop, MBps in (iperf_MBps or {}).items():
        gbit = MBps * k * 8 / 1e3
        if hop == "vm":
            add("link_MBps", MBps * k)
        add(f"iperf_{hop}_gbit", gbit)
    return out, notes


def _hops(lab: Lab) -> dict[str, object]:
    """The iperf3 hops the seed measured: the VM -> a compute node, and uwsgi's namespace -> a compute node."""
    by_server = {h.server: h for h in lab.path.hops if h.client == lab.path.compute[0]}
    return {"vm": by_server["vm"], "uwsgi": by_server["uwsgi"]}


def _measure(lab: Lab, exp: Experiment, progress: Progress) -> dict:
    o = exp.options
    h, k = o["hypothesis"], o["k"]
    vcpus, t0 = machine_of()["vcpus"], time.perf_counter()
    records, notes = [], [*lab.notes]
    lab.storage.warm()           # the seed's registry had served its images before: no cold first read
    for run in runs_of(h, o):
        # a smaller lab (a test's): no more nodes than it has, no more pulls than `max_pulls`; recorded as run
        pulls = min(run.pulls, o.get("max_pulls") or run.pulls)
        run = dataclasses.replace(run, pulls=pulls, nodes=min(run.nodes, len(lab.path.compute), pulls))
        progress.bar.set_postfix_str(f"{h.name}: {run.settings} x{run.pulls} from {run.nodes} node(s)")
        s = apply_overrides(settings_for(h, run.settings, k, o["link"]), list(exp.overrides))
        lab.apply(s)
        meas = {}
        if "iperf_vm_gbit" in run.quantities:
            meas = {name: iperf.run(*lab.plan.endpoint(hop), IPERF_S).MBps for name, hop in _hops(lab).items()}
        marks = _log_marks(lab)
        # the lab's deadline and the client's idle timeout are stretched x k by pull_at itself
        pr = pull_at(lab, parallel=run.pulls, verify="length", deadline=DEADLINE_S, timeout=IDLE_TIMEOUT_S,
                     spread=run.nodes > 1)
        recs, said = run_records(h.name, run, pr, s.model_dump(mode="json"), vcpus, _log_since(marks), meas)
        records += recs
        notes += [n for n in said if n not in notes]
        progress.step()
    wall = round(time.perf_counter() - t0, 1)
    part = {"hypothesis": h.name, "images": o.get("images", ("contest",)), "checks": o.get("checks"),
            "records": records, "notes": notes, "wall_s": wall}
    _save(exp, [part])              # on disk as each hypothesis ends: a run stopped later keeps what finished
    return part


def record_path(exp: Experiment, k: float, where: Path) -> Path:
    size = exp.options.get("contest_image") or exp.image_size       # named by the contest's image, not the seed's
    return Path(exp.options.get("out_dir") or where) / f"contest-{int(mib(size))}MiB-k{k:g}.csv"


def _save(exp: Experiment, parts: list[dict]) -> Path:
    """Merge `parts` into data/recorded/contest-<size>MiB-k<k>.csv (the long records; a hypothesis run again
    replaces its rows) and the .json beside it (k and why, the machine, the CPU ratio, wall times, notes)."""
    o = exp.options
    csv = record_path(exp, o["k"], DATA / exp.records)
    csv.parent.mkdir(parents=True, exist_ok=True)
    new = pd.DataFrame([r for p in parts for r in p["records"]], columns=list(RESULT_COLUMNS))
    old = pd.read_csv(csv, keep_default_na=False, na_values={"value": [""], "nodes": [""], "pulls": [""]}) \
        if csv.exists() else new.iloc[0:0]
    # a run made again replaces its rows: the same hypothesis, settings and pull count
    done = {(p["hypothesis"], r.settings, r.pulls) for p in parts for r in runs_of(named(p["hypothesis"]), p)}
    again = [(h, st, n) in done for h, st, n in zip(old.hypothesis, old.settings, old.pulls)]
    records = pd.concat([old[[not a for a in again]], new], ignore_index=True)
    records.to_csv(csv, index=False)
    meta_path = csv.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    walls = {**meta.get("wall_s_by_hypothesis", {}), **{_key(p): p["wall_s"] for p in parts}}
    meta.update({
        "k": o["k"], "k_why": o["k_why"], "image_mib": int(mib(o.get("contest_image") or exp.image_size)),
        "seed_image_mib": int(mib(pure.image_sizes(0, o.get("seed_image"))["seed"])), "link": o["link"],
        **machine_record(o["k"], o["ratio"]), "compute_nodes": NODES,
        "runs": [vars(r) | {"hypothesis": "every"} for r in pure.plan_runs(HYPOTHESES[:1])],
        "wall_s_by_hypothesis": walls, "wall_s": round(sum(walls.values()), 1),
        "hypotheses_done": list(dict.fromkeys(records.hypothesis)),
        "hypotheses_not_run": [h.name for h in HYPOTHESES if h.name not in set(records.hypothesis)],
        "notes": {**meta.get("notes", {}), **{_key(p): p["notes"] for p in parts}},
        "not_run": {n: v for n, v in meta.get("not_run", {}).items() if not any(_covers(p, n, v) for p in parts)},
        "seed_image_runs": {**meta.get("seed_image_runs", {}), **seed_image_runs(records)},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    meta_path.write_text(json.dumps(meta, indent=1, default=str) + "\n")
    return csv


def machine_record(k: float, ratio: float) -> dict:
    """What a record of the seed's machine says of it (the contest's and the seed fixes'): the emulated machine at
    dilation k and CPU ratio `ratio`, this machine, and the deadline and idle timeout its pulls had (x k)."""
    m = machine_of()
    return {"machine": {"vcpus": m["vcpus"], "cpu_model": m["cpu_model"], "dilation": k, "ratio": ratio,
                        "this_machine_cores": os.cpu_count(), "host": platform.node(), "kernel": platform.release()},
            "deadline_s": DEADLINE_S * k, "idle_timeout_s": IDLE_TIMEOUT_S * k}


def _covers(part: dict, name: str, not_run: dict) -> bool:
    """Whether `part` made the runs a not-run entry of hypothesis `name` stands for (its checks; none: all)."""
    made = set(part.get("checks") or ()) or None
    return part["hypothesis"] == name and (made is None or set(not_run.get("checks") or ("every",)) <= made)


def seed_image_runs(records: pd.DataFrame) -> dict:
    """Which hypotheses the record holds the seed-image runs of (every such run of the plan, by settings and pull
    count), and which not."""
    need = {(r.settings, r.pulls) for r in pure.plan_runs(HYPOTHESES[:1]) if r.image == "seed"}
    have = {(h, st, int(n)) for h, st, n in zip(records.hypothesis, records.settings, records.pulls) if pd.notna(n)}
    done = [h.name for h in HYPOTHESES if need and all((h.name, st, n) in have for st, n in need)]
    return {"done": done, "not_run": [h.name for h in HYPOTHESES if h.name not in done]}


def budget(exp: Experiment, max_s: float, rates_from: Path | None = None) -> tuple[list[str], dict[str, dict]]:
    """The chosen hypotheses whose runs (option `checks`) are estimated to end within `max_s`, fastest first, and
    the others with their estimate and why: each at its own rates in a recorded contest (`rates_from`; default
    this contest's record), in the lab's time at this contest's k."""
    k, _, _ = dilation(exp)
    o = exp.options
    src = Path(rates_from) if rates_from else record_path(exp, k, DATA / exp.records)
    recs = pd.read_csv(src, keep_default_na=False, na_values={"value": [""], "nodes": [""], "pulls": [""]})
    keep, over = pure.within_budget(pure.plan_runs(chosen(o.get("only")), checks=o.get("checks")), exp.image_size,
                                    k, max_s, pure.recorded_rates(recs), o.get("seed_image"))
    return keep, {n: {**v, "checks": list(o.get("checks") or ()), "rates_from": str(src)} for n, v in over.items()}


def record_not_run(exp: Experiment, over: dict[str, dict]) -> Path:
    """Say in the record's JSON which hypotheses' runs were not made and why (budget's `over`): their checks stay
    "not measured" in the record, with the reason and the estimate beside them. A run that lands later clears it."""
    k, _, _ = dilation(exp)
    path = record_path(exp, k, DATA / exp.records).with_suffix(".json")
    meta = json.loads(path.read_text()) if path.exists() else {}
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meta["not_run"] = {**meta.get("not_run", {}), **{n: {**v, "when": when} for n, v in over.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=1, default=str) + "\n")
    return path


def _key(part: dict) -> str:
    """A part's name in the record's JSON: its hypothesis, and the seed's image where its lab pulled only that."""
    images = part.get("images", ("contest",))
    return part["hypothesis"] if "contest" in images else f"{part['hypothesis']} (the seed's image)"


def _aggregate(exp: Experiment, parts: list[dict]) -> dict:
    return {"parts": parts}


def _record(out: Outcome, where: Path) -> Path:
    """Every part merged into the record once more (each was saved as it ended); the record's path."""
    return _save(_labs(out.experiment)[0], out.result["parts"])


def text(out: Outcome) -> str:
    meta, nums, checks, judged = pure.recorded(out.saved)
    done = set(p["hypothesis"] for p in out.result["parts"])
    pd.set_option("display.width", 250)
    return "\n".join([
        f"the contest at the seed's scale: {meta['machine']['vcpus']} vCPUs of {meta['machine']['cpu_model']} at k = "
        f"{meta['k']:g} (ratio {meta['machine']['ratio']:.2f}), {meta['image_mib']} MiB, link {meta['link']}",
        meta["k_why"], "", nums.round(1).to_string(), "", checks.to_string(), "",
        f"this run: {', '.join(done)} in {out.wall_s} s; recorded: {', '.join(meta['hypotheses_done'])}",
        f"not run yet: {', '.join(meta['hypotheses_not_run']) or 'none'}",
        f"saved {out.saved} and {out.saved.with_suffix('.json')}"])


def estimate(exp: Experiment) -> tuple[float, float, str]:
    """(k, the estimated wall time in s, k's reason) for the declared contest, before any lab starts."""
    k, why, _ = dilation(exp)
    o = exp.options
    runs = pure.plan_runs(chosen(o.get("only")), checks=o.get("checks"))
    return k, pure.wall_estimate(runs, exp.image_size, k, seed_bytes=o.get("seed_image")), why


CONTEST = Experiment(
    "contest", "every hypothesis through the rulebook's runs on the seed's machine (8 vCPUs of opteron-6174, time-"
    "dilated), its 6 Gbit link and one image; judged alike", _measure,
    settings="sregistry-2018-10", compute_nodes=NODES, image_size=IMAGE_MIB * MiB, records="recorded",
    lab_name="contest", health=False, labs=_labs,
    steps=lambda e: len(pure.plan_runs(chosen(e.options.get("only")), checks=e.options.get("checks"))),
    aggregate=_aggregate, record=_record, text=text,
    options={"link": SEED_LINK, "only": None, "checks": None, "k": None})


def judged(records: pd.DataFrame) -> pd.DataFrame:
    """The contest's verdicts, a hypothesis a row (judge_results, then verdicts)."""
    return verdicts(judge_results(records))
