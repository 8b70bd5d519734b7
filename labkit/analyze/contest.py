"""The contest (issue 25): every hypothesis runs the same experiment at the seed's scale, judged by one rulebook.

    runs = plan_runs(HYPOTHESES)       # per hypothesis: exactly the rows of experiments(), in one order
    k, why = choose_k(8, ratio=2.585, cores=2)   # one dilation for the whole contest, said with its reason
    wall_estimate(runs, image_bytes, k)          # seconds, from the seed's own rates, before anything starts
    image_sizes(image_bytes, seed_bytes)         # the bytes a run pulls: the contest's image or the seed's own
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
from .hypotheses import (HYPOTHESES, FITS, MISSES, NOT_MEASURED, experiments, judge_results, observations,
                         rulebook_table, verdicts)

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


def plan_runs(hypotheses=None, obs: dict | None = None, checks=None) -> list[Run]:
    """Every hypothesis's runs: the rows of experiments() with a pull count, the same for every hypothesis; the
    rows without one joined to the first run under their settings (a settings with none gets a 1-pull run).
    `checks` (names of the rulebook's checks; None or empty: all): only the runs that measure one of them."""
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
    if checks:
        known = {c for r in rows for c in r["checks"]}
        if unknown := [c for c in checks if c not in known]:
            raise ValueError(f"--check {', '.join(unknown)}: no such check; known: {', '.join(sorted(known))}")
        rows = [r for r in rows if set(r["checks"]) & set(checks)]
    rank = {key: i for i, key in enumerate(ORDER)}
    rows.sort(key=lambda x: (rank.get(x["settings"], len(ORDER)), x["pulls"]))
    return [Run(h.name, r["settings"], r["pulls"], int(r["nodes"]), tuple(r["quantities"]), tuple(r["checks"]),
                r["image"]) for h in (hypotheses or HYPOTHESES) for r in rows]


def image_sizes(contest_bytes: int, seed_bytes: int | None = None, obs: dict | None = None) -> dict[str, int]:
    """The bytes each kind of run pulls (a Run's `image`): "contest" the contest's image; "seed" the seed's own
    (1.5 GiB, observations' experiment.image), or `seed_bytes` where given (option seed_image: a test's stand-in).
    The one place the seed's image size is chosen: the labs, the wall-time estimate and the record read it."""
    if seed_bytes is not None and seed_bytes <= 0:
        raise ValueError(f"seed_image: {seed_bytes} bytes; give a positive size or none (the seed's own)")
    return {"contest": contest_bytes, "seed": seed_bytes or (obs or observations())["experiment"]["image"]["bytes"]}


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


def wall_estimate(runs: list[Run], image_bytes: int, k: float, obs: dict | None = None,
                  seed_bytes: int | None = None, rates: dict | None = None) -> float:
    """Seconds the contest should take at dilation k: each run's bytes (image_sizes: the contest's image, or the
    seed's own / `seed_bytes`) at its rate / k, plus SETUP_S per lab (a hypothesis's, and its seed-image one).
    The rate: `rates[(hypothesis, settings, pulls)]` where given (MB/s in the seed's time, as recorded: a
    hypothesis's own measured rate), else the seed's own (seed_rate); a rival faster than the seed takes less."""
    sizes, rates = image_sizes(image_bytes, seed_bytes, obs), rates or {}

    def rate(r: Run) -> float:
        return rates.get((r.hypothesis, r.settings, r.pulls)) or seed_rate(r, obs)
    pulls = sum(r.pulls * sizes[r.image] / 1e6 / (rate(r) / k) for r in runs)
    return round(pulls + SETUP_S * len({(r.hypothesis, r.image) for r in runs}))     # a lab per hypothesis and image


def recorded_rates(records: pd.DataFrame) -> dict[tuple[str, str, int], float]:
    """Each hypothesis's measured MB/s (the seed's time, as recorded) by (hypothesis, settings, pulls): the median of
    its measured rows; what wall_estimate takes as `rates`."""
    r = records[(records.quantity == "MBps") & (records.source == "measured") & records.pulls.notna()]
    by = r.groupby(["hypothesis", "settings", "pulls"]).value
    return {(h, st, int(n)): float(v.median()) for (h, st, n), v in by}


def within_budget(runs: list[Run], image_bytes: int, k: float, max_s: float, rates: dict,
                  seed_bytes: int | None = None, obs: dict | None = None) -> tuple[list[str], dict[str, dict]]:
    """Which hypotheses' `runs` end within `max_s` seconds of wall time, each estimated at its own recorded rate
    (`rates`, recorded_rates; a hypothesis without one at a run's settings and pulls at the seed's own, said):
    (their names, fastest first; {name: {"estimate_s", "rates", "why"}} for the others)."""
    if max_s <= 0:
        raise ValueError(f"--max-minutes: {max_s / 60:g}; give a positive time")
    est, said = {}, {}
    for name in dict.fromkeys(r.hypothesis for r in runs):
        mine = [r for r in runs if r.hypothesis == name]
        est[name] = wall_estimate(mine, image_bytes, k, obs, seed_bytes, rates)
        said[name] = [f"{r.settings} x{r.pulls}: " + (
            f"its own {rates[(name, r.settings, r.pulls)]:g} MB/s" if (name, r.settings, r.pulls) in rates
            else f"the seed's {seed_rate(r, obs):g} MB/s (none of its own)") for r in mine]
    keep = sorted((n for n in est if est[n] <= max_s), key=est.get)
    over = {n: {"estimate_s": est[n], "rates": said[n],
                "why": f"estimated {est[n] / 60:.0f} min of wall time at k = {k:g} ({'; '.join(said[n])}, in the "
                       f"seed's time: / k here), over the {max_s / 60:g} min allowed"}
            for n in est if est[n] > max_s}
    return keep, over


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
    judged = not_run_why(judge_results(records), meta.get("not_run", {}))
    checks = verdicts(judged).replace({FITS: "✔", MISSES: "✘", "not measured": ""})
    checks["fits_all"] = checks.fits_all.map({True: "✔", False: ""})
    return meta, numbers(records), checks.T.rename(index=lambda c: c.replace("_", " ")), judged


def not_run_why(judged: pd.DataFrame, not_run: dict[str, dict]) -> pd.DataFrame:
    """judge_results' rows with the reason a run was not made (the record's `not_run`: {hypothesis: {"checks",
    "why"}}, as record_not_run wrote it) beside each check it left "not measured"."""
    out = judged.copy()
    for h, said in not_run.items():
        at = (out.hypothesis == h) & (out.verdict == NOT_MEASURED)
        if said.get("checks"):
            at &= out.check.isin(said["checks"])
        out.loc[at, "why"] = out.loc[at, "why"] + f"; not run: {said['why']}"
    return out


def misses(judged: pd.DataFrame) -> pd.DataFrame:
    """What each hypothesis misses and by how much, and what was not measured: judge_results' rows other than
    "fits", with the measured numbers, the check's rule and why a check could not be measured."""
    rules = {c: r for c, r in zip(rulebook_table().index, rulebook_table().rule)}
    out = judged[judged.verdict != FITS].copy()
    out["rule"] = out.check.map(rules)
    out["check"] = out.check.str.replace("_", " ")
    return out[["hypothesis", "check", "verdict", "measured", "rule", "why"]].reset_index(drop=True)
