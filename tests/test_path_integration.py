"""A lab built on a path of its own: three compute nodes behind a switch, every stage, vantage point and
hop renamed; surveyed and judged on that path, and the hypotheses run on it (root)."""
import pytest

from labkit.analyze.hypotheses import HYPOTHESES
from labkit.analyze.verdict import verdict
from labkit.config.presets import preset
from labkit.lab.faults import inject
from labkit.lab.lab import Lab
from labkit.measure.survey import run_survey
from labkit.path import registry_path
from labkit.records import Survey
from labkit.workflows import run_hypotheses

pytestmark = pytest.mark.integration
MiB = 2**20


@pytest.fixture(scope="module")
def lab(renamed):
    with Lab("pt-three", preset("sregistry-2018-10"), image_size=16 * MiB, quiet=True,
             path=renamed(registry_path(3))) as lab:
        yield lab


def test_a_three_node_lab_is_surveyed_and_judged_on_its_own_path(lab, tmp_path):
    path = lab.plan.path
    assert path.compute == ("compute1", "compute2", "compute3") and path.stages[-1].name == "st-full path"
    with inject(lab, set=["links.wan=400mbit"]):          # 50 MB/s on the switch's uplink
        s = run_survey(lab, parallel=2, iperf_seconds=1, verify="length", progress=False,
                       parallel_at=[path.client_vantage.name], parallel_rounds=1)
    assert s.path == path
    pulls = s.table[s.table.kind == "pull"]
    assert set(pulls.point) == {v.name for v in path.vantages} and (pulls.failures == 0).all()
    v = verdict(s)
    assert (v.hop, v.cause, v.at_capacity) == ("st-full path", "link", True), str(v)
    assert v.capacity_hop.startswith("hop-") and list(v.stages.stage) == [st.name for st in path.stages]
    again = Survey.load(s.save(tmp_path))                  # the path is saved with the survey
    assert again.path == path and verdict(again).hop == v.hop


def test_the_hypotheses_run_on_several_compute_nodes(lab):
    judged, capacity = run_hypotheses(lab, [2], hypotheses=HYPOTHESES[:1], link="800mbit", progress=False)
    assert lab.settings.links.rate("wan") == "800mbit" and 60 < capacity < 110      # 100 MB/s: the uplink shaped
    assert list(judged.hypothesis) == [HYPOTHESES[0].name] and judged.failures.iloc[0] == 0
