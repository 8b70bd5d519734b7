"""The contest (issue 25): every hypothesis runs the same experiment at the seed's scale, judged by one rulebook.

    runs = plan_runs(HYPOTHESES)       # per hypothesis: exactly the rows of experiments(), in one order
    k, why = choose_k(8, ratio=2.585, cores=2)   # one dilation for the whole contest, said with its reason
    wall_estimate(runs, image_bytes, k)          # seconds, from the seed's own rates, before anything starts
    meta, numbers, checks = recorded(csv)        # a recorded contest read back and judged by today's rulebook

What every hypothesis measures is read off the checks (labkit.analyze.hypotheses.experiments): one run per
(settings, pulls), from the compute nodes the check asks; the quantities a check reads without a pull count
(the link's capacity, iperf3, the disk's bytes) are measured alongside the first run under their settings.
Pure: hypotheses and observations in, runs, numbers and words out.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config.dilation import Host, machine_problems
from .hypotheses import (HYPOTHESES, FITS, MISSES, experiments, judge_results, observations, rulebook_table,
                         verdicts)

SERVER_SHARE = 0.5     # of this machine's cores the emulated server may take in real time: the rest is the
                       # clients' (40 pulls from 8 compute nodes), the kernel's undilated softirq/TCP/NAT work
                       # and whatever else this shared machine runs meanwhile
SETUP_S = 60           # a lab's start, its settings applied four times, iperf3 twice: per hypothesis (measured ~45-70 s)
# the order a hypothesis's runs are made in: the settings it starts with first, then the ones applied live
ORDER = ("released", "poster", "poster-8-workers", "original")


@dataclass(frozen=True)
class Run:
    """One run of one hypothesis: `pulls` at once under the rulebook's `settings`, from `nodes` compute nodes;
    `quantities` recorded from it (with the link's, iperf3's and the disk's where a check reads them without a
    pull count), `checks` the checks that read them."""
    hypothesis: str
    settings: str
    pulls: int
    nodes: int
    quantities: tuple[str, ...]
    checks: tuple[str, ...]
    image: str = "contest"         # "contest": the contest's image; "seed": the seed's own (a check's `image`)


def plan_runs(hypotheses=None, obs: dict | None = None) -> list[Run]:
    """Every hypothesis's runs: the rows of experiments() with a pull count, the same for every hypothesis; the
    rows without one joined to the first run under their settings (a settings with none gets a 1-pull run)."""
    need = experiments(obs).to_dict("records")
    rows: list[dict] = []
    for r in need:
        if pd.notna(r["pulls"]):
            rows.append({**r, "pulls": int(r["pulls"]), "quantities": list(r["quantities"]), "checks": list(r["checks"])})
    for r in need:
        if pd.isna(r["pulls"]):
            to = next((x for x in rows if x["settings"] == r["settings"] and x["image"] == r["image"]), None)
            if to is None:
                to = {**r, "pulls": 1, "quantities": [], "checks": []}
                rows.append(to)
            to["nodes"] = max(to["nodes"], r["nodes"])
            to["quantities"] += [q for q in r["quantities"] if q not in to["quantities"]]
            to["checks"] += [c for c in r["checks"] if c not in to["checks"]]
    rank = {key: i for i, key in enumerate(ORDER)}
    rows.sort(key=lambda x: (rank.get(x["settings"], len(ORDER)), x["pulls"]))
    return [Run(h.name, r["settings"], r["pulls"], int(r["nodes"]), tuple(r["quantities"]), tuple(r["checks"]),
                r["image"]) for h in (hypotheses or HYPOTHESES) for r in rows]


def image_of(run: Run, contest_bytes: int, obs: dict | None = None) -> int:
    """The image a run pulls: the contest's, or the seed's own 1.5 GiB where its check says so."""
    return (obs or observations())["experiment"]["image"]["bytes"] if run.image == "seed" else contest_bytes


def choose_k(vcpus: int, ratio: float, cores: int, share: float = SERVER_SHARE) -> tuple[float, str]:
    """The smallest whole k at which the emulated server (`vcpus` cores, each 1/ratio of this machine's) takes at
    most `share` of this machine's `cores` in real time, and what it leaves; never one machine_problems refuses."""
    if vcpus < 1 or cores < 1 or ratio < 1 or not 0 < share <= 1:
        raise ValueError(f"choose_k: vcpus {vcpus}, ratio {ratio}, cores {cores}, share {share}: need vcpus, "
                         "cores >= 1, ratio >= 1, 0 < share <= 1")
    need = vcpus / ratio
    k = max(1, math.ceil(need / (share * cores) - 1e-9))
    while machine_problems(vcpus, k, Host(cores, ratio)):
        k += 1
    why = (f"k = {k}: {vcpus} emulated cores at 1/{ratio:.2f} of this machine's core need {need:.2f} of its cores "
           f"in real time, more than its {cores}; at k = {k} they take {need / k:.2f} ({need / k / cores:.0%}), the "
           f"smallest whole k that leaves at least {1 - share:.0%} to the clients (their CPU / k), the kernel's "
           "undilated work and the machine's other load")
    return float(k), why


def seed_rate(run: Run, obs: dict | None = None) -> float:
    """The seed's own MB/s for a run's pull count (what the wall-time estimate assumes): one pull's rate up to
    5 pulls (one slow core), its 40-pull aggregate from 40."""
    obs = obs or observations()
    many = {int(n): v for n, v in obs["aggregate_MBps"].items()}
    return many.get(run.pulls, obs["single_pull_MBps"])


def wall_estimate(runs: list[Run], image_bytes: int, k: float, obs: dict | None = None) -> float:
    """Seconds the contest should take at dilation k if every hypothesis pulled at the seed's own rates (each
    run's bytes / (its seed rate / k)), plus SETUP_S per lab (a hypothesis's, and its seed-image one). A rival faster than the seed takes less."""
    pulls = sum(r.pulls * image_of(r, image_bytes, obs) / 1e6 / (seed_rate(r, obs) / k) for r in runs)
    return round(pulls + SETUP_S * len({(r.hypothesis, r.image) for r in runs}))     # a lab per hypothesis and image


# --- a recorded contest, read back -------------------------------------------------------------------------------
NUMBERS = (("MBps", "released", 1, "1 pull MB/s"), ("MBps", "poster", 40, "40 pulls MB/s"),
           ("MBps", "poster-8-workers", 40, "40 pulls, 8 workers"), ("failures", "original", 5, "failed of 5 (original)"),
           ("machine_pct", "released", 1, "machine % (1 pull)"), ("machine_pct", "poster", 40, "machine % (40)"),
           ("disk_read_MB", "released", 1, "disk read MB"), ("iperf_vm_gbit", "released", 1, "iperf3 VM Gbit/s"),
           ("iperf_uwsgi_gbit", "released", 1, "iperf3 uwsgi Gbit/s"))


def numbers(records: pd.DataFrame) -> pd.DataFrame:
    """A hypothesis a row: what each run measured, with lk.scale's prediction beside each rate ("(pred)")."""
    out = {}
    for h in dict.fromkeys(records.hypothesis):
        mine, row = records[records.hypothesis == h], {}
        for q, st, n, label in NUMBERS:
            at = mine[(mine.quantity == q) & (mine.settings == st) & (mine.pulls == n)]
            meas = at[at.source == "measured"].value
            if len(meas):
                row[label] = float(meas.sum()) if q == "failures" else float(meas.median())
            pred = at[at.source == "predicted"].value
            if len(pred):
                row[f"{label} (pred)"] = float(pred.median())
        out[h] = row
    cols = [c for _, _, _, label in NUMBERS for c in (label, f"{label} (pred)")]
    table = pd.DataFrame.from_dict(out, orient="index")
    return table.reindex(columns=[c for c in cols if c in table.columns])


def mechanisms_seen(records: pd.DataFrame) -> pd.DataFrame:
    """Failed pulls by hypothesis, settings, pulls and the mechanism they were attributed to."""
    f = records[(records.quantity == "failures") & (records.source == "measured") & (records.value > 0)]
    return f.groupby(["hypothesis", "settings", "pulls", "mechanism"], dropna=False).value.sum().astype(int).reset_index()


def recorded(csv: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A recorded contest (data/recorded/contest-<size>MiB-k<k>.csv, its long records, and the .json beside it)
    judged again by today's rulebook: (the run's facts, the numbers a hypothesis a row, the checks a check a row
    with ✔ / ✘ / blank for not measured, the judged rows with what was measured and why not)."""
    meta = json.loads(Path(csv).with_suffix(".json").read_text())
    records = pd.read_csv(csv, keep_default_na=False, na_values={"value": [""], "nodes": [""], "pulls": [""]})
    records["mechanism"] = records.mechanism.astype(str)
    judged = judge_results(records)
    checks = verdicts(judged).replace({FITS: "✔", MISSES: "✘", "not measured": ""})
    checks["fits_all"] = checks.fits_all.map({True: "✔", False: ""})
    return meta, numbers(records), checks.T.rename(index=lambda c: c.replace("_", " ")), judged


def misses(judged: pd.DataFrame) -> pd.DataFrame:
    """What each hypothesis misses and by how much, and what was not measured: judge_results' rows other than
    "fits", with the measured numbers, the check's rule and why a check could not be measured."""
    rules = {c: r for c, r in zip(rulebook_table().index, rulebook_table().rule)}
    out = judged[judged.verdict != FITS].copy()
    out["rule"] = out.check.map(rules)
    out["check"] = out.check.str.replace("_", " ")
    return out[["hypothesis", "check", "verdict", "measured", "rule", "why"]].reset_index(drop=True)
