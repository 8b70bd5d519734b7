"""Labs built on paths of their own (root): three compute nodes behind a switch, every stage, vantage point
and hop renamed, surveyed and judged on that path, and the hypotheses run on it; a load-balancing nginx
in front of the VM, pulled through."""
import pytest

from labkit.analyze.hypotheses import HYPOTHESES
from labkit.analyze.verdict import verdict
from labkit.config.overrides import apply_overrides
from labkit.config.presets import preset
from labkit.errors import SettingsError
from labkit.lab.faults import inject
from labkit.lab.lab import Lab
from labkit.measure.pull_at import pull_at
from labkit.measure.survey import run_survey
from labkit.path import registry_path
from labkit.records import Survey
from labkit.experiments.hypotheses import run_hypotheses

pytestmark = pytest.mark.integration
MiB = 2**20


@pytest.fixture(scope="module")
def lab(renamed):
    with Lab("pt-three", preset("sregistry-2018-10"), image_size=16 * MiB, quiet=True,
             path=renamed(registry_path(3))) as lab:
        yield lab


def test_a_three_node_lab_is_surveyed_and_judged_on_its_own_path(lab, tmp_path):
    path = lab.path
    assert path.compute == ("compute1", "compute2", "compute3") and path.stages[-1].name == "st-full path"
    with inject(lab, set=["links.wan=400mbit"]):          # 50 MB/s on the switch's uplink
        s = run_survey(lab, parallel=2, iperf_seconds=1, verify="length", progress=False,
                       parallel_at=[path.client_vantage.name], parallel_rounds=1)
    assert s.path == path
    pulls = s.table[s.table.kind == "pull"]
    assert set(pulls.point) == {v.name for v in path.vantages_for(lab.settings)} and (pulls.failures == 0).all()
    v = verdict(s)
    assert (v.hop, v.cause, v.at_capacity) == ("st-full path", "link", True), str(v)
    assert v.capacity_hop.startswith("hop-") and list(v.stages.stage) == [st.name for st in path.carrying(lab.settings)]
    again = Survey.load(s.save(tmp_path))                  # the path is saved with the survey
    assert again.path == path and verdict(again).hop == v.hop


def test_the_hypotheses_run_on_several_compute_nodes():
    judged, capacity = run_hypotheses([2], image_mib=16, lab_name="pt-hyp", hypotheses=HYPOTHESES[:1],
                                      link="800mbit", progress=False, compute_nodes=3)
    assert 60 < capacity < 110                   # 100 MB/s: the switch's uplink shaped (links.wan), not a port
    assert list(judged.hypothesis) == [HYPOTHESES[0].name] and judged.failures.iloc[0] == 0


def test_a_load_balancing_nginx_in_front_of_the_vm_serves_verified_pulls():
    path = registry_path(load_balancer=True)
    with Lab("pt-lb", preset("sregistry-2018-10"), image_size=16 * MiB, quiet=True, path=path) as lab:
        assert [svc.name for svc in lab.instances("nginx")] == ["nginx", "lb"]
        health = lab.health()
        assert all(v == "ok" for v in health.values()) and "manifest via load balancer" in health, health
        assert path.client_vantage.server == "lb" and [v.name for v in path.vantages].count("full path") == 1
        log = lab.run_dir / "lb-access.log"
        seen = log.stat().st_size
        run = pull_at(lab, parallel=2)                     # from the compute node, through the load balancer
        assert run.ok and all(r.sha256_ok for r in run.results)
        assert log.read_text()[seen:].count("GET /containers/") == 2      # both images crossed it
        assert lab.apply(lab.settings.changed(nginx={"worker_processes": 2})) == [
            "nginx: reloaded gracefully", "lb: reloaded gracefully"]                  # every nginx, not the first
        assert pull_at(lab).ok
        lab.check(apply_overrides(lab.settings, ["cpu.lb_cpus=0.5"]))     # a setting keyed by its own name
        s = run_survey(lab, parallel=1, iperf_seconds=1, repeats=1, verify="length", progress=False)
        assert set(s.table[s.table.kind == "pull"].point) == {v.name for v in path.vantages_for(lab.settings)}
        assert verdict(s).hop in {st.name for st in path.stages}
    with pytest.raises(SettingsError, match="cpu.lb_cpus"):     # a name the default path does not have
        Lab("pt-nolb", apply_overrides(preset("sregistry-2018-10"), ["cpu.lb_cpus=0.5"]))
