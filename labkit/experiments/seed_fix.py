"""The seed's case as the lab now understands it (notebook 04): sregistry's https setup (0d1274df) on the seed's
machine, 8 vCPUs of opteron-6174 time-dilated as the contest runs it (labkit.experiments.contest), his CentOS 7
clients (TLS 1.2, OpenSSL 1.0.2k's suites: labkit.config.tls_clients), and the fixes those clients can use.

    outcome = run(SEED_FIXES)                       # labkit run seed-fixes: every fix, 1 pull x3 and 40 pulls x1
    outcome = run(SEED_FIXES.with_(parallels=(1,), options={"only": ("AES",)}))   # one fix, one pull count
    table = fixes_table(recorded())                 # the record as a table, lk.scale beside each median

Each fix runs on the settings in force when the seed made the observation it answers (as the contest does):
2018-10-https for one pull, seed-poster-https for 40 (from the contest's 8 compute nodes), at the contest's k on
the contest's lab (128 MiB, 6 Gbit link, loop disk, warm cache). Every run is appended to
data/recorded/seed-fixes-<size>MiB-k<k>.csv (a row per run, settings per row) with its JSON beside (k, the CPU
ratio, the machine, wall times, notes), so runs made one lock hold at a time add up.

For a notebook's lab that is already up, `seed_fixes(lab)` measures the candidates live (one run each) and
`seed_bundle(table)` writes the winner's combination as a checked bundle.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from ..analyze.hypotheses import HYPOTHESES, SEED_LINK
from ..analyze.noise import FLOOR
from ..analyze.scale import machine_view, predict
from ..analyze.seed_fix import AS_IT_WAS, RECORD_COLUMNS, fixes_table, render
from ..config.overrides import apply_overrides
from ..config.presets import preset
from ..config.settings import LabSettings
from ..config.tls_fixes import FIXES, Fix
from ..lab.lab import DATA, Lab
from ..measure.pull_at import pull_at
from ..units import MiB, mib
from .bundles import export_bundle
from .contest import CONTEST, DEADLINE_S, IDLE_TIMEOUT_S, IMAGE_MIB, NODES, dilation, machine_record
from .contest import settings_for
from .declare import Experiment, Outcome, Progress

TLS = next(h for h in HYPOTHESES if h.https)      # the hypothesis the seed case is: TLS in software on the Opteron
CLIENTS = ("client.tls_offer=centos7",)           # his compute nodes' ClientHello: TLS 1.2, no ChaCha20-Poly1305
CONTEST_K = 4.0                                   # the contest's recorded k (data/recorded/contest-128MiB-k4.json)
VCPUS = 8                                         # the seed's VM (data/seed/observations.json)
_FIX = {f.name: f for f in FIXES}
PLAIN, AES128 = _FIX["plain http on the cluster network"], _FIX["AES-128-GCM first"]
WORKERS = Fix(f"worker_processes = vCPUs ({VCPUS})", {"nginx": {"worker_processes": VCPUS}},
              "N pulls, not one (one TLS connection = one worker on one core)", "every client")
ACCEL = Fix("X-Accel-Redirect", {"app": {"serve_mode": "accel"}}, "uwsgi's part only: nginx still encrypts every "
            "byte", "every client")


def combined(name: str, *fixes: Fix) -> Fix:
    """Several fixes as one (their changes merged by settings group)."""
    changes: dict[str, dict] = {}
    for f in fixes:
        for group, fields in f.changes.items():
            changes.setdefault(group, {}).update(fields)
    return Fix(name, changes, "one pull and N", " and ".join(f.clients for f in fixes[:1]))


# what the bundle ships for his clients, by the fix that wins one pull: that fix, nginx's workers = his vCPUs
# (40 pulls need every core: one TLS connection is one worker), X-Accel-Redirect (nginx serves the file itself)
SHIPPED = {PLAIN.name: combined(f"bundle: plain http + {ACCEL.name} + {VCPUS} workers", PLAIN, ACCEL, WORKERS),
           AES128.name: combined(f"bundle keeping TLS: {AES128.name} + {ACCEL.name} + {VCPUS} workers",
                                 AES128, ACCEL, WORKERS)}
CANDIDATES: dict[str, Fix | None] = {AS_IT_WAS: None, PLAIN.name: PLAIN, AES128.name: AES128, WORKERS.name: WORKERS,
                                     ACCEL.name: ACCEL, **{f.name: f for f in SHIPPED.values()}}
# the seed's compute nodes: CentOS 7's OpenSSL 1.0.2k has no ChaCha20-Poly1305 (labkit.config.tls_clients)
NOT_FOR_CENTOS7 = {"ChaCha20-Poly1305 preferred"}


def seed_settings(k: float | None = None, key: str = "released", link: str = SEED_LINK) -> LabSettings:
    """The seed's settings in force for `key` (released: sregistry-2018-10-https; poster: seed-poster-https) on
    his machine at dilation k (None: the contest's), with his clients' TLS offer."""
    return apply_overrides(settings_for(TLS, key, k or CONTEST_K, link), list(CLIENTS))


def seed_lab(name: str, image_mib: int = 16, k: float | None = None, compute_nodes: int = 1) -> Lab:
    """A lab (not yet up) of the seed's case: his https settings on his machine, his link, his clients."""
    return Lab(name, seed_settings(k), image_size=image_mib * MiB, compute_nodes=compute_nodes, quiet=True)


def candidate(name: str, s: LabSettings) -> LabSettings:
    """Settings `s` with the candidate `name` applied (as it was: unchanged)."""
    if name not in CANDIDATES:
        raise ValueError(f"no fix {name!r}; known: {'; '.join(CANDIDATES)}")
    fix = CANDIDATES[name]
    return s if fix is None else fix.apply(s)


def chosen(only) -> list[str]:
    """The candidates named exactly by `only`, else those whose name contains any of it (case-insensitive; empty:
    all), refused by name."""
    if not only:
        return list(CANDIDATES)
    words = {w.lower() for w in only}
    out = [c for c in CANDIDATES if c.lower() in words] or [c for c in CANDIDATES if any(w in c.lower() for w in words)]
    if not out:
        raise ValueError(f"--only {', '.join(only)}: no such fix; known: {'; '.join(CANDIDATES)}")
    return out


def key_for(pulls: int) -> str:
    """The settings in force when the seed saw `pulls` pulls: the released https setup for one (and his 5),
    his own changes (seed-poster-https) for 40."""
    return "poster" if pulls >= 40 else "released"


# --- the experiment, declared -------------------------------------------------------------------------------
def _labs(exp: Experiment) -> list[Experiment]:
    k, why, ratio = dilation(CONTEST.with_(options={"k": exp.options.get("k") or CONTEST_K}))
    only = chosen(exp.options.get("only"))
    return [exp.with_(settings=seed_settings(k, link=exp.options["link"]),
                      options={"k": k, "k_why": why, "ratio": ratio, "fixes": tuple(only)})]


def _measure(lab: Lab, exp: Experiment, progress: Progress) -> dict:
    o = exp.options
    k, t0, rows, notes = o["k"], time.perf_counter(), [], [*lab.notes]
    lab.storage.warm()                 # the seed's registry had served its images before: no cold first read
    for name in o["fixes"]:
        for n in exp.parallels:
            s = candidate(name, apply_overrides(seed_settings(k, key_for(n), o["link"]), list(exp.overrides)))
            lab.apply(s)
            nodes = min(n, len(lab.path.compute))
            for r in range(exp.repeats if n == 1 else o.get("many_repeats") or 1):
                progress.bar.set_postfix_str(f"{name}: {n} pull(s), run {r + 1}")
                t = time.perf_counter()
                pr = pull_at(lab, parallel=n, verify="length", deadline=DEADLINE_S, timeout=IDLE_TIMEOUT_S,
                             spread=n > 1)
                row = run_row(name, key_for(n), n, nodes, r, pr, s, round(time.perf_counter() - t, 1))
                rows.append(row)
                notes += [x for x in pr.notes() if x not in notes]
                _save(exp, [row], [])         # on disk as each run ends: a run stopped later keeps what finished
                progress.step()
    return {"rows": rows, "notes": notes, "wall_s": round(time.perf_counter() - t0, 1)}


def run_row(name: str, key: str, pulls: int, nodes: int, run: int, pr, s: LabSettings, wall: float) -> dict:
    """One run's record (RECORD_COLUMNS), in the seed's time: measured MB/s, and lk.scale's prediction from the
    same run's CPU per byte beside it."""
    back = pr.row()
    settings = s.model_dump(mode="json")
    v, by = predict(back, pr.path, pr.ratio, settings, pulls, VCPUS)
    fix = CANDIDATES[name]
    return {"fix": name, "settings": key, "pulls": pulls, "nodes": nodes, "run": run,
            "MBps": round(float(back["MBps"]), 1), "predicted_MBps": round(float(v), 1), "predicted_by": by,
            "failures": pr.failures, "machine_pct": round(machine_view(back, pr.path, pr.ratio, VCPUS)["machine_pct"], 1),
            "tls": "; ".join(sorted({r.tls for r in pr.results if r.tls})),
            "changes": json.dumps(fix.changes if fix else {}, sort_keys=True), "k": pr.k, "ratio": pr.ratio,
            "wall_s": wall, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def record_path(exp: Experiment, k: float, where: Path) -> Path:
    return Path(exp.options.get("out_dir") or where) / f"seed-fixes-{int(mib(exp.image_size))}MiB-k{k:g}.csv"


def _save(exp: Experiment, rows: list[dict], notes: list[str], wall: float | None = None) -> Path:
    """Append `rows` to the record (a row per run) and update the JSON beside it."""
    o = exp.options
    csv = record_path(exp, o["k"], DATA / exp.records)
    csv.parent.mkdir(parents=True, exist_ok=True)
    if rows:
        pd.DataFrame(rows, columns=list(RECORD_COLUMNS)).to_csv(csv, mode="a", header=not csv.exists(), index=False)
    meta_path = csv.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.update({
        "about": SEED_FIXES.about, "k": o["k"], "k_why": o["k_why"], "image_mib": int(mib(exp.image_size)),
        "link": o["link"], "compute_nodes": exp.compute_nodes, "clients": list(CLIENTS),
        **machine_record(o["k"], o["ratio"]),
        "settings": {"1 pull": "released (sregistry-2018-10-https)", "40 pulls": "poster (seed-poster-https)"},
        "fixes": {name: (f.changes if f else {}) for name, f in CANDIDATES.items()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    if wall is not None:
        meta["parts"] = [*meta.get("parts", []), {"fixes": list(o["fixes"]), "wall_s": wall, "notes": notes}]
        meta["wall_s"] = round(sum(p["wall_s"] for p in meta["parts"]), 1)
    meta_path.write_text(json.dumps(meta, indent=1, default=str) + "\n")
    return csv


def _record(out: Outcome, where: Path) -> Path:
    part = out.result
    return _save(_labs(out.experiment)[0], [], part["notes"], out.wall_s)


def recorded(path: Path | None = None) -> tuple[dict, pd.DataFrame]:
    """(the record's JSON, its runs) for SEED_FIXES's record (default: the contest's size and k)."""
    csv = path or DATA / "recorded" / f"seed-fixes-{IMAGE_MIB}MiB-k{CONTEST_K:g}.csv"
    meta = json.loads(csv.with_suffix(".json").read_text())
    return meta, pd.read_csv(csv, keep_default_na=False, na_values={"MBps": [""], "predicted_MBps": [""]})


def text(out: Outcome) -> str:
    meta, runs = recorded(out.saved)
    m = meta["machine"]
    return "\n".join([
        f"the seed's fixes at his scale: {m['vcpus']} vCPUs of {m['cpu_model']} at k = {meta['k']:g} (CPU ratio "
        f"{m['ratio']:.2f}), {meta['image_mib']} MiB, link {meta['link']}, his CentOS 7 clients (TLS 1.2)",
        "1 pull under 2018-10-https, 40 pulls under seed-poster-https from "
        f"{meta['compute_nodes']} compute nodes; MB/s read back x k, lk.scale's prediction beside each", "",
        render(fixes_table(runs)), "",
        f"this run: {', '.join(dict.fromkeys(r['fix'] for r in out.result['rows'])) or 'nothing'} in {out.wall_s} s; "
        f"the record's wall time {meta.get('wall_s', out.wall_s)} s",
        f"saved {out.saved} and {out.saved.with_suffix('.json')}"])


SEED_FIXES = Experiment(
    "seed-fixes", "the fixes the seed's CentOS 7 clients can use, on his machine (8 vCPUs of opteron-6174, time-"
    "dilated as the contest), 1 pull under 2018-10-https and 40 under seed-poster-https", _measure,
    settings="sregistry-2018-10-https", compute_nodes=NODES, parallels=(1, 40), repeats=3,
    image_size=IMAGE_MIB * MiB, records="recorded", lab_name="seedfix-fixes", health=False, labs=_labs,
    steps=lambda e: len(chosen(e.options.get("only"))) * sum(e.repeats if n == 1 else e.options.get("many_repeats")
                                                             or 1 for n in e.parallels),
    record=_record, text=text,
    options={"link": SEED_LINK, "only": None, "k": None, "many_repeats": 1})


# --- live, on a notebook's lab --------------------------------------------------------------------------------
LIVE = (AS_IT_WAS, AES128.name, PLAIN.name)


def seed_fixes(lab: Lab, parallel: int = 5, candidates: tuple[str, ...] = LIVE) -> pd.DataFrame:
    """Each candidate applied to the lab's settings, one pull and `parallel` at once, read back into the seed's
    time (one run each); the lab is left as it was. A row per candidate: MB/s, the gain over as it was,
    failures, the TLS negotiated, whether the seed's CentOS 7 clients can use it."""
    base, rows = lab.settings, []
    try:
        for name in candidates:
            lab.apply(candidate(name, base))
            got = {n: pull_at(lab, parallel=n, verify="length", deadline=DEADLINE_S, timeout=IDLE_TIMEOUT_S)
                   for n in (1, parallel)}
            rows.append({"fix": name, "1 pull MB/s": got[1].row()["MBps"],
                         f"{parallel} pulls MB/s": got[parallel].row()["MBps"],
                         "failed": sum(p.failures for p in got.values()),
                         "TLS negotiated": "; ".join(sorted({r.tls for r in got[1].results if r.tls})) or "none (http)",
                         "CentOS 7 clients": name not in NOT_FOR_CENTOS7})
    finally:
        lab.apply(base)
    table = pd.DataFrame(rows)
    first = table.iloc[0]
    table["gain, 1 pull"] = (table["1 pull MB/s"] / first["1 pull MB/s"]).round(2)
    table[f"gain, {parallel} pulls"] = (table[f"{parallel} pulls MB/s"] / first[f"{parallel} pulls MB/s"]).round(2)
    table.attrs["k"] = lab.k
    return table


def winner(table: pd.DataFrame) -> str:
    """The single fix with the largest one-pull gain beyond the noise among those the seed's clients can use and
    the bundle can ship ('' if none). `table`: seed_fixes's, or fixes_table's (a recorded table)."""
    gain = "gain, 1 pull" if "gain, 1 pull" in table else "1 pull x as it was"
    ok = table[table.fix.isin(SHIPPED) & ~table.fix.isin(NOT_FOR_CENTOS7) & (table[gain] > 1 + FLOOR)]
    return "" if ok.empty else str(ok.sort_values(gain, ascending=False).fix.iloc[0])


def seed_bundle(table: pd.DataFrame, out_dir: Path | None = None, label: str = "seed-fix") -> tuple[Path | None, str, list[str]]:
    """The winner's combination (SHIPPED: the fix, X-Accel-Redirect, nginx's workers = his vCPUs) on sregistry's
    https preset as a checked bundle (nginx -t, uwsgi), the measurements in its README: (its directory or None,
    the winner, the notes)."""
    best = winner(table)
    if not best:
        return None, "", ["no fix his clients can use gained beyond the noise: no bundle written"]
    gain = "gain, 1 pull" if "gain, 1 pull" in table else "1 pull x as it was"
    gains = table.set_index("fix")[gain]
    ship = SHIPPED[best]
    s = ship.apply(preset("sregistry-2018-10-https"))
    notes = [f"{best}: one pull x{gains[best]:.1f} on the seed's machine (8 vCPUs of opteron-6174, time-dilated), "
             f"his CentOS 7 clients (TLS 1.2); shipped as {ship.name}",
             f"{ACCEL.name}: x{gains.get(ACCEL.name, float('nan')):.1f} alone: it frees uwsgi, but nginx still "
             "encrypts every byte"]
    if best == PLAIN.name:
        notes.append("plain http only where the cluster network is trusted; else AES-128-GCM first "
                     f"(x{gains.get(AES128.name, float('nan')):.1f}) keeps TLS: {SHIPPED[AES128.name].name}"
                     + ("" if SHIPPED[AES128.name].name in set(gains.index) else " (not measured as one)"))
    bundle, _ = export_bundle(s, out_dir or DATA / "bundles", label, measurements=table, notes=notes)
    return bundle, best, notes
