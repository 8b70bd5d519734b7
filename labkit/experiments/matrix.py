"""The injection matrix: known bottlenecks put into the lab, and whether the verdict names each one.

    rows = run_matrix(lab, CASES)               # one row per case: expected, named, evidence, seconds, ok
    run(MATRIX)                                 # the same as an experiment: its own lab, the table recorded

Each case starts from a preset, injects one fault (or two, or none) with `labkit.lab.faults.inject`,
surveys the path and compares the verdict with the case's ground truth: the stage that must be
named, what must bind there, and for two bottlenecks the one that must come next. Stage names
are derived from the lab's own path (the stage whose link was shaped, whose program was capped):
`cases_for(path)`; CASES are those of the default path.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..analyze.scoring import right
from ..analyze.verdict import Verdict, verdict
from ..config.presets import PRESETS, preset
from ..lab.faults import Injection, inject
from ..measure.pull_at import pull_at
from ..measure.survey import run_survey
from ..path import CLIENT, ServingPath, registry_path
from .declare import Experiment, Outcome, Progress


@dataclass(frozen=True)
class Case:
    name: str
    preset: str
    injection: Injection
    stage: str | None             # the stage to name (None: at capacity, any hop)
    cause: str                    # a key of labkit.analyze.causes.CAUSES
    why: str                      # why this is the truth
    next: str | None = None       # for two bottlenecks: the stage to mention as next
    at_capacity: bool | None = None
    survey: tuple[tuple[str, object], ...] = ()   # survey arguments of this case (e.g. no parallel pulls)
    also: tuple[str, ...] = ()    # other causes that state the same truth (at capacity: the TCP rate, or the client)
    also_stages: tuple[str, ...] = ()   # other stages that state the same truth (one program's work in two stages)
    client_stage: str = ""        # the stage of the pulling client on the case's path

    @property
    def expected(self) -> str:
        where = (f"at capacity or {self.client_stage}" if self.stage is None
                 else " or ".join((self.stage, *self.also_stages)) + (" (at capacity)" if self.at_capacity else ""))
        return f"{where}: {' or '.join((self.cause, *self.also))}" + (f"; next {self.next}" if self.next else "")

    def judge(self, v: Verdict) -> bool:
        """Right only when the verdict names the truth first (labkit.analyze.scoring: a second answer never counts)."""
        return right(self.answered(v))

    def answered(self, v: Verdict) -> str:
        """'first' when the verdict names the truth, 'second' when the truth is its stated alternative, else ''."""
        if self._names(v):
            return "first"
        alt = v.alternative
        if alt is not None and self.stage is not None and not self.at_capacity:
            if alt.hop in (self.stage, *self.also_stages) and alt.cause in (self.cause, *self.also):
                return "second"
        return ""

    def _names(self, v: Verdict) -> bool:
        causes = (self.cause, *self.also)
        if self.stage is None:     # nothing in the server binds: at capacity, or the last hop (link or client)
            return v.cause in causes and (v.at_capacity or v.hop == self.client_stage)
        ok = v.hop in (self.stage, *self.also_stages) and v.cause in causes
        if self.at_capacity is not None:
            ok = ok and v.at_capacity == self.at_capacity
        if self.next:
            ok = ok and v.next is not None and v.next.hop == self.next
        return ok


BASE = "sregistry-2018-10"
BASES = {"sregistry": BASE, "distribution": "distribution-2.8"}     # each registry's path starts from its preset
# Each injected limit sits well below what the unshaped path does on a busy 2-core machine (nginx,
# buffering every response to a temp file, gets 150-450 MB/s depending on the other load; distribution's
# registry sends 240 MB/s on about 0.3 of a core: 0.03 holds it near 25).
RATE = "800mbit"                # 100 MB/s on each shaped link
CPU_CAPS = {"nginx": 0.15, "uwsgi": 0.02, "registry": 0.03, "docker-proxy": 0.03}   # CPUs, for the program's key in settings.cpu
SINGLE = (("parallel", 1),)     # slow cases: one pull at a time only, to stay within 30 s
# what puts a program on a compute node's path: docker-proxy carries pulls only with Docker's iptables off
ON_THE_PATH = {"docker-proxy": ("publish.iptables=false",)}


# the unshaped presets whose truth is nginx's CPU (every sregistry preset but recommended; of distribution's, the
# recipe's front, buffering and TLS on: the survey of 2026-12-07 named nginx, the most CPU per byte, on a full machine)
UNSHAPED_NGINX_CPU = {"sregistry": tuple(n for n, s in PRESETS.items() if s.registry.kind == "sregistry"),
                      "distribution": ("distribution-2.8",)}


def cases_for(path: ServingPath) -> list[Case]:
    """The matrix on `path`: each shaped link, each capped program, the other faults, every preset of its registry
    (sregistry's, or distribution's: the same faults from its own preset, its registry in uwsgi's place)."""
    base = BASES[path.registry]
    on_path = {p for st in path.stages for p in st.programs}
    def stage_of_link(link: str) -> str:
        return path.stage_of_link(link).name

    def stage_of_program(program: str) -> str:
        return path.stage_of_program(program).name
    client_node = path.client_vantage.client
    out = [Case(f"link {lk} at {RATE}", base, Injection(set=(f"links.{lk}={RATE}",)),
                stage_of_link(lk), "link", f"tc tbf shapes the {lk} link below what the path does unshaped",
                at_capacity=True) for lk in path.shaped_links]
    out += [Case(f"{prog} CPU capped", base, Injection(set=(f"cpu.{path.cpu_key(prog)}_cpus={cap}",
                                                         *ON_THE_PATH.get(prog, ()))),
                 stage_of_program(prog), "cpu", f"a CFS quota of {cap} CPU on {prog}, below what it uses unshaped"
                 + (" (iptables off: docker-proxy carries the pulls)" if prog in ON_THE_PATH else ""))
            for prog, cap in CPU_CAPS.items() if prog in on_path]
    out += [
        Case("slow cold disk", base, Injection(set=("storage.disk=loop", "storage.cache=cold", "storage.read_mbps=50")),
             stage_of_program(path.backend), "disk", "the image is read from a 50 MB/s device with a cold cache",
             survey=SINGLE),
        Case("small receive buffer at the client", base,
             Injection(sysctl=((client_node, "net.ipv4.tcp_rmem", "4096 8192 8192"),)),
             stage_of_program(CLIENT), "window", "tcp_rmem of 8 KiB in the compute node's namespace only"),
        Case("slow client", base, Injection(set=("client.dest=local-disk", "client.write_mbps=20")),
             stage_of_program(CLIENT), "client", "the client writes the image to a 20 MB/s disk whose dirty pages "
             "are bounded to 2 s of writes (40 MB): a 64 MiB pull waits for it", survey=SINGLE),
        Case("docker-proxy killed", base, Injection(set=ON_THE_PATH["docker-proxy"], kill=("docker-proxy",)),
             stage_of_program("docker-proxy"), "down",
             "iptables off, SIGKILL to docker-proxy: nothing listens on the published port"),
        Case("two links: nginx 400mbit, wan 600mbit", base,
             Injection(set=("links.nginx=400mbit", "links.wan=600mbit")), stage_of_link("nginx"), "link",
             "50 MB/s on the nginx link binds; the WAN's 75 MB/s is next", next=stage_of_link("wan"), at_capacity=True),
    ]
    truth = {"recommended": (None, "link", "X-Accel-Redirect, Docker's DNAT: nginx sends the file itself, nothing copies it "
                                           "again; nothing in the server binds: the path runs at the TCP rate of this "
                                           "machine, or at what the client can read of it", ("client",))}
    nginx_stages = tuple(st.name for st in path.stages if "nginx" in st.programs)   # its plain and its TLS work
    for name in PRESETS:
        if PRESETS[name].registry.kind != path.registry or name not in (*truth, *UNSHAPED_NGINX_CPU[path.registry]):
            continue    # another registry is another path (a lab of its own); its presets judged where measured
        stage, cause, why, also = truth.get(name, (stage_of_program("nginx"), "cpu",
                                                   "nginx buffers every response from uwsgi to a temp file and sends "
                                                   "it again: one worker on one core (DESIGN: nginx at 97% CPU)", ()))
        # with TLS on, nginx's CPU binds in its plain stage or its TLS one: on this machine's AES-NI the TLS
        # share is small and the two stages' rates lie within noise of each other
        also_stages = tuple(n for n in nginx_stages if n != stage) if PRESETS[name].tls.enabled else ()
        out.append(Case(f"unshaped, {name}", name, Injection(), stage, cause, why, also=also,
                        also_stages=also_stages))
    client = path.client_stage.name
    return [dataclasses.replace(c, client_stage=client, also_stages=c.also_stages or tls_twins(c, nginx_stages))
            for c in out]


def tls_twins(c: Case, nginx_stages: tuple[str, ...]) -> tuple[str, ...]:
    """With TLS on in the case's preset (distribution-2.8's), nginx's plain and TLS stages send on the same link
    and burn the same worker's CPU: naming either states the truth of a case that names one of them."""
    if c.stage not in nginx_stages or not PRESETS[c.preset].tls.enabled:
        return ()
    return tuple(n for n in nginx_stages if n != c.stage)


CASES = cases_for(registry_path())      # on the default path (run_matrix takes the lab's own)
CI_CASES = [c for c in CASES if c.name.startswith(("link ", "docker-proxy killed", "two links", "nginx CPU"))]


def run_case(lab, case: Case, save_dir=None, **survey_kw) -> dict:
    """Inject the case's fault, survey, judge: one row (case, expected, named, evidence, seconds, ok).
    Parallel pulls are made at the client's vantage point only, unless `parallel_at` says otherwise."""
    row = {"case": case.name, "expected": case.expected}
    t0 = time.perf_counter()
    lab.apply(preset(case.preset))
    hops = list(dict.fromkeys(s.hop for s in lab.path.carrying(lab.settings)))
    with inject(lab, injection=case.injection):
        survey = run_survey(lab, progress=False, hops=hops, **{"parallel_at": [lab.path.client_vantage.name],
                                                                   **survey_kw, **dict(case.survey)})
    v = verdict(survey)
    seconds = time.perf_counter() - t0
    if save_dir:
        survey.save(save_dir, "matrix-" + "".join(ch if ch.isalnum() else "-" for ch in case.name))
    named = ("at capacity " + v.capacity_hop if v.at_capacity else v.hop) + f": {v.cause}"
    if v.next:
        named += f"; next {v.next.hop} ({v.next.cause})"
    if v.alternative:
        named += f"; or {v.alternative.hop}: {v.alternative.cause}"
    key = next((e for e in v.evidence[1:] if any(ch.isdigit() for ch in e)), v.summary)
    return {**row, "named": named, "evidence": key, "seconds": round(seconds, 1), "ok": case.judge(v), "answer": case.answered(v),
            "summary": v.summary, "verdict": v, "survey": survey}


SURVEY_DEFAULTS = {"parallel": 4, "iperf_seconds": 1, "repeats": 3, "verify": "length", "pull_deadline": 60,
                   "parallel_rounds": 1}


def run_matrix(lab, cases: list[Case] | None = None, on_row=None, save_dir=None, **survey_kw) -> pd.DataFrame:
    """Every case (default: all of the lab's path) on the running `lab` (on_row(row) as each finishes;
    each survey saved in `save_dir`)."""
    kw = {**SURVEY_DEFAULTS, **survey_kw}
    pull_at(lab, verify="length")          # the image into the page cache: no case pays for a cold start
    rows = []
    for case in cases or cases_for(lab.path):
        row = run_case(lab, case, save_dir, **kw)
        rows.append(row)
        if on_row:
            on_row(row)
    return pd.DataFrame(rows)


def _matrix(lab, exp: Experiment, progress: Progress) -> pd.DataFrame:
    cases = exp.options.get("cases")
    return run_matrix(lab, cases, on_row=lambda row: progress.step(row["case"]),
                      **{**exp.options.get("survey", {}), "repeats": exp.repeats, "parallel": exp.parallel})


def _record(out: Outcome, where: Path) -> Path:
    """`<time>-matrix.csv`: each case, what was expected, what the verdict named, its evidence, right or not."""
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{time.strftime('%Y%m%d-%H%M%S')}-matrix.csv"
    out.result.drop(columns=["verdict", "survey"]).to_csv(path, index=False)
    return path


def _text(out: Outcome) -> str:
    t = out.result
    return (t[["case", "expected", "named", "seconds", "ok"]].to_string(index=False)
            + f"\n\n{int(t.ok.sum())}/{len(t)} named right; saved {out.saved}")


MATRIX = Experiment(
    "matrix", "known bottlenecks injected one by one, and whether the verdict names each", _matrix,
    settings=BASE, parallels=(1, SURVEY_DEFAULTS["parallel"]), repeats=SURVEY_DEFAULTS["repeats"],
    steps=lambda exp: len(exp.options.get("cases") or CASES), record=_record, text=_text,
    options={"cases": None, "survey": {k: v for k, v in SURVEY_DEFAULTS.items() if k not in ("parallel", "repeats")}})
