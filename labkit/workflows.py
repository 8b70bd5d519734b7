"""The diagnosis as steps: survey, look inside the windows where the verdict points, compare settings, export;
and the measurements that come with their judgement (a probe, a storm): measured by labkit.measure, read by
labkit.analyze, put together here (neither of those imports the other)."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from .measure.capture import capture_pull
from .bundle.export import WHY, export_bundle
from .lab.lab import DATA, Lab
from .present.report import (Section, bundle_section, flows_section, opening, survey_section, surveys_headline,
                             trials_headline, trials_section, write_report)
from .config.presets import PRESETS
from .config.settings import LabSettings, as_text
from .measure.survey import run_survey
from .records import Probe, Survey
from .measure.sweep import run_presets
from .analyze.tcpflow import FlowDirection, analyze
from .analyze.windows import FlowVerdict, flow_verdict
from .analyze.noise import Rate
from .analyze.remedies import Fix, Remedy, Trial, winner
from .analyze.verdict import verdict
from .analyze.hypotheses import DEADLINE_S
from .config.overrides import apply_overrides, parse_override
from .errors import SettingsError
from .measure.pull_at import pull_at
from .analyze.probe_verdict import judge_probe
from .analyze.storm_tables import Storm, storm_of
from .measure import probe as _probe, locust_storm as _storm

def capture_points_for(survey: Survey) -> list[str]:
    """The connections around the stage that loses throughput (every one a client's pull crosses if none does),
    on the path the survey was measured on."""
    hop, path = verdict(survey).hop, survey.path
    return list(path.stage(hop).capture if hop else path.client_vantage.crosses)


def look_inside(lab: Lab, points: list[str] | None = None, **kw) -> list[tuple[str, FlowDirection, FlowVerdict]]:
    """One pull by the client captured at `points`; per point the flow carrying the image, and its verdict."""
    cap = capture_pull(lab, points=points, **kw)
    out = []
    for st in cap.stats:
        flows = analyze(st.pcap)
        if flows:
            main = flows[0]
            out.append((st.point, main, flow_verdict(main, cap.tcp_info.get(st.point))))
    return out


def seed_case(lab: Lab, parallels: list[int], names: list[str] | None = None, **kw) -> pd.DataFrame:
    """sregistry as shipped vs the seed poster's tweaks vs the recommended set, at each parallel count."""
    presets = {n: PRESETS[n] for n in (names or ["sregistry-2018-10", "seed-poster", "recommended"])}
    return run_presets(lab, presets, parallels, **kw)


def full_report(image_mib: int = 64, parallels: tuple[int, ...] = (1, 5), lab_name: str = "report",
                out: Path | None = None, progress: bool = True, settings: LabSettings | None = None,
                label: str = "sregistry-2018-10") -> Path:
    """Everything in one HTML: survey (as shipped, or `settings`), windows where it points, presets compared, the bundle."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with Lab(lab_name, settings or PRESETS["sregistry-2018-10"], image_size=image_mib * 2**20,
             quiet=not progress) as lab:
        survey = run_survey(lab, parallel=max(parallels), progress=progress)
        survey.save(DATA / "results", f"survey-{label}")
        flows = look_inside(lab, capture_points_for(survey))
        trials = seed_case(lab, list(parallels), progress=progress)
    trials.drop(columns=["settings"]).to_csv(DATA / "results" / f"{stamp}-presets.csv", index=False)
    table = trials.pivot_table(index="preset", columns="parallel", values="parallel_MBps").reset_index()
    table.columns = ["preset", *[f"{c} parallel (MB/s)" for c in table.columns[1:]]]
    bundle, _ = export_bundle(PRESETS["recommended"], DATA / "bundles", "recommended", measurements=table,
                              image_mib=image_mib)
    v = verdict(survey, flows=flows)
    top, line = opening(survey, v)
    sections: list[Section] = [survey_section(survey, v=v), flows_section(flows), trials_section(trials),
                               bundle_section(bundle)]
    return write_report(out or DATA / "reports" / f"{stamp}-report.html", sections, lead=[trials_headline(trials)],
                        top=top, headline_text=line)


def survey_report(survey: Survey, out: Path | None = None, fix=None, title: str = "servelab: why pulls are slow") -> Path:
    """One survey as an HTML report (no lab needed): the path with the binding stage marked, the headline,
    the table and the verdict in the CLI's words, and the remedies tried when `fix` is given."""
    v = verdict(survey)
    top, line = opening(survey, v, fix)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return write_report(out or DATA / "reports" / f"{stamp}-survey.html", [survey_section(survey, v=v, fix=fix)],
                        title=title, top=top, headline_text=line)


def before_after(lab: Lab, before: str, after: str, parallel: int = 5, **kw) -> tuple[Survey, Survey, pd.DataFrame]:
    """The survey under preset `before`, then under `after`, and their MB/s side by side per hop, with what
    `after` gives for each MB/s of `before`. A row one survey has not (a stage that carries no image under
    that preset) reads so in words."""
    surveys = []
    for name in (before, after):
        lab.apply(PRESETS[name])
        surveys.append(run_survey(lab, parallel=parallel, **kw))
    keys = ["kind", "point", "parallel"]
    cols = {name: f"MB/s, {name}" for name in (before, after)}
    rows = pd.concat([s.table[keys] for s in surveys]).drop_duplicates()          # in the surveys' own order
    table = rows.merge(surveys[0].table[[*keys, "MBps"]].rename(columns={"MBps": cols[before]}), on=keys, how="left")
    table = table.merge(surveys[1].table[[*keys, "MBps"]].rename(columns={"MBps": cols[after]}), on=keys, how="left")
    ratio = table[cols[after]] / table[cols[before]]
    table[f"{after} ÷ {before}"] = ratio.map(lambda x: f"{x:.1f}x" if pd.notna(x) and x != float("inf") else "")
    for name, col in cols.items():
        table[col] = table[col].astype(object).where(table[col].notna(), f"not on the path under {name}")
    return surveys[0], surveys[1], table


def seed_case_report(before: Survey, after: Survey, trials: pd.DataFrame, bundle: Path,
                     out: Path | None = None) -> Path:
    """The seed case as one HTML file: both surveys, the presets compared, the bundle."""
    sections = [survey_section(before, "Before"), survey_section(after, "After"), trials_section(trials),
                bundle_section(bundle)]
    top, line = opening(before)
    lead = [surveys_headline(before, after), trials_headline(trials)]
    return write_report(out or DATA / "reports" / "seed-case.html", sections, lead=lead, top=top, headline_text=line)


def hypothesis_sizes(image_mib: int, hypotheses=None) -> dict[int, list]:
    """The hypotheses grouped by the image each runs at: `image_mib`, or its own minimum if larger."""
    from .analyze.hypotheses import HYPOTHESES
    out: dict[int, list] = {}
    for h in hypotheses or HYPOTHESES:
        out.setdefault(max(image_mib, h.min_image_mib), []).append(h)
    return dict(sorted(out.items()))


def run_hypotheses(parallels: list[int], image_mib: int = 32, lab_name: str = "hyp", hypotheses=None,
                   link: str | None = None, progress: bool = True, deadline: float = DEADLINE_S,
                   compute_nodes: int = 1) -> tuple[pd.DataFrame, float]:
    """Each hypothesis made real in the lab (on the seed's link), measured at 1 and N pulls, judged.

    Each runs with an image of `image_mib`, or of its own `min_image_mib` if that is larger (a lab
    per image size, one after another). A parallel count whose files would not fit where the
    client writes them is left out of that row, its note says so. Returns the judged table
    (analyze.hypotheses.judge) and the link's iperf3 capacity it is judged against (the first lab's).
    """
    from .progress import bar as tqdm

    from .analyze.hypotheses import SEED_LINK, judge
    from .measure import iperf
    link = link or SEED_LINK
    rows, capacity = [], None
    groups = hypothesis_sizes(image_mib, hypotheses)
    with tqdm(total=sum(map(len, groups.values())), desc="hypotheses", disable=not progress, leave=False) as bar:
        for size, hs in groups.items():
            with Lab(lab_name, image_size=size * 2**20, quiet=True, compute_nodes=compute_nodes) as lab:
                path = lab.plan.path
                hop = path.hop(path.client_stage.hop)        # the client's hop: from the compute node to the VM
                # the shaped links on its way (one link, or a switch's uplink with several compute nodes)
                seed_link = [f"links.{lk.name}={link}" for lk in path.links_between(hop.server, hop.client)
                             if lk.shaped]
                if capacity is None:
                    lab.apply(hs[0].settings(*seed_link))
                    capacity = iperf.run(*lab.plan.endpoint(hop), 2).MBps
                for h in hs:
                    bar.set_postfix_str(f"{h.name} ({size} MiB)")
                    rows.append(_hypothesis_row(lab, h, seed_link, parallels, deadline))
                    bar.update()
    return judge(pd.DataFrame(rows), capacity), capacity


def _hypothesis_row(lab: Lab, h, seed_link: list[str], parallels: list[int], deadline: float) -> dict:
    from .analyze.scale import machine_view, predict
    from .errors import LabError
    from .measure.clients import check_room
    lab.apply(h.settings(*seed_link))
    lab.warm_image()              # the seed's registry had served its images before: no cold first read
    runs, left_out = [], []
    for n in sorted(set([1, *parallels])):
        if lab.settings.client.dest != "memory" or lab.settings.client.kind != "labkit":
            try:
                check_room(lab.client_storage.dest_root, n, lab.image.size)
            except LabError as exc:
                left_out.append(f"{n} pulls left out: {exc}")
                continue
        runs.append(pull_at(lab, parallel=n, verify="length", deadline=deadline))
    one, top = runs[0], runs[-1]
    ratio = lab.core.emu.ratio if lab.core.emu else 1.0
    disk = [r.row().get("disk_read_MB") for r in runs]
    seed_many = {}
    if h.many_base and top.parallel > 1:
        v, by = predict(top.row(), lab.plan.path, ratio, h.many_settings().model_dump(mode="json"),
                        top.parallel, SEED_VCPUS)
        seed_many = {"top_seed_MBps": v, "top_seed_by": f"{by}, predicted on {SEED_VCPUS} vCPUs under {h.many_base}"}
    return {"hypothesis": h.name, "explains": h.explains, "image_mib": lab.image.size // 2**20,
            "min_image_mib": h.min_image_mib, "single_MBps": round(one.mbps, 1),
            "single_cpu": one.busiest_cpu, "busiest": one.busiest,
            # dstat's whole-machine view on the seed's 8 vCPUs (labkit.analyze.scale.machine_view)
            "single_machine_pct": machine_view(one.row(), lab.plan.path, ratio, SEED_VCPUS)["machine_pct"],
            **{f"x{r.parallel}_MBps": round(r.mbps, 1) for r in runs[1:]},
            "top_MBps": round(top.mbps, 1), "top_parallel": top.parallel, **seed_many,
            "failures": sum(r.failures for r in runs),
            "disk_read_MB": float("nan") if any(d is None for d in disk) else round(sum(disk), 1),
            "client_write_MB": round(sum(r.row().get("client_write_MB") or 0 for r in runs), 1),
            "served_MB": round(sum(sum(x.bytes for x in r.results) for r in runs) / 1e6, 1),
            "note": "; ".join(left_out), "fix": h.fix}


SEED_VCPUS = 8       # the seed's VM: "8 Cores" on 2 x Opteron 6174 (shared/seed/sregistry-serving-performance.txt)


def tls_seed_case(image_mib: int = 1536, parallel: int = 5, lab_name: str = "seed-tls",
                  progress: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The seed case under its lead suspect: sregistry's https setup on the Opteron 6174, measured and scaled.

    From `sregistry-2018-10-https` with cpu.model opteron-6174 and the WAN at the seed's 6 Gbit: one pull
    (against the seed's ~32 MB/s) and `parallel` at once, each with the busiest program's CPU here and the
    whole machine's share of the seed VM's 8 vCPUs (labkit.analyze.scale.machine_view); then
    `seed-poster-https` (worker_processes 32: the settings in force for the seed's 40-pull observation)
    surveyed at 1 and 2 pulls, and lk.scale's prediction for 40 pulls on 8 vCPUs against the seed's
    230-240 MB/s. Returns the rows (measured and predicted) and the summary lines."""
    from .analyze.hypotheses import SEED_LINK, observations
    from .analyze.scale import machine_view, scale
    from .measure import iperf
    obs = observations()
    many_pulls, many_seed = max((int(k), v) for k, v in obs["aggregate_MBps"].items())
    extra = {"cpu": {"model": "opteron-6174"}}
    https, poster = (PRESETS[name].changed(**extra) for name in ("sregistry-2018-10-https", "seed-poster-https"))
    rows, lines = [], []

    def row(label, r, path, ratio):
        view = machine_view(r, path, ratio, SEED_VCPUS)
        return {"kind": "measured", "preset": label, "parallel": int(r["parallel"]), "MBps": round(r["MBps"], 1),
                "failures": int(r["failures"]), "busiest": r["busiest"], "busiest_cpu_here": r["busiest_cpu"],
                "nginx_pct_of_a_K10_core": view.get("nginx_pct_of_a_core"),
                "machine_pct_of_8_vCPUs": view["machine_pct"]}

    with Lab(lab_name, https, image_size=image_mib * 2**20, quiet=True) as lab:
        path = lab.plan.path
        hop = path.hop(path.client_stage.hop)
        seed_link = [f"links.{lk.name}={SEED_LINK}" for lk in path.links_between(hop.server, hop.client) if lk.shaped]
        lab.apply(apply_overrides(https, seed_link))
        capacity = iperf.run(*lab.plan.endpoint(hop), 3).MBps
        emu = lab.core.emu
        lines += [f"link (iperf3 {hop.name}, shaped to {SEED_LINK}): {capacity:.0f} MB/s", emu.note()]
        for n in (1, parallel):
            run = pull_at(lab, parallel=n, verify="length", deadline=1800)
            rows.append(row("sregistry-2018-10-https", run.row(), path, emu.ratio))
        lab.apply(apply_overrides(poster, seed_link))
        sv = run_survey(lab, parallel=2, repeats=1, hops=[], vantages=[path.client_vantage.name], verify="length",
                        progress=progress, tcp=False, pull_deadline=1800)
        for n in (1, 2):
            m = sv.table[(sv.table.kind == "pull") & (sv.table.parallel == n)].iloc[0]
            rows.append(row("seed-poster-https", m, sv.path, emu.ratio))
        p = scale(sv, cores=SEED_VCPUS, model="opteron-6174", pulls=many_pulls, link_MBps=capacity)
        for n, mbps, by in ((1, p.one_MBps, p.one_by), (many_pulls, p.many_MBps, p.many_by)):
            rows.append({"kind": f"predicted (lk.scale, {SEED_VCPUS} vCPUs)", "preset": "seed-poster-https",
                         "parallel": n, "MBps": mbps, "busiest": by,
                         "machine_pct_of_8_vCPUs": p.machine_pct(mbps)})
        lines += [str(p), *p.notes]
    one = rows[0]["MBps"]
    lines += [f"the seed: one pull ~{obs['single_pull_MBps']} MB/s, {many_pulls}+ pulls ~{many_seed} MB/s, the server "
              "'almost' idle (dstat, whole machine)",
              f"one pull here {one:.1f} MB/s = {one / obs['single_pull_MBps']:.2f}x the seed's; the whole machine "
              f"{rows[0]['machine_pct_of_8_vCPUs']:.0f}% of {SEED_VCPUS} vCPUs; {many_pulls} pulls predicted "
              f"{p.many_MBps:.0f} MB/s = {p.many_MBps / many_seed:.2f}x the seed's"]
    return pd.DataFrame(rows), lines


def record_hypotheses(image_mib: int = 1536, parallels: tuple[int, ...] = (1, 5, 40), out_dir: Path | None = None,
                      lab_name: str = "hyp", progress: bool = True, **kw) -> Path:
    """The hypotheses at `image_mib` (the seed's 1.5 GiB by default) with `parallels` pulls, judged and
    recorded: `<out_dir>/hypotheses-<image_mib>MiB.csv` and a `.json` beside it with the link's
    capacity, the parallel counts, the wall time and the machine. Returns the CSV's path."""
    import json
    import platform
    out_dir = Path(out_dir or DATA / "recorded")
    t0 = time.perf_counter()
    judged, capacity = run_hypotheses(list(parallels), image_mib, lab_name, progress=progress, **kw)
    wall = time.perf_counter() - t0
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / f"hypotheses-{image_mib}MiB.csv"
    judged.to_csv(csv, index=False)
    csv.with_suffix(".json").write_text(json.dumps({
        "image_mib": image_mib, "parallels": list(parallels), "link_capacity_MBps": round(capacity, 1),
        "deadline_s": kw.get("deadline", DEADLINE_S),
        "wall_s": round(wall, 1), "host": platform.node(), "kernel": platform.release(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "fits_all": judged.loc[judged.fits_all, "hypothesis"].tolist()},
        indent=1) + "\n")
    return csv


def run_probe(url: str, uri: str, **kw) -> Probe:
    """A real registry measured from here (labkit.measure.probe.measure_probe's arguments) and judged
    from the client's side: `p.table`, `p.verdict` (client-, network- or server application-limited)."""
    return judge_probe(_probe.measure_probe(url, uri, **kw))


def run_oci_probe(image: str, **kw) -> Probe:
    """An OCI registry measured from here (labkit.measure.oci_probe.measure_oci_probe's arguments: the
    image as http[s]://host[:port]/repo/name:tag) and judged as run_probe is."""
    from .measure.oci_probe import measure_oci_probe
    return judge_probe(measure_oci_probe(image, **kw))


def run_storm(lab: Lab, spec) -> Storm:
    """A Locust pull storm on the lab (labkit.measure.locust_storm), as its tables: `s.row()`, `s.nodes()`, `s.failures()`."""
    return storm_of(_storm.measure_storm(lab, spec))


def run_master(url: str, image: str, spec, workers: int, out_dir: Path, bind: str = "*",
               port: int = _storm.MASTER_PORT, cacert: str | None = None) -> Storm:
    """The master of a storm on a real cluster (`run_worker` on each compute node), as its tables;
    `cacert`: an https registry's CA file (the same path on every worker)."""
    return storm_of(_storm.measure_master(url, image, spec, workers, out_dir, bind, port, cacert))


# --- what to change, measured ---------------------------------------------------------------------------------
# The remedies for a verdict's constraint (labkit.analyze.remedies: pure data) tried on the running lab, each
# round by round beside the settings as they were, so a slow moment of the machine falls on every candidate
# alike; the winner by labkit.analyze.remedies.WIN_RULE (beyond the runs' spread, not just the median), written
# as a checked bundle. The lab gets its settings back at the end, even after an error.

AS_IT_WAS = "settings as they were"


def fix(lab: Lab, v, parallel: int = 5, repeats: int = 3, verify: str = "sha256",
        out_dir: Path | None = None, label: str | None = None, remedies: list[Remedy] | None = None,
        deadline: float = 120, progress: bool = False) -> Fix:
    """Try every remedy for verdict `v` on `lab`; return the trials, the winner and its bundle."""
    from .progress import bar as tqdm
    if not 1 <= repeats <= 20:
        raise SettingsError(f"repeats {repeats}: 1..20 (3 or more give a spread)")
    base = lab.settings
    cands, notes, options = [], [], {}
    for r in v.remedies if remedies is None else remedies:
        try:
            s = apply_overrides(base, list(r.set))
            lab.check(s)
        except SettingsError as exc:
            notes.append(f"{r.name} not tried: {exc}")
            continue
        cands.append(r)
        options[r.name] = s
    if not cands:
        notes.append(v.no_remedy or "no remedy to try for this verdict")
    runs: dict[str, dict[int, list[float]]] = {}
    fails: dict[str, int] = {}
    trial_order = [(AS_IT_WAS, base), *((r.name, options[r.name]) for r in cands)]
    try:
        with tqdm(total=repeats * len(trial_order), desc="fix", unit="trial", disable=not progress, leave=False) as bar:
            for _ in range(repeats if cands else 0):
                for name, s in trial_order:
                    lab.apply(s)
                    for n in dict.fromkeys((1, parallel)):
                        run = pull_at(lab, parallel=n, verify=verify, deadline=deadline)
                        runs.setdefault(name, {}).setdefault(n, []).append(run.mbps)
                        fails[name] = fails.get(name, 0) + run.failures
                    bar.update()
    finally:
        if lab.settings != base:
            lab.apply(base)
    if not cands:
        return Fix(v.hop, v.cause, None, [], None, notes=notes)
    trials = {name: Trial(name, () if name == AS_IT_WAS else next(r.set for r in cands if r.name == name),
                          Rate.of_runs(by[1]), Rate.of_runs(by[parallel]), parallel, fails.get(name, 0))
              for name, by in runs.items()}
    before = trials.pop(AS_IT_WAS)
    tried = list(trials.values())
    best = winner(before, tried)
    f = Fix(v.hop, v.cause, before, tried, best, notes=notes)
    if best is not None:
        new = options[best.name]
        f.changes = remedy_changes(next(r for r in cands if r.name == best.name), base, new)
        bundle, _ = export_bundle(new, out_dir or DATA / "bundles", f"{label or 'fix'}-{_slug(best.name)}",
                                  measurements=_table(f), notes=[f"{best.name}: {r.why}" for r in cands
                                                                  if r.name == best.name])
        f.bundle = str(bundle)
    return f


def remedy_changes(r: Remedy, base: LabSettings, new: LabSettings) -> list[dict]:
    """The settings a remedy changed, as the bundle lists changes: path, old, new, why (every group, the client's too)."""
    out = []
    for text in r.set:
        group, field, _ = parse_override(text)
        old, now = (getattr(getattr(x, group), field, None) for x in (base, new))
        if old != now:
            out.append({"path": f"{group}.{field}", "old": as_text(old) or "(default)", "new": as_text(now) or "(default)",
                        "why": WHY.get(f"{group}.{field}") or r.why})
    return out


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


def _table(f: Fix):
    return pd.DataFrame([t.to_dict() for t in [f.before, *f.trials]]).drop(columns=["set"])
