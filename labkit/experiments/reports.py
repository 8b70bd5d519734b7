"""The diagnosis as HTML: one survey, the seed case, or everything at once (survey, the windows where the
verdict points, the presets compared, the bundle) from one lab (`labkit report`).

Kept apart from the survey's module: the report's figures (bokeh) and the windows' pcap reader (scapy) are
the slow imports the CLI leaves out until `labkit report` asks for them."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..analyze.tcpflow import FlowDirection, analyze
from ..analyze.verdict import verdict
from ..analyze.windows import FlowVerdict, flow_verdict
from ..config.presets import PRESETS
from ..lab.lab import DATA, Lab
from ..measure.capture import capture_pull
from ..measure.survey import run_survey
from ..present.report import (Section, bundle_section, flows_section, opening, survey_section, surveys_headline,
                              trials_headline, trials_section, write_report)
from ..records import Survey
from ..units import MiB, mib
from .bundles import export_bundle
from .declare import Experiment, Outcome, Progress
from .runner import run
from .sweep import seed_case


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


def _everything(lab: Lab, exp: Experiment, progress: Progress) -> dict:
    survey = run_survey(lab, parallel=exp.parallel, progress=progress.on)
    survey.save(DATA / "results", f"survey-{exp.label}")
    flows = look_inside(lab, capture_points_for(survey))
    trials = seed_case(lab, list(exp.parallels), progress=progress.on)
    return {"survey": survey, "flows": flows, "trials": trials}


def _write_report(out: Outcome, where: Path) -> Path:
    """The trials as `<time>-presets.csv`, the recommended set as a bundle, everything as one HTML file."""
    exp, r = out.experiment, out.result
    stamp = time.strftime("%Y%m%d-%H%M%S")
    trials = r["trials"]
    trials.drop(columns=["settings"]).to_csv(DATA / "results" / f"{stamp}-presets.csv", index=False)
    table = trials.pivot_table(index="preset", columns="parallel", values="parallel_MBps").reset_index()
    table.columns = ["preset", *[f"{c} parallel (MB/s)" for c in table.columns[1:]]]
    bundle, _ = export_bundle(PRESETS["recommended"], DATA / "bundles", "recommended", measurements=table,
                              image_mib=int(mib(exp.image_size)))
    v = verdict(r["survey"], flows=r["flows"])
    top, line = opening(r["survey"], v)
    sections: list[Section] = [survey_section(r["survey"], v=v), flows_section(r["flows"]), trials_section(trials),
                               bundle_section(bundle)]
    return write_report(exp.options.get("out") or where / f"{stamp}-report.html", sections,
                        lead=[trials_headline(trials)], top=top, headline_text=line)


REPORT = Experiment(
    "report", "survey, the TCP windows where the verdict points, the presets compared and the bundle, as one HTML",
    _everything, lab_name="report", parallels=(1, 5), records="reports", record=_write_report,
    text=lambda out: f"report: {out.saved}")


def full_report(image_mib: int = 64, parallels: tuple[int, ...] = (1, 5), lab_name: str = "report",
                out: Path | None = None, progress: bool = True, settings=None,
                label: str = "sregistry-2018-10") -> Path:
    """Everything in one HTML: survey (as shipped, or `settings`), windows where it points, presets compared, the bundle."""
    exp = REPORT.with_(image_size=image_mib * MiB, parallels=tuple(parallels), lab_name=lab_name,
                       settings=settings if settings is not None else REPORT.settings, options={"out": out, "label": label})
    return run(exp, progress=progress).saved


def survey_report(survey: Survey, out: Path | None = None, fix=None, title: str = "servelab: why pulls are slow") -> Path:
    """One survey as an HTML report (no lab needed): the path with the binding stage marked, the headline,
    the table and the verdict in the CLI's words, and the remedies tried when `fix` is given."""
    v = verdict(survey)
    top, line = opening(survey, v, fix)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return write_report(out or DATA / "reports" / f"{stamp}-survey.html", [survey_section(survey, v=v, fix=fix)],
                        title=title, top=top, headline_text=line)


def seed_case_report(before: Survey, after: Survey, trials: pd.DataFrame, bundle: Path,
                     out: Path | None = None) -> Path:
    """The seed case as one HTML file: both surveys, the presets compared, the bundle."""
    sections = [survey_section(before, "Before"), survey_section(after, "After"), trials_section(trials),
                bundle_section(bundle)]
    top, line = opening(before)
    lead = [surveys_headline(before, after), trials_headline(trials)]
    return write_report(out or DATA / "reports" / "seed-case.html", sections, lead=lead, top=top, headline_text=line)
