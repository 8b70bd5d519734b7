"""CPU cost per byte on a real lab (root; -s shows the numbers): a program's CPU-seconds per GB is a
property of the bytes, not of how fast they went: nginx held to a third of a core moves the image
slower but pays about the same CPU per GB."""
from __future__ import annotations

import statistics
import subprocess
import sys

import pytest

from labkit.config.presets import SREGISTRY_SHIPPED
from labkit.lab.lab import Lab
from labkit.clients import program
from labkit.measure.pull_at import pull_at

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


def test_an_external_client_is_charged_the_cpu_it_used():
    """A program's own CPU comes from its rusage when reaped (here a Python loop burning ~0.3 s)."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    proc = subprocess.Popen([sys.executable, "-c", burn])
    run = program._Run(workdir=None, log=None, proc=proc, start=0.0)
    program._wait(run, deadline=30)
    assert proc.returncode == 0 and proc.poll() == 0
    assert 0.25 <= run.cpu_s <= 1.5


def test_an_external_client_past_its_deadline_is_killed_and_reaped():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    run = program._Run(workdir=None, log=None, proc=proc, start=0.0)
    program._wait(run, deadline=0.2)
    assert run.timed_out and proc.returncode is not None and proc.returncode != 0
