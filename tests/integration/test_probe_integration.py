"""`labkit probe` pointed at the lab's published address from inside its compute node, against the in-lab survey.

Three cases with a known answer: sregistry's 2018-10 settings unshaped (nginx spools every pull
to its temp files: the server), the same with the WAN link shaped to 400mbit (the network), and
the app reading the file in 512-byte blocks in Python (fileresponse-iter: uwsgi's CPU, the server).
The probe sees only what a client sees; the survey sees every hop. Their verdicts must agree.
"""
import pytest

from labkit.analyze.probe_verdict import NETWORK, SERVER, survey_class
from labkit.analyze.verdict import verdict
from labkit.cli import main
from labkit.config.presets import PRESETS
from labkit.lab.lab import Lab
from labkit.experiments.probe import run_probe
from labkit.measure.survey import run_survey
from labkit.present.report import probe_section, write_report

pytestmark = pytest.mark.integration
MiB = 2**20
BASE = PRESETS["sregistry-2018-10"]
CASES = {
    "unshaped 2018-10": (BASE, SERVER),
    "WAN shaped to 400mbit": (BASE.changed(links={"wan": "400mbit"}), NETWORK),
    "uwsgi CPU-bound (fileresponse-iter, 512 B reads)":
        (BASE.changed(app={"serve_mode": "fileresponse-iter", "chunk_size": 512}), SERVER),
}


@pytest.fixture(scope="module")
def lab():
    with Lab("ip-probe", BASE, image_size=64 * MiB, quiet=True) as lab:
        yield lab


def _probe(lab, **kw):
    p = lab.plan
    return run_probe(f"http://{p.ip('vm')}:{p.port('published')}", lab.image.uri, ns=p.ns("compute"),
                     iperf3=f"{p.ip('vm')}:{p.port('iperf@vm')}", iperf_seconds=2, deadline=120, **kw)


@pytest.mark.parametrize("case", list(CASES))
def test_the_probes_verdict_from_the_client_agrees_with_the_surveys(lab, case, tmp_path):
    settings, truth = CASES[case]
    lab.apply(settings)
    survey = run_survey(lab, parallel=3, iperf_seconds=1, progress=False)
    sv = verdict(survey.table, path=survey.path)
    said, why = survey_class(survey)
    probe = _probe(lab, parallel=3, capture=True, capture_dir=tmp_path)
    report = f"{case}\nsurvey: {sv}\n  read as: {said}: {why}\nprobe:\n{probe.table.to_string()}\n{probe.verdict}"
    print(report)
    assert said == truth, report
    assert probe.verdict.kind == truth, report
    pulls = probe.table[probe.table.kind == "pull"]
    assert list(pulls.parallel) == [1, 3] and (pulls.failures == 0).all() and pulls.verified.all()
    assert probe.meta["verify"] == "sha256" and probe.samples and probe.capture["packets"] > 0
    assert probe.table[probe.table.kind == "iperf3"].MBps.iloc[0] > 0


def test_the_probe_talks_only_to_its_url_a_bounded_number_of_times(lab, tmp_path, capsys):
    lab.apply(BASE)
    log = lab.run_dir / "nginx-access.log"
    before = log.read_text().splitlines()
    p = lab.plan
    rc = main(["probe", f"http://{p.ip('vm')}:{p.port('published')}", lab.image.uri, "--ns", p.ns("compute"),
               "--parallel", "2", "--report", str(tmp_path / "probe.html")])
    out = capsys.readouterr().out
    assert rc == 0 and any(k in out for k in ("server application-limited", "network-limited", "client-limited"))
    added = log.read_text().splitlines()[len(before):]
    assert sum("/api/container/" in line for line in added) == 1
    assert sum("/containers/" in line and "/download/" in line for line in added) == 1 + 2
    assert len(added) == 1 + 1 + 2
    html = (tmp_path / "probe.html").read_text()
    assert "Probe from the client" in html and "bokeh" in html.lower()


def test_a_probe_section_renders_in_the_report(lab, tmp_path):
    lab.apply(BASE)
    probe = _probe(lab, parallel=2)
    path = write_report(tmp_path / "r.html", [probe_section(probe)])
    assert probe.verdict.kind in path.read_text()
