"""CPU cost per byte on a real lab (root; -s shows the numbers): a program's CPU-seconds per GB is a
property of the bytes, not of how fast they went: nginx held to a third of a core moves the image
slower but pays about the same CPU per GB."""
from __future__ import annotations

import statistics

import pytest

from labkit.config.presets import SREGISTRY_SHIPPED
from labkit.lab.lab import Lab
from labkit.measure.pulls import pull_at

pytestmark = pytest.mark.integration
MiB = 2**20


@pytest.fixture(scope="module")
def lab():
    with Lab("ly-cost", settings=SREGISTRY_SHIPPED, image_size=64 * MiB, quiet=True) as lab:
        yield lab


def test_cost_per_gb_is_the_same_whether_nginx_is_fast_or_held_back(lab):
    free, held = [], []
    for _ in range(2):                       # alternated: a busy neighbour hits both alike
        lab.apply(SREGISTRY_SHIPPED)
        free.append(pull_at(lab, verify="length"))
        lab.apply(SREGISTRY_SHIPPED.changed(cpu={"nginx_cpus": 0.3}))
        held.append(pull_at(lab, verify="length"))
    lab.apply(SREGISTRY_SHIPPED)
    rows = {k: [r.row() for r in runs] for k, runs in (("free", free), ("held", held))}
    med = {k: {c: statistics.median(r[c] for r in rs) for c in ("MBps", "cpu_s_per_GB_nginx", "cpu_s_per_GB_client")}
           for k, rs in rows.items()}
    print(f"\nmeasured: {med}", flush=True)
    assert all(r.ok for r in free + held)
    assert med["held"]["MBps"] < 0.8 * med["free"]["MBps"]
    assert 0.6 <= med["held"]["cpu_s_per_GB_nginx"] / med["free"]["cpu_s_per_GB_nginx"] <= 1.5
    for r in free + held:     # seconds per GB x GB per second = the share of a core the scheduler counted
        row = r.row()
        assert row["cpu_s_per_GB_nginx"] * row["MBps"] / 1e3 == pytest.approx(
            r.cpu["nginx"]["cpu_sched"] / 100, rel=0.25, abs=0.03)
        assert row["cpu_s_per_GB_client"] > 0 and row["cpu_s_per_GB_softirq"] is not None
