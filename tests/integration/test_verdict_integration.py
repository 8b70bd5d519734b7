"""The verdict on the real lab with known bottlenecks injected: the CI-sized part of the matrix (bench_verdict runs all).

Each case injects its fault, surveys (3 rounds of pulls per vantage point) and must name the truth;
afterwards the lab must be as it was (settings, sysctls, every service running).
"""
import json

import pytest

from labkit.cli import main
from labkit.config.presets import preset
from labkit.lab.host import netns
from labkit.lab.faults import inject
from labkit.lab.lab import Lab
from labkit.experiments.matrix import BASE, CI_CASES, SURVEY_DEFAULTS, run_case
from labkit.measure.pull_at import pull_at

pytestmark = pytest.mark.integration
MiB = 2**20


@pytest.fixture(scope="module")
def lab():
    with Lab("vd-itest", preset(BASE), image_size=32 * MiB, quiet=True) as lab:
        pull_at(lab, verify="length")                    # the image into the page cache
        yield lab


@pytest.mark.parametrize("case", CI_CASES, ids=lambda c: c.name)
def test_the_verdict_names_the_injected_bottleneck(lab, case):
    row = run_case(lab, case, **SURVEY_DEFAULTS)
    assert row["ok"], f"{case.name}: expected {row['expected']}, named {row['named']}\n{row['verdict']}"
    assert lab.settings == preset(case.preset) and all(v == "ok" for v in lab.status().values())


def test_inject_puts_everything_back(lab):
    node = lab.path.client_vantage.client
    key = "net.ipv4.tcp_rmem"
    before, settings = netns.read_sysctl(lab.plan.ns(node), key), lab.settings
    with inject(lab, set=["links.wan=900mbit"], sysctl=[(node, key, "4096 8192 8192")], kill=["docker-proxy"]):
        assert lab.settings.links.wan == "900mbit"
        assert netns.read_sysctl(lab.plan.ns(node), key).split() == ["4096", "8192", "8192"]
        assert any(v != "ok" for k, v in lab.status().items() if k.startswith("docker-proxy"))
    assert netns.read_sysctl(lab.plan.ns(node), key) == before and lab.settings == settings
    assert all(v == "ok" for v in lab.status().values())
    with pytest.raises(ValueError, match="nodes are"):
        with inject(lab, sysctl=[("moon", key, "1 2 3")]):
            pass
    with pytest.raises(ValueError, match="kill 'postgres'"):
        with inject(lab, kill=["postgres"]):
            pass


def test_survey_json_prints_the_table_and_the_verdict(capsys):
    assert main(["survey", "--name", "vd-cli", "--image-mib", "16", "--parallel", "2", "--iperf-seconds", "1",
                 "--verify", "length", "--set", "links.nginx=800mbit", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    v = out["verdict"]
    assert (v["hop"], v["cause"], v["at_capacity"]) == ("nginx", "link", True) and v["evidence"]
    assert {"hop", "cause", "evidence", "next"} <= set(v)
    pulls = [r for r in out["table"] if r["kind"] == "pull"]
    assert pulls and all(r["runs"] == 3 and r["MBps_lo"] <= r["MBps"] <= r["MBps_hi"] for r in pulls)
