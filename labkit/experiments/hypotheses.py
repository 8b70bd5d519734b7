"""Each explanation of the seed made real in the lab, measured at 1 and N pulls on the seed's link and judged
against everything the seed observed (labkit.analyze.hypotheses); and the seed case under its lead suspect,
sregistry's https setup on the seed's CPU (`tls_seed_case`).

One lab per image size: a hypothesis runs at the declared image or at its own minimum, if larger.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import pandas as pd

from ..analyze.hypotheses import DEADLINE_S, HYPOTHESES as _ALL, SEED_LINK, judge, observations
from ..analyze.scale import machine_view, scale
from ..config.overrides import apply_overrides
from ..config.presets import PRESETS
from ..errors import LabError
from ..lab.lab import Lab
from ..measure import iperf
from ..clients.kinds import KINDS
from ..clients.program import check_room
from ..measure.pull_at import pull_at
from ..measure.survey import run_survey
from ..units import MiB, mib
from .declare import Experiment, Outcome, Progress
from .runner import run

SEED_VCPUS = 8       # the seed's VM: "8 Cores" on 2 x Opteron 6174 (shared/seed/sregistry-serving-performance.txt)


def hypothesis_sizes(image_mib: int, hypotheses=None) -> dict[int, list]:
    """The hypotheses grouped by the image each runs at: `image_mib`, or its own minimum if larger."""
    out: dict[int, list] = {}
    for h in hypotheses or _ALL:
        out.setdefault(max(image_mib, h.min_image_mib), []).append(h)
    return dict(sorted(out.items()))


def _labs(exp: Experiment) -> list[Experiment]:
    groups = hypothesis_sizes(int(mib(exp.image_size)), exp.options.get("hypotheses"))
    return [exp.with_(image_size=size * MiB, options={"hypotheses": hs, "first": i == 0})
            for i, (size, hs) in enumerate(groups.items())]


def _seed_link(lab: Lab, link: str) -> list[str]:
    """`links.<name>=<link>` for each shaped link on the client's hop (one link, or a switch's uplink)."""
    path = lab.path
    hop = path.hop(path.client_stage.hop)          # the client's hop: from the compute node to the VM
    return [f"links.{lk.name}={link}" for lk in path.links_between(hop.server, hop.client) if lk.shaped]


def _measure(lab: Lab, exp: Experiment, progress: Progress) -> dict:
    o = exp.options
    seed_link = _seed_link(lab, o["link"])
    hs, capacity = o["hypotheses"] or _ALL, None          # all of them on a lab handed in (`run(..., on=lab)`)
    if o.get("first", True):
        path = lab.path
        lab.apply(hs[0].settings(*seed_link))
        capacity = iperf.run(*lab.plan.endpoint(path.hop(path.client_stage.hop)), 2).MBps
    rows = []
    for h in hs:
        progress.bar.set_postfix_str(f"{h.name} ({int(mib(lab.image_size))} MiB)")
        rows.append(_hypothesis_row(lab, h, seed_link, list(exp.parallels), o["deadline"]))
        progress.bar.update()
    return {"rows": rows, "capacity": capacity}


def _aggregate(exp: Experiment, parts: list[dict]) -> tuple[pd.DataFrame, float]:
    capacity = parts[0]["capacity"]
    return judge(pd.DataFrame([r for p in parts for r in p["rows"]]), capacity), capacity


def _record(out: Outcome, where: Path) -> Path:
    """`hypotheses-<size>MiB.csv` and a `.json` beside it with the link's capacity, the parallel counts, the
    deadline, the wall time, the machine and the time."""
    exp, (judged, capacity) = out.experiment, out.result
    size = int(mib(exp.image_size))
    where = Path(exp.options.get("out_dir") or where)
    where.mkdir(parents=True, exist_ok=True)
    csv = where / f"hypotheses-{size}MiB.csv"
    judged.to_csv(csv, index=False)
    csv.with_suffix(".json").write_text(json.dumps({
        "image_mib": size, "parallels": list(exp.parallels), "link_capacity_MBps": round(capacity, 1),
        "deadline_s": exp.options["deadline"], "wall_s": out.wall_s, "host": platform.node(), "kernel": platform.release(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "fits_all": judged.loc[judged.fits_all, "hypothesis"].tolist()}, indent=1) + "\n")
    return csv


def text(out: Outcome) -> str:
    judged, capacity = out.result
    cols = [c for c in judged.columns if c not in ("explains", "fix")]
    return (f"{judged[cols].to_string(index=False)}\n\nlink capacity {capacity:.1f} MB/s; wall {out.wall_s} s; "
            f"fits every observation: {', '.join(judged.loc[judged.fits_all, 'hypothesis']) or 'none'}\n"
            f"saved {out.saved} and {out.saved.with_suffix('.json')}")


HYPOTHESES = Experiment(
    "hypotheses", "each explanation of the seed made real, at 1 and N pulls on the seed's link, judged",
    _measure, lab_name="hyp", parallels=(1, 5, 40), image_size=1536 * MiB, records="recorded", health=False,
    labs=_labs, steps=lambda exp: len(exp.options.get("hypotheses") or _ALL), aggregate=_aggregate,
    record=_record, text=text, options={"link": SEED_LINK, "deadline": DEADLINE_S, "hypotheses": None})


def run_hypotheses(parallels: list[int], image_mib: int = 32, lab_name: str = "hyp", hypotheses=None,
                   link: str | None = None, progress: bool = True, deadline: float = DEADLINE_S,
                   compute_nodes: int = 1) -> tuple[pd.DataFrame, float]:
    """Each hypothesis made real in the lab (on the seed's link), measured at 1 and N pulls, judged.

    Each runs with an image of `image_mib`, or of its own `min_image_mib` if that is larger (a lab
    per image size, one after another). A parallel count whose files would not fit where the
    client writes them is left out of that row, its note says so. Returns the judged table
    (analyze.hypotheses.judge) and the link's iperf3 capacity it is judged against (the first lab's).
    """
    exp = HYPOTHESES.with_(parallels=tuple(parallels), image_size=image_mib * MiB, lab_name=lab_name,
                           compute_nodes=compute_nodes, record=None,
                           options={"link": link, "deadline": deadline, "hypotheses": hypotheses})
    return run(exp, progress=progress).result


def record_hypotheses(image_mib: int = 1536, parallels: tuple[int, ...] = (1, 5, 40), out_dir: Path | None = None,
                      lab_name: str = "hyp", progress: bool = True, deadline: float = DEADLINE_S) -> Outcome:
    """The hypotheses at `image_mib` (the seed's 1.5 GiB by default) with `parallels` pulls, judged and
    recorded: `<out_dir>/hypotheses-<image_mib>MiB.csv` and a `.json` beside it with the link's
    capacity, the parallel counts, the wall time and the machine."""
    return run(HYPOTHESES.with_(parallels=tuple(parallels), image_size=image_mib * MiB, lab_name=lab_name,
                                options={"deadline": deadline, "out_dir": out_dir}), progress=progress)


def _hypothesis_row(lab: Lab, h, seed_link: list[str], parallels: list[int], deadline: float) -> dict:
    lab.apply(h.settings(*seed_link))
    lab.storage.warm()           # the seed's registry had served its images before: no cold first read
    runs, left_out = [], []
    for n in sorted(set([1, *parallels])):
        if lab.settings.client.dest != "memory" or not KINDS[lab.settings.client.kind].discards:
            try:
                check_room(lab.client.dest_root(), n, lab.image.size)
            except LabError as exc:
                left_out.append(f"{n} pulls left out: {exc}")
                continue
        runs.append(pull_at(lab, parallel=n, verify="length", deadline=deadline))
    one, top = runs[0], runs[-1]
    ratio = lab.cpu.ratio
    disk = [r.row().get("disk_read_MB") for r in runs]
    return {"hypothesis": h.name, "explains": h.explains, "image_mib": int(mib(lab.image.size)),
            "min_image_mib": h.min_image_mib, "single_MBps": round(one.mbps, 1),
            "single_cpu": one.busiest_cpu, "busiest": one.busiest,
            # dstat's whole-machine view on the seed's 8 vCPUs (labkit.analyze.scale.machine_view)
            "single_machine_pct": machine_view(one.row(), lab.path, ratio, SEED_VCPUS)["machine_pct"],
            **{f"x{r.parallel}_MBps": round(r.mbps, 1) for r in runs[1:]},
            "top_MBps": round(top.mbps, 1), "top_parallel": top.parallel,
            "failures": sum(r.failures for r in runs),
            "disk_read_MB": float("nan") if any(d is None for d in disk) else round(sum(disk), 1),
            "client_write_MB": round(sum(r.row().get("client_write_MB") or 0 for r in runs), 1),
            "served_MB": round(sum(sum(x.bytes for x in r.results) for r in runs) / 1e6, 1),
            "note": "; ".join(left_out), "fix": h.fix}


# --- the seed case under its lead suspect -----------------------------------------------------------------------

def _tls_measure(lab: Lab, exp: Experiment, progress: Progress) -> tuple[pd.DataFrame, list[str]]:
    obs = observations()
    many_pulls, many_seed = max((int(k), v) for k, v in obs["aggregate_MBps"].items())
    rows, lines = [], []

    def row(label, r, path, ratio):
        view = machine_view(r, path, ratio, SEED_VCPUS)
        return {"kind": "measured", "preset": label, "parallel": int(r["parallel"]), "MBps": round(r["MBps"], 1),
                "failures": int(r["failures"]), "busiest": r["busiest"], "busiest_cpu_here": r["busiest_cpu"],
                "nginx_pct_of_a_K10_core": view.get("nginx_pct_of_a_core"),
                "machine_pct_of_8_vCPUs": view["machine_pct"]}

    path = lab.path
    hop = path.hop(path.client_stage.hop)
    seed_link = _seed_link(lab, SEED_LINK)
    lab.apply(apply_overrides(lab.settings, seed_link))
    capacity = iperf.run(*lab.plan.endpoint(hop), 3).MBps
    emu = lab.cpu.emulation
    lines += [f"link (iperf3 {hop.name}, shaped to {SEED_LINK}): {capacity:.0f} MB/s", emu.note()]
    for n in (1, exp.parallel):
        run_ = pull_at(lab, parallel=n, verify="length", deadline=1800)
        rows.append(row("sregistry-2018-10-https", run_.row(), path, emu.ratio))
    lab.apply(apply_overrides(exp.options["then"], seed_link))
    sv = run_survey(lab, parallel=2, repeats=1, hops=[], vantages=[path.client_vantage.name], verify="length",
                    progress=progress.on, tcp=False, pull_deadline=1800)
    for n in (1, 2):
        m = sv.table[(sv.table.kind == "pull") & (sv.table.parallel == n)].iloc[0]
        rows.append(row("seed-poster-https", m, sv.path, emu.ratio))
    p = scale(sv, cores=SEED_VCPUS, model="opteron-6174", pulls=many_pulls, link_MBps=capacity)
    for n, mbps, by in ((1, p.one_MBps, p.one_by), (many_pulls, p.many_MBps, p.many_by)):
        rows.append({"kind": f"predicted (lk.scale, {SEED_VCPUS} vCPUs)", "preset": "seed-poster-https",
                     "parallel": n, "MBps": mbps, "busiest": by, "machine_pct_of_8_vCPUs": p.machine_pct(mbps)})
    lines += [str(p), *p.notes]
    one = rows[0]["MBps"]
    lines += [f"the seed: one pull ~{obs['single_pull_MBps']} MB/s, {many_pulls}+ pulls ~{many_seed} MB/s, the server "
              "'almost' idle (dstat, whole machine)",
              f"one pull here {one:.1f} MB/s = {one / obs['single_pull_MBps']:.2f}x the seed's; the whole machine "
              f"{rows[0]['machine_pct_of_8_vCPUs']:.0f}% of {SEED_VCPUS} vCPUs; {many_pulls} pulls predicted "
              f"{p.many_MBps:.0f} MB/s = {p.many_MBps / many_seed:.2f}x the seed's"]
    return pd.DataFrame(rows), lines


_ON_THE_SEEDS_CPU = {"cpu": {"model": "opteron-6174"}}
TLS_SEED_CASE = Experiment(
    "tls-seed-case", "sregistry's https setup on the seed's Opteron 6174, one pull and N, then seed-poster-https "
    "at 1 and 2 pulls scaled to the seed's 40 on 8 vCPUs", _tls_measure,
    settings=PRESETS["sregistry-2018-10-https"].changed(**_ON_THE_SEEDS_CPU), lab_name="seed-tls",
    parallels=(1, 5), image_size=1536 * MiB, health=False,
    options={"then": PRESETS["seed-poster-https"].changed(**_ON_THE_SEEDS_CPU)})


def tls_seed_case(image_mib: int = 1536, parallel: int = 5, lab_name: str = "seed-tls",
                  progress: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The seed case under its lead suspect: sregistry's https setup on the Opteron 6174, measured and scaled.

    From `sregistry-2018-10-https` with cpu.model opteron-6174 and the WAN at the seed's 6 Gbit: one pull
    (against the seed's ~32 MB/s) and `parallel` at once, each with the busiest program's CPU here and the
    whole machine's share of the seed VM's 8 vCPUs (labkit.analyze.scale.machine_view); then
    `seed-poster-https` (worker_processes 32: the settings in force for the seed's 40-pull observation)
    surveyed at 1 and 2 pulls, and lk.scale's prediction for 40 pulls on 8 vCPUs against the seed's
    230-240 MB/s. Returns the rows (measured and predicted) and the summary lines."""
    exp = TLS_SEED_CASE.with_(image_size=image_mib * MiB, parallels=(1, parallel), lab_name=lab_name)
    return run(exp, progress=progress).result
